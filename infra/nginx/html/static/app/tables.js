// The per-class count and agreement tables of an analysis: one implementation, used by the page
// and by the printable report.

import { CLASSES, CLASS_NAMES } from "./paper.js";

export function cell(tag, text, className) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

// Beats by class (and the mean heart rate) into `table`, keeping its caption.
export function fillCounts(table, analysis) {
  table.replaceChildren(...(table.caption ? [table.caption] : []));
  if (!analysis || !analysis.counts) return;
  const head = document.createElement("tr");
  const body = document.createElement("tr");
  head.append(cell("th", ""));
  body.append(cell("th", "beats"));
  for (const c of CLASSES) {
    const th = cell("th", c, `lbl-${c}`);
    th.scope = "col";
    th.title = CLASS_NAMES[c];
    head.append(th);
    const td = cell("td", String(analysis.counts[c] ?? 0));
    td.dataset.class = c;
    body.append(td);
  }
  head.append(cell("th", "total"));
  body.append(cell("td", String(analysis.n_beats)));
  table.append(head, body);
  if (analysis.mean_heart_rate_bpm) {
    const hr = document.createElement("tr");
    hr.append(cell("th", "mean heart rate"), cell("td", `${analysis.mean_heart_rate_bpm.toFixed(0)}/min`));
    hr.lastChild.colSpan = CLASSES.length + 1;
    table.append(hr);
  }
}

// Agreement with the reference annotations into `table`; hides it when there is none.
export function fillAgreement(table, analysis) {
  const ref = analysis ? analysis.reference : null;
  table.hidden = !ref;
  table.replaceChildren(...(table.caption ? [table.caption] : []));
  if (!ref) return;
  const head = document.createElement("tr");
  for (const h of ["class", "reference beats", "sensitivity", "positive predictivity"]) head.append(cell("th", h));
  table.append(head);
  const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);
  for (const c of CLASSES) {
    const a = (ref.agreement || {})[c];
    if (!a) continue;
    const row = document.createElement("tr");
    row.append(cell("th", c, `lbl-${c}`), cell("td", String(a.reference ?? 0)), cell("td", pct(a.sensitivity)), cell("td", pct(a.ppv)));
    table.append(row);
  }
  const foot = document.createElement("tr");
  const note = cell("td", `matched ${ref.matched}, missed ${ref.missed}, extra ${ref.extra} (within ${(1000 * ref.tolerance_s).toFixed(0)} ms)`);
  note.colSpan = 4;
  foot.append(note);
  table.append(foot);
}

// "Model name, version v, run r": the words the page and the report use for an analysis's model.
export function describeModel(model) {
  return `Model ${model.name}, version ${model.version ?? "(pending)"}, run ${model.run_id ?? "(pending)"}`;
}
