// The camera health strip: one chip per camera, worst first, from the `camera` server-sent events: after each
// resync the station sends every camera again (what GET /api/cameras answers), then each change. A chip says the camera and its state in words
// ("gate: unauthorised"; "old: no news (grabber gone)" when stale, "never reported"), its colour (green streaming, amber
// reconnecting or stalled, red otherwise) with a symbol and since when; a blind camera is marked `blind`.
// A station without camera status sends no camera event: no strip (and no failed request).
"use strict";
// Uses format.js (`when`, `msOf`).

const cameraStates = new Map(); // camera id -> {cameraId, state, sinceNs, error, updatedNs, lastCaptureNs, stale}
const CAMERA_ORDER = ["failed", "unauthorised", "refused", "stalled", "reconnecting", "unknown", "ended", "starting",
  "streaming"];
const CAMERA_LEVEL = { streaming: "ok", starting: "warn", reconnecting: "warn", stalled: "warn" }; // else: bad
const SEEING = new Set(["streaming", "starting", "ended"]);
let stripScheduled = false;

function cameraLevel(status) {
  return status.stale ? "bad" : CAMERA_LEVEL[status.state] || "bad";
}

// Stale first, then by state from worst to best, the oldest trouble first.
function cameraRank(s) {
  const order = CAMERA_ORDER.includes(s.state) ? CAMERA_ORDER.indexOf(s.state) : CAMERA_ORDER.indexOf("unknown");
  return [s.stale ? 0 : 1, order, msOf(s.sinceNs)];
}

function compareCameras(a, b) {
  const [x, y] = [cameraRank(a), cameraRank(b)];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return a.cameraId < b.cameraId ? -1 : 1;
}

function putCamera(status) {
  if (!status || !status.cameraId) return;
  cameraStates.set(status.cameraId, status);
  if (!stripScheduled) {
    stripScheduled = true;
    requestAnimationFrame(() => { stripScheduled = false; drawStrip(); });
  }
}

function clearCameras() {
  cameraStates.clear();
  drawStrip();
}

function cameraChip(s) {
  const level = cameraLevel(s);
  const chip = document.createElement("li");
  chip.className = `chip ${level} ${s.stale || !SEEING.has(s.state) ? "blind" : "seeing"}`;
  chip.dataset.camera = s.cameraId;
  chip.dataset.testid = "camera";
  chip.dataset.state = s.stale ? "stale" : s.state;
  chip.dataset.since = msOf(s.sinceNs) ? `since ${when(msOf(s.sinceNs))}` : "";
  const word = !s.stale ? s.state : msOf(s.updatedNs) ? "no news (grabber gone)" : "never reported";
  chip.textContent = `${s.cameraId}: ${word}`;
  const at = (label, ns) => (msOf(ns) ? `${label} ${when(msOf(ns))}` : "");
  chip.title = [s.error, at("since", s.sinceNs), at("last status", s.updatedNs), at("last frame", s.lastCaptureNs)]
    .filter(Boolean).join("\n");
  return chip;
}

function drawStrip() {
  const shown = [...cameraStates.values()].sort(compareCameras);
  document.getElementById("cameras").replaceChildren(...shown.map(cameraChip));
  const blind = shown.filter((s) => s.stale || !SEEING.has(s.state)).length;
  document.getElementById("cameras-summary").textContent = `${shown.length} shown, ${blind} blind`;
  document.getElementById("camera-strip").hidden = shown.length === 0;
}
