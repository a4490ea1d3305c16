// Camera health in the console: one chip per camera shown by the station, worst first, from the `camera`
// server-sent events (station.js forwards them; a resync clears the list, which then comes again whole).
// A blind camera (failed, reconnecting, refused, unauthorised, stalled, or stale: no status from its grabber
// for three heartbeats) is marked; its chip's tooltip says why and since when.
"use strict";

const cameraHealth = (() => {
  const cameras = new Map(); // camera id -> latest item of /api/cameras
  const list = document.getElementById("cameras");
  const summary = document.getElementById("cameras-summary");
  const ORDER = ["failed", "unauthorised", "refused", "stalled", "reconnecting", "unknown", "ended", "starting",
                 "streaming"];
  const SEEING = new Set(["streaming", "starting", "ended"]);

  const rank = (c) => [c.stale ? 0 : 1, ORDER.includes(c.state) ? ORDER.indexOf(c.state) : ORDER.indexOf("unknown"),
                       c.sinceNs];
  const blind = (c) => c.stale || !SEEING.has(c.state);
  const since = (ns) => (ns ? new Date(ns / 1e6).toLocaleString() : "never");

  function compare(a, b) {
    const [x, y] = [rank(a), rank(b)];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
    return a.cameraId < b.cameraId ? -1 : 1;
  }

  function chip(c) {
    const item = document.createElement("li");
    item.className = "camera-chip " + (blind(c) ? "blind" : "seeing");
    item.dataset.camera = c.cameraId;
    item.dataset.testid = "camera";
    const state = !c.stale ? c.state : c.updatedNs ? "no news (grabber gone)" : "never reported";
    item.textContent = `${c.cameraId}: ${state}`;
    item.title = [c.error, `since ${since(c.sinceNs)}`, `last status ${since(c.updatedNs)}`,
                  `last frame ${since(c.lastCaptureNs)}`].filter(Boolean).join("\n");
    return item;
  }

  function render() {
    const shown = [...cameras.values()].sort(compare);
    list.replaceChildren(...shown.map(chip));
    const blindCount = shown.filter(blind).length;
    summary.textContent = shown.length ? `${shown.length} shown, ${blindCount} blind` : "no camera reports yet";
  }

  return {
    apply(item) { cameras.set(item.cameraId, item); render(); },
    clear() { cameras.clear(); render(); },
  };
})();
