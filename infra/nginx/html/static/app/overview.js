// The whole recording at a glance: the heart-rate trend, where the S and V (and F, Q) beats are,
// and the strip's current window. A click (or Enter on the focused canvas) moves the strip there.

import { CLASS_COLOURS, formatTime } from "./paper.js";

const HEIGHT = 120;
const TICKS = ["S", "V", "F", "Q"];

export class Overview {
  constructor({ canvas, onPick }) {
    this.canvas = canvas;
    this.onPick = onPick;
    this.summary = null;
    this.duration = 0;
    this.view = null;
    canvas.addEventListener("click", (e) => {
      if (!this.duration) return;
      const rect = canvas.getBoundingClientRect();
      this.onPick(((e.clientX - rect.left) / rect.width) * this.duration);
    });
    canvas.addEventListener("keydown", (e) => {
      if (!this.duration || !this.view) return;
      const step = this.duration / 50;
      const centre = (this.view.startS + this.view.endS) / 2;
      if (e.key === "ArrowRight") this.onPick(centre + step);
      else if (e.key === "ArrowLeft") this.onPick(centre - step);
      else return;
      e.preventDefault();
    });
    window.addEventListener("resize", () => this.draw());
  }

  set(summary, duration) {
    this.summary = summary;
    this.duration = duration;
    this.draw();
  }

  setView(view) {
    this.view = view;
    this.draw();
  }

  // Beat times of `label` (sorted), from the summary.
  times(label) {
    return (this.summary && this.summary.beats_s && this.summary.beats_s[label]) || [];
  }

  draw() {
    const canvas = this.canvas;
    const width = Math.max(320, canvas.parentElement.clientWidth);
    const ratio = window.devicePixelRatio || 1;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${HEIGHT}px`;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(HEIGHT * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, HEIGHT);
    if (!this.duration) return;
    const x = (t) => (t / this.duration) * width;
    const tickH = 10;
    TICKS.forEach((label, row) => {
      ctx.fillStyle = CLASS_COLOURS[label];
      for (const t of this.times(label)) ctx.fillRect(Math.floor(x(t)), row * tickH, 1, tickH - 2);
    });
    const top = TICKS.length * tickH + 6;
    const bottom = HEIGHT - 14;
    const rates = (this.summary && this.summary.heart_rate_bpm) || [];
    const finite = rates.filter((r) => r !== null && Number.isFinite(r));
    const lo = Math.min(40, ...finite);
    const hi = Math.max(120, ...finite);
    const y = (bpm) => bottom - ((bpm - lo) / (hi - lo)) * (bottom - top);
    ctx.strokeStyle = "#e0e4ea";
    ctx.fillStyle = "#5f6b7a";
    ctx.font = "10px system-ui, sans-serif";
    for (const bpm of [60, 100]) {
      ctx.beginPath();
      ctx.moveTo(0, y(bpm));
      ctx.lineTo(width, y(bpm));
      ctx.stroke();
      ctx.fillText(`${bpm}/min`, 2, y(bpm) - 2);
    }
    ctx.strokeStyle = "#0b57d0";
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    let pen = false;
    const bin = (this.summary && this.summary.bin_s) || 10;
    rates.forEach((bpm, i) => {
      if (bpm === null || !Number.isFinite(bpm)) {
        pen = false;
        return;
      }
      const px = x((i + 0.5) * bin);
      if (pen) ctx.lineTo(px, y(bpm));
      else ctx.moveTo(px, y(bpm));
      pen = true;
    });
    ctx.stroke();
    ctx.fillStyle = "#5f6b7a";
    ctx.fillText("0:00", 2, HEIGHT - 3);
    const endLabel = formatTime(this.duration);
    ctx.fillText(endLabel, width - ctx.measureText(endLabel).width - 2, HEIGHT - 3);
    if (this.view && this.view.endS !== undefined) {
      const vx = x(this.view.startS);
      const vw = Math.max(2, x(this.view.endS) - vx);
      ctx.fillStyle = "rgba(11, 87, 208, 0.15)";
      ctx.fillRect(vx, 0, vw, HEIGHT);
      ctx.strokeStyle = "#0b57d0";
      ctx.strokeRect(vx + 0.5, 0.5, vw - 1, HEIGHT - 1);
    }
  }
}
