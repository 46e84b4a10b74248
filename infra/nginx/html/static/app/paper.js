// ECG paper, as a convention and not decoration: 25 mm/s, 10 mm/mV, a 1 mm minor and a 5 mm major
// grid, a 1 mV calibration pulse. Lengths are in CSS pixels through one px-per-mm figure (the
// setting that makes the paper true to size on a calibrated screen) times the zoom.

export const MM_PER_S = 25;
export const MM_PER_MV = 10;
export const CALIBRATION_MM = 10; // the strip's left margin that holds the pulse

export const CLASSES = ["N", "S", "V", "F", "Q"];
export const CLASS_NAMES = {
  N: "normal",
  S: "supraventricular ectopic",
  V: "ventricular ectopic",
  F: "fusion",
  Q: "unclassifiable",
};
export const CLASS_COLOURS = {
  N: "#2e6b30",
  S: "#1457b8",
  V: "#c0171b",
  F: "#b35900",
  Q: "#6d2a91",
};

const MINOR = "#f4c7c7";
const MAJOR = "#e58f8f";
const TRACE = "#111111";

// Grid lines from x0 (the strip's time origin, so the grid moves with the recording) over the box.
export function drawGrid(ctx, box, pxPerMm, originX) {
  const { x, y, w, h } = box;
  ctx.save();
  ctx.fillStyle = "#fff7f7";
  ctx.fillRect(x, y, w, h);
  const lines = (step, colour, width) => {
    ctx.beginPath();
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    const first = originX + Math.ceil((x - originX) / step) * step;
    for (let gx = first; gx <= x + w + 0.5; gx += step) {
      const px = Math.round(gx) + 0.5;
      ctx.moveTo(px, y);
      ctx.lineTo(px, y + h);
    }
    for (let gy = y; gy <= y + h + 0.5; gy += step) {
      const py = Math.round(gy) + 0.5;
      ctx.moveTo(x, py);
      ctx.lineTo(x + w, py);
    }
    ctx.stroke();
  };
  if (pxPerMm >= 2.5) lines(pxPerMm, MINOR, 1); // too dense to read below that
  lines(pxPerMm * 5, MAJOR, 1);
  ctx.restore();
}

// The 1 mV calibration pulse, 0.2 s (5 mm) wide, standing on the baseline.
export function drawCalibration(ctx, x, baselineY, pxPerMm) {
  const mm = pxPerMm;
  ctx.save();
  ctx.strokeStyle = TRACE;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(x + 1 * mm, baselineY);
  ctx.lineTo(x + 2.5 * mm, baselineY);
  ctx.lineTo(x + 2.5 * mm, baselineY - MM_PER_MV * mm);
  ctx.lineTo(x + 7.5 * mm, baselineY - MM_PER_MV * mm);
  ctx.lineTo(x + 7.5 * mm, baselineY);
  ctx.lineTo(x + 9 * mm, baselineY);
  ctx.stroke();
  ctx.restore();
}

// The signal window as the API returns it: samples, or a min/max envelope of `step` samples each.
export function drawTrace(ctx, window, geom) {
  const { timeToX, valueToY, clipX } = geom;
  const dt = window.step / window.fs;
  const t0 = window.start_sample / window.fs;
  ctx.save();
  ctx.beginPath();
  ctx.rect(clipX, 0, ctx.canvas.width, ctx.canvas.height);
  ctx.clip();
  ctx.strokeStyle = TRACE;
  ctx.lineWidth = 1.2;
  ctx.lineJoin = "round";
  ctx.beginPath();
  if (window.samples) {
    window.samples.forEach((value, i) => {
      const px = timeToX(t0 + i * dt);
      const py = valueToY(value);
      if (i === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
  } else if (window.min && window.max) {
    for (let i = 0; i < window.min.length; i += 1) {
      const px = timeToX(t0 + (i + 0.5) * dt);
      if (i === 0) ctx.moveTo(px, valueToY(window.min[i]));
      ctx.lineTo(px, valueToY(window.max[i]));
      ctx.lineTo(px, valueToY(window.min[i]));
    }
  }
  ctx.stroke();
  ctx.restore();
}

// A beat's AAMI label, in its class colour, centred on x (the caller sets the font).
export function drawLabel(ctx, label, x, y) {
  ctx.save();
  ctx.fillStyle = CLASS_COLOURS[label] || "#000";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(label, x, y);
  ctx.restore();
}

// The baseline level of a window: the median of its values (the trace is drawn around it).
export function baselineOf(window) {
  const values = window.samples || [...(window.min || []), ...(window.max || [])];
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return finite.length ? finite[Math.floor(finite.length / 2)] : 0;
}

export function confidence(beat) {
  const p = beat.probabilities || {};
  return p[beat.label] ?? Math.max(0, ...Object.values(p));
}

export function formatTime(seconds) {
  const s = Math.max(0, seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = (s % 60).toFixed(2).padStart(5, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}
