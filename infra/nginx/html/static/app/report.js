// The printable report of one analysis: a patient-free header (recording, dates, model), the
// counts and agreement, then 10-s strips on standard paper (25 mm/s, 10 mm/mV, drawn by paper.js)
// with the label above every beat, three to a landscape page. Each strip is a canvas turned into an
// <img>, so what prints is what was drawn. Strips shown: the first, then every strip with an S or V
// beat, at most MAX_STRIPS (the report says how many were left out).

import { api } from "./api.js";
import {
  CALIBRATION_MM,
  MM_PER_MV,
  MM_PER_S,
  baselineOf,
  drawCalibration,
  drawGrid,
  drawLabel,
  drawTrace,
  formatTime,
} from "./paper.js";
import { cell, describeModel, fillAgreement, fillCounts } from "./tables.js";

export const STRIP_S = 10;
export const MAX_STRIPS = 60;
export const STRIPS_PER_PAGE = 3;
const SELECTED = ["S", "V"]; // the classes whose strips are printed
const LABEL_MM = 6; // the label row above the paper
const PAPER_MM = 40; // 4 mV of paper
const UNITS_PER_MM = 4; // drawing units per mm (line widths are in these units)
const DEVICE_SCALE = 2; // canvas pixels per drawing unit: 8 px/mm, about 200 dpi
const PARALLEL = 4; // strips fetched at once
const MAX_POINTS = 4000; // samples per strip fetched at most (an envelope above that)

// The strips to print: indices of 10-s strips, the first and those holding a selected beat.
export function chooseStrips(summary, durationS) {
  const total = Math.max(1, Math.ceil(durationS / STRIP_S));
  const ectopic = new Set();
  for (const label of SELECTED) {
    for (const t of (summary.beats_s || {})[label] || []) ectopic.add(Math.min(total - 1, Math.floor(t / STRIP_S)));
  }
  const wanted = [...new Set([0, ...ectopic])].sort((a, b) => a - b);
  return { strips: wanted.slice(0, MAX_STRIPS), wanted: wanted.length, ectopic: ectopic.size, total };
}

async function inParallel(items, limit, job) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await job(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// One strip as an image: the paper, the calibration pulse, the trace and a label over each beat.
function drawStrip(signal, beats, startS, fs) {
  const widthMm = CALIBRATION_MM + STRIP_S * MM_PER_S;
  const heightMm = LABEL_MM + PAPER_MM;
  const u = UNITS_PER_MM;
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(widthMm * u * DEVICE_SCALE);
  canvas.height = Math.round(heightMm * u * DEVICE_SCALE);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(DEVICE_SCALE, 0, 0, DEVICE_SCALE, 0, 0);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, widthMm * u, heightMm * u);
  const left = CALIBRATION_MM * u;
  const paperTop = LABEL_MM * u;
  const baselineY = paperTop + PAPER_MM * u * 0.6;
  const level = baselineOf(signal);
  const timeToX = (t) => left + (t - startS) * MM_PER_S * u;
  drawGrid(ctx, { x: 0, y: paperTop, w: widthMm * u, h: PAPER_MM * u }, u, timeToX(0));
  drawCalibration(ctx, 0, baselineY, u);
  drawTrace(ctx, signal, { timeToX, valueToY: (v) => baselineY - (v - level) * MM_PER_MV * u, clipX: left });
  ctx.font = `bold ${Math.round(LABEL_MM * u * 0.75)}px system-ui, sans-serif`;
  for (const beat of beats) {
    const x = timeToX(beat.sample / fs);
    if (x >= left - 2 && x <= widthMm * u + 2) drawLabel(ctx, beat.label, x, paperTop / 2);
  }
  const img = document.createElement("img");
  img.src = canvas.toDataURL("image/png");
  img.className = "strip-img";
  img.style.width = `${widthMm}mm`; // true size on paper
  return img;
}

function field(list, term, value) {
  list.append(cell("dt", term), cell("dd", value));
}

function header(recording, analysis, selection) {
  const section = document.createElement("section");
  section.className = "report-cover";
  const title = cell("h2", `HeartEye report: ${recording.name}`);
  title.id = "report-title";
  const notice = cell(
    "p",
    "Not for diagnostic use. Research software: beat labels come from a machine-learning model and must be checked by a qualified clinician.",
    "notice report-notice",
  );
  const list = document.createElement("dl");
  list.id = "report-header";
  list.className = "report-header";
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
  field(list, "Recording", `${recording.name} (${recording.format.toUpperCase()}, ${recording.fs} Hz, ${formatTime(recording.duration_s)})`);
  field(list, "Uploaded", when(recording.created_at));
  field(list, "Analysed", when(analysis.finished_at || analysis.created_at));
  field(list, "Model", `${describeModel(analysis.model)} · lead ${analysis.lead} · analysis ${analysis.id}`);
  field(list, "Report made", new Date().toLocaleString());
  const counts = document.createElement("table");
  counts.id = "report-counts";
  counts.className = "counts";
  counts.createCaption().textContent = "Beats by class";
  fillCounts(counts, analysis);
  const agreement = document.createElement("table");
  agreement.id = "report-agreement";
  agreement.className = "counts";
  agreement.createCaption().textContent = "Agreement with the reference annotations";
  fillAgreement(agreement, analysis);
  const tables = document.createElement("div");
  tables.className = "tables";
  tables.append(counts, agreement);
  const left = selection.wanted - selection.strips.length;
  const scope = cell(
    "p",
    `Strips: the first ${STRIP_S} s and every ${STRIP_S}-s strip with an ${SELECTED.join(" or ")} beat ` +
      `(${selection.ectopic} of the recording's ${selection.total} strips have one), at most ${MAX_STRIPS} strips: ` +
      `${selection.strips.length} shown` +
      (left > 0 ? `, the last ${left} left out (the CSV has every beat).` : "."),
  );
  scope.id = "report-scope";
  const paper = cell(
    "p",
    `Paper: ${MM_PER_S} mm/s, ${MM_PER_MV} mm/mV, 1 mm and 5 mm grid; the pulse at the left of each strip is 1 mV. ` +
      "Labels: N normal, S supraventricular ectopic, V ventricular ectopic, F fusion, Q unclassifiable.",
    "help",
  );
  section.append(title, notice, list, tables, scope, paper);
  return section;
}

export class Report {
  constructor({ root, body, status }) {
    this.root = root; // the report's section, shown instead of the page while open
    this.body = body;
    this.status = status;
    this.generation = 0;
  }

  close() {
    this.generation += 1;
    this.root.hidden = true;
    document.body.classList.remove("reporting");
    this.body.replaceChildren();
  }

  // Build the report of a finished analysis, then open the print dialogue.
  async open(recording, analysis) {
    const generation = ++this.generation;
    document.body.classList.add("reporting");
    this.root.hidden = false;
    this.body.replaceChildren();
    this.status.textContent = "Preparing the report…";
    const summary = await api.summary(analysis.id, { bin_s: 3600 });
    const selection = chooseStrips(summary, recording.duration_s);
    let done = 0;
    const strips = await inParallel(selection.strips, PARALLEL, async (index) => {
      const startS = index * STRIP_S;
      const window = { start_s: startS.toFixed(3), end_s: Math.min(recording.duration_s, startS + STRIP_S).toFixed(3) };
      const [signal, beats] = await Promise.all([
        api.signal(recording.id, { ...window, lead: analysis.lead, max_points: MAX_POINTS }),
        api.beats(analysis.id, { ...window, limit: 20000 }),
      ]);
      if (generation === this.generation) {
        done += 1;
        this.status.textContent = `Preparing the report: strip ${done} of ${selection.strips.length}…`;
      }
      const counts = {};
      for (const beat of beats.beats) counts[beat.label] = (counts[beat.label] || 0) + 1;
      return { startS, img: drawStrip(signal, beats.beats, startS, recording.fs), counts };
    });
    if (generation !== this.generation) return; // closed or reopened meanwhile
    const pages = [];
    for (let i = 0; i < strips.length; i += STRIPS_PER_PAGE) pages.push(strips.slice(i, i + STRIPS_PER_PAGE));
    const running = `${recording.name} · ${analysis.model.name} v${analysis.model.version} · not for diagnostic use`;
    this.body.append(
      header(recording, analysis, selection),
      ...pages.map((page, p) => {
        const section = document.createElement("section");
        section.className = "report-page";
        section.append(cell("p", `${running} · strips page ${p + 1} of ${pages.length}`, "report-running"));
        for (const strip of page) {
          const figure = document.createElement("figure");
          figure.className = "report-strip";
          const end = Math.min(recording.duration_s, strip.startS + STRIP_S);
          const ectopic = SELECTED.filter((c) => strip.counts[c]).map((c) => `${strip.counts[c]} ${c}`);
          strip.img.alt = `ECG strip from ${formatTime(strip.startS)} to ${formatTime(end)}`;
          figure.append(
            strip.img,
            cell("figcaption", `${formatTime(strip.startS)} – ${formatTime(end)}${ectopic.length ? ` · ${ectopic.join(", ")}` : ""}`),
          );
          section.append(figure);
        }
        return section;
      }),
    );
    await Promise.all(strips.map((strip) => strip.img.decode().catch(() => null)));
    if (generation !== this.generation) return;
    this.status.textContent = `Report ready: ${strips.length} strip(s) on ${pages.length} page(s) after the header.`;
    window.print();
  }
}
