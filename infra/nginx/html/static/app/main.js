// The clinicians' page: sign in, upload, read the analysed recording on ECG paper, come back later.
// Plain ES modules, no build step, nothing loaded from another origin (CSP script-src 'self').

import { ApiError, api, onSessionExpired, setCsrfToken } from "./api.js";
import { Overview } from "./overview.js";
import { CLASSES, formatTime } from "./paper.js";
import { cell, describeModel, fillAgreement, fillCounts } from "./tables.js";
import { Report } from "./report.js";
import { StripViewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_PX_PER_MM = 96 / 25.4; // CSS reference pixel; calibrate per screen
const POLL_MS = 1000;

// -- settings stored in this browser --------------------------------------------------------
const stored = (key, fallback, lo, hi) => {
  const value = Number(localStorage.getItem(`hearteye.${key}`));
  return Number.isFinite(value) && value >= lo && value <= hi && localStorage.getItem(`hearteye.${key}`) !== null ? value : fallback;
};
const settings = {
  pxPerMmValue: stored("pxPerMm", DEFAULT_PX_PER_MM, 1, 20),
  zoomValue: stored("zoom", 1, 0.25, 4),
  thresholdValue: stored("threshold", 0.8, 0, 1),
  pxPerMm: () => settings.pxPerMmValue,
  zoom: () => settings.zoomValue,
  threshold: () => settings.thresholdValue,
  setZoom(value) {
    settings.zoomValue = Math.max(0.25, Math.min(4, value));
    localStorage.setItem("hearteye.zoom", String(settings.zoomValue));
    $("zoom-text").textContent = `zoom ×${settings.zoomValue.toFixed(2)}`;
  },
};

// -- state -----------------------------------------------------------------------------------
const state = {
  user: null,
  files: [], // the pending upload: kept when the session expires
  resume: null, // what to do again after signing in (the interrupted upload)
  recording: null,
  analyses: [],
  analysis: null,
  compare: null,
  summary: null,
  polling: null,
};

const viewer = new StripViewer({
  canvas: $("strip"),
  tip: $("tip"),
  list: $("beat-list"),
  settings,
  onViewChange: (view) => {
    if (view.error) return showError("viewer-error", view.error);
    $("time-text").textContent = `${formatTime(view.startS)} – ${formatTime(view.endS)}`;
    overview.setView(view);
    if (view.fresh) describeCurrentBeat();
  },
});
const overview = new Overview({ canvas: $("overview"), onPick: (t) => viewer.goTo(t) });

function showError(id, error) {
  $(id).textContent = error ? (error.message || String(error)) : "";
}

// -- session ---------------------------------------------------------------------------------
function signedIn(session) {
  state.user = session.user;
  setCsrfToken(session.csrf_token);
  $("who-name").textContent = `${session.user.username} (${session.user.role})`;
  $("who").hidden = false;
  $("signin").hidden = true;
  $("app").hidden = false;
  document.body.classList.toggle("admin", session.user.role === "admin");
}

function askToSignIn(reason) {
  report.close();
  state.user = null;
  setCsrfToken(null);
  $("who").hidden = true;
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-reason").textContent = reason || "";
  $("password").value = "";
  $("username").focus();
}

onSessionExpired(() => {
  stopPolling();
  const kept = state.files.length ? ` Your ${state.files.length} selected file(s) are kept.` : "";
  askToSignIn(`Your session has ended: sign in again.${kept}`);
});

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("signin-error", null);
  try {
    const session = await api.signIn($("username").value.trim(), $("password").value);
    signedIn(session);
    await afterSignIn();
  } catch (error) {
    showError("signin-error", error);
  }
});

$("sign-out").addEventListener("click", async () => {
  try {
    await api.signOut();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) return showError("upload-error", error);
  }
  stopPolling();
  state.files = [];
  state.resume = null;
  renderFiles();
  $("viewer").hidden = true;
  askToSignIn("Signed out.");
});

async function afterSignIn() {
  await Promise.all([loadModels(), loadLibrary()]);
  if (state.resume) {
    const resume = state.resume;
    state.resume = null;
    await resume();
  } else if (state.recording) {
    await openRecording(state.recording.id, state.analysis && state.analysis.id);
  }
}

// -- upload ----------------------------------------------------------------------------------
function addFiles(list) {
  for (const file of list) {
    state.files = state.files.filter((f) => f.name !== file.name);
    state.files.push(file);
  }
  renderFiles();
}

function renderFiles() {
  $("file-list").replaceChildren(
    ...state.files.map((file) => {
      const item = cell("li", `${file.name} (${(file.size / 1024).toFixed(0)} KiB) `);
      const remove = cell("button", "Remove");
      remove.type = "button";
      remove.setAttribute("aria-label", `Remove ${file.name}`);
      remove.addEventListener("click", () => {
        state.files = state.files.filter((f) => f !== file);
        renderFiles();
      });
      item.append(remove);
      return item;
    }),
  );
  $("fs-field").hidden = !state.files.some((f) => f.name.toLowerCase().endsWith(".csv"));
  $("upload-button").disabled = state.files.length === 0;
}

$("files").addEventListener("change", (event) => {
  addFiles(event.target.files);
  event.target.value = "";
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  addFiles(event.dataTransfer.files);
});

async function upload() {
  showError("upload-error", null);
  if (!state.files.length) return;
  const form = new FormData();
  for (const file of state.files) form.append("files", file, file.name);
  for (const [field, id] of [["name", "upload-name"], ["lead", "upload-lead"], ["fs", "upload-fs"]]) {
    const value = $(id).value.trim();
    if (value && !(field === "fs" && $("fs-field").hidden)) form.append(field, value);
  }
  $("upload-status").textContent = `Uploading ${state.files.length} file(s)…`;
  $("upload-button").disabled = true;
  try {
    const recording = await api.upload(form);
    state.files = [];
    renderFiles();
    $("upload-form").reset();
    $("upload-status").textContent = `Uploaded ${recording.name}: ${recording.format}, ${recording.fs} Hz, ${formatTime(recording.duration_s)}.`;
    await openRecording(recording.id);
    await analyse();
    loadLibrary();
  } catch (error) {
    $("upload-status").textContent = "";
    if (error instanceof ApiError && error.status === 401) state.resume = upload;
    else showError("upload-error", error);
  } finally {
    $("upload-button").disabled = state.files.length === 0;
  }
}

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  upload();
});

// -- models ----------------------------------------------------------------------------------
async function loadModels() {
  const select = $("model-select");
  try {
    const answer = await api.models();
    select.replaceChildren(
      ...answer.models.map((m) => {
        const version = m.loaded ? `v${m.loaded.version}` : "not loaded";
        const option = cell("option", `${m.name} (${version})`);
        option.value = m.name;
        option.selected = m.default;
        option.disabled = !m.loaded;
        return option;
      }),
    );
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showError("viewer-error", error);
  }
}

// -- library ---------------------------------------------------------------------------------
async function loadLibrary() {
  try {
    const answer = await api.recordings({
      q: $("search-q").value.trim(),
      since: $("search-since").value ? `${$("search-since").value}T00:00:00Z` : "",
      until: $("search-until").value ? `${$("search-until").value}T23:59:59Z` : "",
      limit: 100,
    });
    $("recordings").replaceChildren(
      ...answer.items.map((rec) => {
        const row = document.createElement("tr");
        const open = cell("button", rec.name, "link");
        open.type = "button";
        open.addEventListener("click", () => openRecording(rec.id));
        const name = document.createElement("td");
        name.append(open);
        const remove = cell("button", "Delete");
        remove.type = "button";
        remove.setAttribute("aria-label", `Delete ${rec.name}`);
        remove.addEventListener("click", () => deleteRecording(rec));
        const actions = document.createElement("td");
        actions.append(remove);
        row.append(
          name,
          cell("td", new Date(rec.created_at).toLocaleString()),
          cell("td", rec.format),
          cell("td", formatTime(rec.duration_s)),
          cell("td", rec.has_reference ? "yes" : "—"),
          cell("td", rec.owner, "owner-col"),
          actions,
        );
        return row;
      }),
    );
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showError("upload-error", error);
  }
}

async function deleteRecording(rec) {
  if (!window.confirm(`Delete ${rec.name} and all its analyses?`)) return;
  try {
    await api.deleteRecording(rec.id);
    if (state.recording && state.recording.id === rec.id) {
      state.recording = null;
      $("viewer").hidden = true;
    }
    await loadLibrary();
  } catch (error) {
    showError("upload-error", error);
  }
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadLibrary();
});

// -- one recording and its analyses ----------------------------------------------------------
async function openRecording(id, analysisId) {
  stopPolling();
  showError("viewer-error", null);
  const recording = await api.recording(id);
  state.recording = recording;
  state.analysis = null;
  state.compare = null;
  $("viewer").hidden = false;
  $("rec-title").textContent = recording.name;
  const owner = state.user && state.user.role === "admin" ? ` · owner ${recording.owner}` : "";
  $("rec-meta").textContent =
    `${recording.format.toUpperCase()} · ${recording.fs} Hz · ${formatTime(recording.duration_s)} · ` +
    `${recording.leads.length} lead(s) · ${recording.has_reference ? `${recording.n_reference_beats} reference beats` : "no reference annotations"} · ` +
    `uploaded ${new Date(recording.created_at).toLocaleString()}${owner}`;
  $("lead-select").replaceChildren(
    ...recording.leads.map((lead) => {
      const option = cell("option", lead);
      option.value = lead;
      option.selected = lead === recording.default_lead;
      return option;
    }),
  );
  viewer.setRecording(recording, recording.default_lead);
  overview.set(null, recording.duration_s);
  renderCounts(null);
  await loadAnalyses(analysisId);
}

async function loadAnalyses(selectId) {
  const answer = await api.analyses(state.recording.id);
  state.analyses = answer.items;
  const label = (a) => {
    const model = a.model ? `${a.model.name}${a.model.version ? ` v${a.model.version}` : ""}` : "?";
    return `${model} · ${a.lead} · ${new Date(a.created_at).toLocaleString()} · ${a.status}`;
  };
  const options = (includeNone) => [
    ...(includeNone ? [Object.assign(cell("option", "(none)"), { value: "" })] : []),
    ...state.analyses.map((a) => Object.assign(cell("option", label(a)), { value: a.id })),
  ];
  $("analysis-select").replaceChildren(...options(false));
  $("compare-select").replaceChildren(...options(true));
  const chosen =
    state.analyses.find((a) => a.id === selectId) ||
    state.analyses.find((a) => a.status === "done") ||
    state.analyses[0];
  if (chosen) {
    $("analysis-select").value = chosen.id;
    await showAnalysis(chosen.id);
  }
}

async function analyse() {
  showError("viewer-error", null);
  const body = { model: $("model-select").value || undefined, lead: $("lead-select").value || undefined };
  const analysis = await api.analyse(state.recording.id, body);
  await loadAnalyses(analysis.id);
}

$("analyse").addEventListener("click", () => analyse().catch((e) => showError("viewer-error", e)));
$("analysis-select").addEventListener("change", (e) => showAnalysis(e.target.value).catch((err) => showError("viewer-error", err)));
$("compare-select").addEventListener("change", (e) => showCompare(e.target.value).catch((err) => showError("viewer-error", err)));
$("lead-select").addEventListener("change", (e) => viewer.setLead(e.target.value));

function stopPolling() {
  clearTimeout(state.polling);
  state.polling = null;
}

async function showAnalysis(id) {
  stopPolling();
  const analysis = await api.analysis(id);
  state.analysis = analysis;
  const running = analysis.status === "queued" || analysis.status === "running";
  $("progress-row").hidden = !running;
  $("progress").value = analysis.progress || 0;
  $("progress-text").textContent = running
    ? `${analysis.status} ${(100 * (analysis.progress || 0)).toFixed(0)}%`
    : "";
  if (analysis.status === "failed") showError("viewer-error", new Error(`The analysis failed: ${analysis.error}`));
  const model = analysis.model || {};
  $("model-info").textContent = model.name
    ? `${describeModel(model)} · lead ${analysis.lead} · analysis ${analysis.id}`
    : "";
  if (running) {
    state.polling = setTimeout(() => showAnalysis(id).catch((e) => showError("viewer-error", e)), POLL_MS);
    return;
  }
  if (analysis.status !== "done") return;
  if (analysis.lead !== $("lead-select").value) {
    $("lead-select").value = analysis.lead;
    viewer.lead = analysis.lead;
  }
  renderCounts(analysis);
  $("csv-link").href = api.beatsCsvUrl(analysis.id);
  const binS = Math.max(10, Math.ceil(state.recording.duration_s / 600));
  state.summary = await api.summary(analysis.id, { bin_s: binS });
  overview.set(state.summary, state.recording.duration_s);
  viewer.setAnalysis(analysis);
  const refreshed = state.analyses.find((a) => a.id === id);
  if (refreshed && refreshed.status !== "done") loadAnalyses(id); // the list showed it running
}

async function showCompare(id) {
  state.compare = id ? await api.analysis(id) : null;
  viewer.setCompare(state.compare);
  renderCompare();
}

function renderCounts(analysis) {
  fillCounts($("counts"), analysis);
  fillAgreement($("agreement"), analysis);
  renderCompare();
}

function renderCompare() {
  const table = $("compare");
  const a = state.analysis;
  const b = state.compare;
  table.hidden = !(a && b && a.counts && b.counts);
  table.replaceChildren(table.caption);
  if (table.hidden) return;
  const name = (x) => `${x.model.name} v${x.model.version} (${x.lead})`;
  const head = document.createElement("tr");
  head.append(cell("th", ""), ...CLASSES.map((c) => cell("th", c, `lbl-${c}`)), cell("th", "total"));
  table.append(head);
  for (const x of [a, b]) {
    const row = document.createElement("tr");
    row.append(cell("th", name(x)), ...CLASSES.map((c) => cell("td", String(x.counts[c] ?? 0))), cell("td", String(x.n_beats)));
    table.append(row);
  }
  const diff = document.createElement("tr");
  diff.append(cell("th", "difference"), ...CLASSES.map((c) => cell("td", String((b.counts[c] ?? 0) - (a.counts[c] ?? 0)))), cell("td", String(b.n_beats - a.n_beats)));
  table.append(diff);
}

// -- navigation ------------------------------------------------------------------------------
let target = null; // {label, time} of the last next/previous jump

function jump(label, direction) {
  const times = overview.times(label);
  if (!times.length) {
    $("current-beat").textContent = `No ${label} beats in this analysis.`;
    return;
  }
  const from = target ? target.time : viewer.startS + viewer.visibleS() / 2;
  const index = direction > 0 ? times.findIndex((t) => t > from + 1e-3) : times.findLastIndex((t) => t < from - 1e-3);
  if (index < 0) {
    $("current-beat").textContent = `No ${direction > 0 ? "later" : "earlier"} ${label} beat.`;
    return;
  }
  target = { label, time: times[index], index, total: times.length };
  viewer.goTo(target.time, { highlight: target.time * state.recording.fs });
}

function describeCurrentBeat() {
  const beat = viewer.highlightedBeat();
  if (!beat || !target) return;
  const p = beat.probabilities ? beat.probabilities[beat.label] : null;
  const prob = p === null || p === undefined ? "" : `, p = ${p.toFixed(2)}`;
  $("current-beat").textContent = `${target.label} beat ${target.index + 1} of ${target.total} at ${formatTime(beat.sample / state.recording.fs)}: labelled ${beat.label}${prob}`;
}

$("next-s").addEventListener("click", () => jump("S", 1));
$("prev-s").addEventListener("click", () => jump("S", -1));
$("next-v").addEventListener("click", () => jump("V", 1));
$("prev-v").addEventListener("click", () => jump("V", -1));
$("earlier").addEventListener("click", () => { target = null; viewer.scrollBy(-viewer.visibleS() * 0.9); });
$("later").addEventListener("click", () => { target = null; viewer.scrollBy(viewer.visibleS() * 0.9); });
$("zoom-in").addEventListener("click", () => viewer.zoomBy(1.5));
$("zoom-out").addEventListener("click", () => viewer.zoomBy(1 / 1.5));
$("goto").addEventListener("change", (event) => {
  const parts = event.target.value.trim().split(":").map(Number);
  const seconds = parts.reduce((acc, part) => acc * 60 + part, 0);
  if (Number.isFinite(seconds)) {
    target = null;
    viewer.goTo(seconds);
  }
});
$("print").addEventListener("click", () => window.print());

// -- the printable report --------------------------------------------------------------------
const report = new Report({ root: $("report"), body: $("report-body"), status: $("report-status") });
$("report-open").addEventListener("click", async () => {
  showError("report-error", null);
  if (!state.analysis || state.analysis.status !== "done") {
    return showError("viewer-error", new Error("The report needs a finished analysis."));
  }
  try {
    await report.open(state.recording, state.analysis);
  } catch (error) {
    $("report-status").textContent = "";
    if (!(error instanceof ApiError && error.status === 401)) showError("report-error", error);
  }
});
$("report-print").addEventListener("click", () => window.print());
$("report-close").addEventListener("click", () => {
  report.close();
  $("report-open").focus();
});

// -- display settings ------------------------------------------------------------------------
function applyRuler() {
  $("ruler").style.width = `${50 * settings.pxPerMm()}px`;
}
$("px-per-mm").value = settings.pxPerMm().toFixed(2);
$("threshold").value = String(settings.threshold());
settings.setZoom(settings.zoom());
applyRuler();
$("px-per-mm").addEventListener("change", (event) => {
  const value = Number(event.target.value);
  if (!(value >= 1 && value <= 20)) return;
  settings.pxPerMmValue = value;
  localStorage.setItem("hearteye.pxPerMm", String(value));
  applyRuler();
  viewer.refresh();
});
$("threshold").addEventListener("change", (event) => {
  const value = Number(event.target.value);
  if (!(value >= 0 && value <= 1)) return;
  settings.thresholdValue = value;
  localStorage.setItem("hearteye.threshold", String(value));
  viewer.draw();
  viewer.fillList();
});

// -- start -----------------------------------------------------------------------------------
async function start() {
  renderFiles();
  try {
    signedIn(await api.whoAmI());
    await afterSignIn();
  } catch (error) {
    askToSignIn(error instanceof ApiError && error.status === 401 ? "" : error.message);
  }
}

start();
