// The camera health strip: one chip per camera from GET /api/cameras and the `camera` server-sent events,
// problems first. The state is written in words and with a symbol, not by colour alone. A station without
// camera status (the endpoint answers 404) shows no strip.
"use strict";
// Uses console.js (`call`) and format.js (`when`).

const cameraStates = new Map(); // camera id -> {cameraId, state, sinceNs, error, stale}
const CAMERA_LEVEL = {
  streaming: "ok", starting: "warn", reconnecting: "warn", stalled: "warn",
  unauthorised: "bad", refused: "bad", failed: "bad", ended: "bad",
};
const LEVEL_SYMBOL = { ok: "●", warn: "▲", bad: "✕" };
const LEVEL_RANK = { bad: 0, warn: 1, ok: 2 };
let stripScheduled = false;

function cameraLevel(status) {
  return status.stale ? "bad" : CAMERA_LEVEL[status.state] || "warn";
}

async function loadCameras() {
  let response;
  try {
    response = await call("/api/cameras");
  } catch (_) {
    return;
  }
  if (!response.ok) return; // 404 until the station reads camera status: no strip
  const body = await response.json();
  for (const status of body.cameras || []) cameraStates.set(status.cameraId, status);
  drawStrip();
}

function putCamera(status) {
  if (!status || !status.cameraId) return;
  cameraStates.set(status.cameraId, status);
  if (!stripScheduled) {
    stripScheduled = true;
    requestAnimationFrame(() => { stripScheduled = false; drawStrip(); });
  }
}

function drawStrip() {
  const strip = document.getElementById("camera-strip");
  const items = [...cameraStates.values()].map((s) => ({ s, level: cameraLevel(s) }));
  items.sort((a, b) => LEVEL_RANK[a.level] - LEVEL_RANK[b.level] || (a.s.cameraId < b.s.cameraId ? -1 : 1));
  const counts = { ok: 0, warn: 0, bad: 0 };
  document.getElementById("cameras").replaceChildren(...items.map(({ s, level }) => {
    counts[level] += 1;
    const chip = document.createElement("li");
    chip.className = `chip ${level}`;
    chip.dataset.camera = s.cameraId;
    chip.dataset.state = s.stale ? "stale" : s.state;
    const word = s.stale ? `${s.state}, stale` : s.state;
    chip.textContent = `${LEVEL_SYMBOL[level]} ${s.cameraId} ${word}`;
    const since = document.createElement("span");
    since.className = "since";
    since.textContent = s.sinceNs && s.sinceNs !== "0" ? ` since ${when(s.sinceNs)}` : "";
    chip.append(since);
    chip.title = `${s.cameraId}: ${word}${s.error ? ` (${s.error})` : ""}${since.textContent}`;
    return chip;
  }));
  document.getElementById("camera-summary").textContent =
    `Cameras: ${counts.ok} streaming, ${counts.warn} degraded, ${counts.bad} down`;
  strip.hidden = items.length === 0;
}
