// The strip: one lead of the recording on ECG paper, the model's label above every R peak (and,
// when present, a second analysis's and the reference annotations' rows), scrolled and zoomed
// through the whole recording. Only the visible window is fetched (signal, beats, reference).

import { api } from "./api.js";
import {
  CALIBRATION_MM,
  CLASSES,
  CLASS_NAMES,
  MM_PER_MV,
  MM_PER_S,
  baselineOf,
  confidence,
  drawCalibration,
  drawGrid,
  drawLabel,
  drawTrace,
  formatTime,
} from "./paper.js";

const ROW_H = 22;
const PAPER_MM = 50; // 5 mV of paper height
const MATCH_S = 0.15; // a reference beat and a label agree within 150 ms (EC57)
const MAX_LISTED = 400;

function nearest(beats, sample, tolerance) {
  let lo = 0;
  let hi = beats.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (beats[mid].sample < sample) lo = mid + 1;
    else hi = mid - 1;
  }
  let best = null;
  for (const i of [lo - 1, lo]) {
    const b = beats[i];
    if (b && Math.abs(b.sample - sample) <= tolerance && (!best || Math.abs(b.sample - sample) < Math.abs(best.sample - sample))) best = b;
  }
  return best;
}

export class StripViewer {
  constructor({ canvas, tip, list, settings, onViewChange }) {
    this.canvas = canvas;
    this.tip = tip;
    this.list = list;
    this.settings = settings; // { pxPerMm(), zoom(), threshold() }
    this.onViewChange = onViewChange || (() => {});
    this.recording = null;
    this.lead = null;
    this.analysis = null;
    this.compare = null;
    this.startS = 0;
    this.data = null;
    this.highlight = null;
    this.generation = 0;
    this.fetchTimer = null;
    canvas.addEventListener("mousemove", (e) => this.hover(e));
    canvas.addEventListener("mouseleave", () => this.hideTip());
    canvas.addEventListener("keydown", (e) => this.key(e));
    canvas.addEventListener("wheel", (e) => {
      if (!this.recording) return;
      e.preventDefault();
      this.scrollBy((e.deltaX || e.deltaY) / this.pxPerS());
    }, { passive: false });
    window.addEventListener("resize", () => this.refresh());
  }

  scale() {
    return this.settings.pxPerMm() * this.settings.zoom();
  }

  pxPerS() {
    return this.scale() * MM_PER_S;
  }

  width() {
    return Math.max(320, this.canvas.parentElement.clientWidth);
  }

  leftPad() {
    return CALIBRATION_MM * this.scale();
  }

  visibleS() {
    return (this.width() - this.leftPad()) / this.pxPerS();
  }

  duration() {
    return this.recording ? this.recording.duration_s : 0;
  }

  setRecording(recording, lead) {
    this.recording = recording;
    this.lead = lead;
    this.analysis = null;
    this.compare = null;
    this.startS = 0;
    this.highlight = null;
    this.refresh();
  }

  setLead(lead) {
    this.lead = lead;
    this.refresh();
  }

  setAnalysis(analysis) {
    this.analysis = analysis && analysis.status === "done" ? analysis : null;
    this.refresh();
  }

  setCompare(analysis) {
    this.compare = analysis && analysis.status === "done" ? analysis : null;
    this.refresh();
  }

  scrollBy(seconds) {
    this.goTo(this.startS + seconds, { center: false });
  }

  zoomBy(factor) {
    const centre = this.startS + this.visibleS() / 2;
    this.settings.setZoom(this.settings.zoom() * factor);
    this.goTo(centre);
  }

  // Show time `t` (centred unless told otherwise); optionally mark the beat at `sample`.
  goTo(t, { center = true, highlight = undefined } = {}) {
    const visible = this.visibleS();
    const start = center ? t - visible / 2 : t;
    this.startS = Math.max(0, Math.min(start, Math.max(0, this.duration() - visible)));
    if (highlight !== undefined) this.highlight = highlight;
    this.draw();
    this.scheduleFetch(60);
  }

  refresh() {
    this.draw();
    this.scheduleFetch(0);
  }

  scheduleFetch(delayMs) {
    clearTimeout(this.fetchTimer);
    this.fetchTimer = setTimeout(() => this.fetch(), delayMs);
  }

  async fetch() {
    if (!this.recording) return;
    const generation = ++this.generation;
    const start = this.startS;
    const end = Math.min(this.duration(), start + this.visibleS());
    const window = { start_s: start.toFixed(3), end_s: end.toFixed(3) };
    const jobs = [
      api.signal(this.recording.id, { ...window, lead: this.lead, max_points: Math.ceil(this.width()) }),
      this.analysis ? api.beats(this.analysis.id, { ...window, limit: 20000 }) : null,
      this.compare ? api.beats(this.compare.id, { ...window, limit: 20000 }) : null,
      this.recording.has_reference ? api.reference(this.recording.id, window) : null,
    ];
    try {
      const [signal, beats, compare, reference] = await Promise.all(jobs);
      if (generation !== this.generation) return; // the view moved meanwhile
      this.data = {
        start,
        end,
        signal,
        beats: beats ? beats.beats : [],
        compare: compare ? compare.beats : null,
        reference: reference ? reference.beats : null,
      };
      this.draw();
      this.fillList();
    } catch (error) {
      if (generation === this.generation) this.onViewChange({ error });
    }
  }

  rows() {
    const rows = [{ key: "beats", name: this.analysis ? "model" : "" }];
    if (this.compare) rows.push({ key: "compare", name: "compare" });
    if (this.recording && this.recording.has_reference) rows.push({ key: "reference", name: "reference" });
    return rows;
  }

  geometry() {
    const scale = this.scale();
    const rows = this.rows();
    const paperTop = rows.length * ROW_H + 4;
    const paperH = Math.max(160, PAPER_MM * scale);
    const left = this.leftPad();
    const pxPerS = this.pxPerS();
    const startS = this.startS;
    const baselineY = paperTop + paperH * 0.6;
    const level = this.data && this.data.signal ? baselineOf(this.data.signal) : 0;
    return {
      rows,
      paperTop,
      paperH,
      height: paperTop + paperH,
      left,
      baselineY,
      timeToX: (t) => left + (t - startS) * pxPerS,
      valueToY: (v) => baselineY - (v - level) * MM_PER_MV * scale,
      clipX: left,
    };
  }

  draw() {
    const canvas = this.canvas;
    const ctx = canvas.getContext("2d");
    const width = this.width();
    const g = this.geometry();
    const ratio = window.devicePixelRatio || 1;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${g.height}px`;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(g.height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, g.height);
    const scale = this.scale();
    drawGrid(ctx, { x: 0, y: g.paperTop, w: width, h: g.paperH }, scale, g.timeToX(0));
    drawCalibration(ctx, 0, g.baselineY, scale);
    const d = this.data;
    const fresh = d && Math.abs(d.start - this.startS) < 1e-6;
    if (d && d.signal) {
      drawTrace(ctx, d.signal, g);
    }
    g.rows.forEach((row, i) => {
      const y = i * ROW_H;
      ctx.fillStyle = i % 2 ? "#f3f5f8" : "#ffffff";
      ctx.fillRect(0, y, width, ROW_H);
      ctx.fillStyle = "#5f6b7a";
      ctx.font = "11px system-ui, sans-serif";
      ctx.textBaseline = "middle";
      ctx.fillText(row.name, 4, y + ROW_H / 2);
    });
    if (!d) return this.announce(g, false);
    const fs = this.recording.fs;
    const threshold = this.settings.threshold();
    const drawRow = (index, beats, { review, against }) => {
      if (!beats) return;
      const y = index * ROW_H + ROW_H / 2;
      ctx.font = "bold 14px system-ui, sans-serif";
      ctx.textAlign = "center";
      for (const beat of beats) {
        const x = g.timeToX(beat.sample / fs);
        if (x < g.left - 6 || x > width + 6) continue;
        if (index === 0 && this.highlight !== null && Math.abs(beat.sample - this.highlight) <= 1) {
          ctx.fillStyle = "rgba(255, 214, 0, 0.35)";
          ctx.fillRect(x - 8, 0, 16, g.height);
        }
        const low = review && confidence(beat) < threshold;
        if (low) {
          ctx.save();
          ctx.setLineDash([3, 2]);
          ctx.strokeStyle = "#b8860b";
          ctx.lineWidth = 1.5;
          ctx.strokeRect(x - 9, y - 9, 18, 18);
          ctx.restore();
        }
        drawLabel(ctx, beat.label, x, y + 1);
        if (against) {
          const other = nearest(against, beat.sample, MATCH_S * fs);
          if (!other || other.label !== beat.label) {
            ctx.fillStyle = "#c0171b";
            ctx.fillRect(x - 6, y + 8, 12, 2);
          }
        }
      }
      ctx.textAlign = "start";
    };
    g.rows.forEach((row, i) => {
      if (row.key === "beats") drawRow(i, d.beats, { review: true });
      if (row.key === "compare") drawRow(i, d.compare, { review: true, against: d.beats });
      if (row.key === "reference") drawRow(i, d.reference, { review: false, against: d.beats });
    });
    // faint tick from each label down to its R peak
    ctx.strokeStyle = "rgba(0, 0, 0, 0.12)";
    ctx.beginPath();
    for (const beat of d.beats) {
      const x = Math.round(g.timeToX(beat.sample / fs)) + 0.5;
      if (x < g.left || x > width) continue;
      ctx.moveTo(x, ROW_H);
      ctx.lineTo(x, g.paperTop + 6);
    }
    ctx.stroke();
    this.announce(g, fresh);
  }

  announce(g, fresh) {
    this.onViewChange({ startS: this.startS, endS: this.startS + this.visibleS(), fresh });
  }

  // The beat the last jump marked, once its window has been fetched.
  highlightedBeat() {
    if (!this.data || this.highlight === null) return null;
    return nearest(this.data.beats, this.highlight, 1);
  }

  visibleBeats() {
    if (!this.data) return [];
    const fs = this.recording.fs;
    const end = this.startS + this.visibleS();
    return this.data.beats.filter((b) => b.sample / fs >= this.startS && b.sample / fs <= end);
  }

  describe(beat) {
    const p = beat.probabilities || {};
    const probs = CLASSES.filter((c) => c in p).map((c) => `${c} ${(100 * p[c]).toFixed(0)}%`);
    const low = confidence(beat) < this.settings.threshold();
    return {
      title: `${beat.label} (${CLASS_NAMES[beat.label] || beat.label}) at ${formatTime(beat.sample / this.recording.fs)}`,
      detail: probs.join(" · "),
      low,
    };
  }

  fillList() {
    const beats = this.visibleBeats().slice(0, MAX_LISTED);
    this.list.replaceChildren(
      ...beats.map((beat) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        const text = this.describe(beat);
        button.type = "button";
        button.className = `beat beat-${beat.label}${text.low ? " review" : ""}`;
        button.textContent = beat.label;
        button.dataset.sample = String(beat.sample);
        button.setAttribute(
          "aria-label",
          `${text.title}; ${text.detail}${text.low ? "; low confidence, review" : ""}`,
        );
        const show = () => {
          this.highlight = beat.sample;
          this.draw();
          this.showTip(beat);
        };
        button.addEventListener("focus", show);
        button.addEventListener("mouseenter", show);
        button.addEventListener("blur", () => this.hideTip());
        item.append(button);
        return item;
      }),
    );
  }

  showTip(beat) {
    const text = this.describe(beat);
    const g = this.geometry();
    const x = g.timeToX(beat.sample / this.recording.fs);
    this.tip.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = text.title;
    const detail = document.createElement("div");
    detail.textContent = text.detail;
    this.tip.append(title, detail);
    if (text.low) {
      const flag = document.createElement("div");
      flag.className = "review-flag";
      flag.textContent = "low confidence: review";
      this.tip.append(flag);
    }
    this.tip.hidden = false;
    const maxLeft = this.width() - this.tip.offsetWidth - 4;
    this.tip.style.left = `${Math.max(0, Math.min(x + 10, maxLeft))}px`;
    this.tip.style.top = `${ROW_H + 4}px`;
  }

  hideTip() {
    this.tip.hidden = true;
  }

  hover(event) {
    if (!this.data || !this.data.beats.length) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const g = this.geometry();
    const t = this.startS + (x - g.left) / this.pxPerS();
    const beat = nearest(this.data.beats, t * this.recording.fs, (8 / this.pxPerS()) * this.recording.fs);
    if (beat) this.showTip(beat);
    else this.hideTip();
  }

  key(event) {
    if (!this.recording) return;
    const screen = this.visibleS();
    const moves = {
      ArrowLeft: () => this.scrollBy(-1),
      ArrowRight: () => this.scrollBy(1),
      PageUp: () => this.scrollBy(-screen * 0.9),
      PageDown: () => this.scrollBy(screen * 0.9),
      Home: () => this.goTo(0, { center: false }),
      End: () => this.goTo(this.duration(), { center: false }),
      "+": () => this.zoomBy(1.5),
      "=": () => this.zoomBy(1.5),
      "-": () => this.zoomBy(1 / 1.5),
    };
    const move = moves[event.key];
    if (move) {
      event.preventDefault();
      move();
    }
  }
}
