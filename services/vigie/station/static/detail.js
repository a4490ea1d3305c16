// The detail pane of the incident opened in the table: snapshot with the detection's regions and the camera's
// zones and allowed headings, facts, evidence, comments (and a comment box), history, and the actions:
// Take, Hold / Resume, Escalate, Assign (supervisors), Close with a verdict, Live.
"use strict";
// Uses console.js (`me`, `call`), format.js, evidence.js.

const pane = document.getElementById("detail");
const SVG_NS = "http://www.w3.org/2000/svg";
const geometries = new Map(); // camera id -> Promise of its geometry (null when the station has none)
let shown = null; // the incident shown (latest revision)
let snapshotKey = null; // incident id and snapshot record of the image shown

function isSupervisor() {
  return me.roles.includes("supervisor");
}

// Open `incident` in the pane; `held` false for a closed incident read back from the history.
function showDetail(incident, held = true) {
  const other = !shown || shown.id !== incident.id;
  shown = incident;
  shown._held = held;
  pane.hidden = false;
  if (other) {
    pane.querySelector(".action-error").hidden = true;
    pane.querySelector(".action-status").textContent = "";
    const box = pane.querySelector(".evidence");
    box.dataset.incidentId = incident.id;
    box.replaceChildren();
    box.hidden = !held;
    if (held) showEvidence(box, incident.id);
  }
  fillDetail(incident);
}

// A new revision of the incident shown (or its removal from memory: `incident` null).
function refreshDetail(incident) {
  if (!shown) return;
  if (incident === null) {
    shown._held = false;
    fillDetail(shown);
  } else if (incident.id === shown.id) {
    incident._held = shown._held;
    shown = incident;
    fillDetail(incident);
  }
}

function fillDetail(incident) {
  pane.dataset.incidentId = incident.id;
  pane.dataset.state = incident.state;
  pane.querySelector(".prio-badge").textContent = priorityText(priorityOf(incident));
  pane.querySelector(".prio-badge").className = `prio-badge p${priorityOf(incident)}`;
  pane.querySelector(".kind").textContent = kindLabel(incident.kind);
  const pill = pane.querySelector(".state");
  pill.textContent = STATE_LABEL[incident.state] || incident.state;
  pill.className = `state pill ${incident.state}`;
  pane.querySelector(".ident").textContent = `${incident.id} · revision ${incident.revision}` +
    (incident._held ? "" : " · no longer held by the station (history): no action, no snapshot");
  fillButtons(incident);
  fillSnapshot(incident);
  fillFacts(incident);
  fillNotes(incident);
  fillHistory(incident);
}

function fillButtons(incident) {
  const open = incident._held && incident.state !== "closed";
  const allowed = open && (incident.state !== "escalated" || isSupervisor()); // escalated: supervisors only
  const state = incident.state;
  const enable = (selector, enabled) => { pane.querySelector(selector).disabled = !enabled; };
  const unacknowledgedEscalation = state === "escalated" && msOf(incident.acknowledgedNs) < msOf(incident.escalatedNs);
  enable("button.ack", allowed && (state === "new" || unacknowledgedEscalation));
  pane.querySelector("button.hold").hidden = state === "on_hold";
  pane.querySelector("button.resume").hidden = state !== "on_hold";
  enable("button.hold", allowed && state === "acknowledged");
  enable("button.resume", allowed && state === "on_hold");
  enable("button.esc", allowed && state !== "escalated");
  enable("button.close", allowed);
  enable("button.live", incident._held);
  pane.querySelector("form.assign").hidden = !(isSupervisor() && open);
  pane.querySelector(".comment-form button").disabled = !allowed;
  const supervisor = isSupervisor() && incident._held;
  pane.querySelector("button.hold-button").hidden = !supervisor;
  pane.querySelector("button.transmit-button").hidden = !supervisor;
  pane.querySelector(".evidence-bar").hidden = !incident._held;
}

// The snapshot is fetched again only when the incident's snapshot record changes (each fetch is a view).
function fillSnapshot(incident) {
  const figure = pane.querySelector("figure");
  const img = figure.querySelector("img");
  const ref = incident.snapshot || {};
  const key = `${incident.id}@${ref.topic || ""}:${ref.partition || 0}:${ref.offset || 0}`;
  figure.hidden = !incident._held || !ref.topic;
  if (!figure.hidden && key !== snapshotKey) {
    snapshotKey = key;
    img.src = `/api/incidents/${encodeURIComponent(incident.id)}/snapshot.jpg?record=${ref.partition || 0}-${ref.offset || 0}`;
  }
  figure.querySelector("figcaption").textContent = msOf(incident.snapshotCaptureNs)
    ? `frame of ${when(incident.snapshotCaptureNs)}` : "";
  const svg = figure.querySelector("svg");
  svg.setAttribute("viewBox", `0 0 ${incident.frameWidth || 1} ${incident.frameHeight || 1}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren(...(incident.regions || []).map((r) => {
    const rect = document.createElementNS(SVG_NS, "rect");
    rect.setAttribute("x", r.x || 0);
    rect.setAttribute("y", r.y || 0);
    rect.setAttribute("width", r.w || 0);
    rect.setAttribute("height", r.h || 0);
    rect.classList.add("region");
    return rect;
  }));
  geometryOf(incident.cameraId).then((geometry) => {
    if (geometry && shown && shown.id === incident.id) drawZones(svg, geometry, incident);
  });
}

// GET /api/cameras/{id}/geometry once per camera; null when the station has no cameras file (404).
function geometryOf(camera) {
  if (!geometries.has(camera)) {
    geometries.set(camera, call(`/api/cameras/${encodeURIComponent(camera)}/geometry`)
      .then((r) => (r.ok ? r.json() : null)).catch(() => null));
  }
  return geometries.get(camera);
}

// The zones of the incident's kind (its own zone highlighted) and their allowed headings, under the regions.
function drawZones(svg, geometry, incident) {
  const zones = geometry.zones.filter((z) => z.kind === incident.kind);
  const layer = document.createElementNS(SVG_NS, "g");
  layer.classList.add("zones");
  for (const zone of zones) {
    const polygon = document.createElementNS(SVG_NS, "polygon");
    polygon.setAttribute("points", zone.polygon.map(([x, y]) => `${x},${y}`).join(" "));
    polygon.classList.add("zone");
    if (String(zone.index) === String(incident.zone || "")) polygon.classList.add("this-zone");
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = `zone ${zone.index}: ${zone.name}`;
    polygon.append(title);
    layer.append(polygon);
    if (zone.headingDeg !== undefined && zone.headingDeg !== null) {
      const n = zone.polygon.length;
      const cx = zone.polygon.reduce((s, p) => s + p[0], 0) / n;
      const cy = zone.polygon.reduce((s, p) => s + p[1], 0) / n;
      layer.append(arrow(cx, cy, zone.headingDeg, incident));
    }
  }
  for (const heading of geometry.headings.filter((h) => h.kind === incident.kind)) {
    layer.append(arrow((incident.frameWidth || 1) / 2, (incident.frameHeight || 1) / 2, heading.headingDeg, incident));
  }
  svg.querySelector("g.zones")?.remove();
  svg.prepend(layer);
  const name = zones.find((z) => String(z.index) === String(incident.zone || ""))?.name;
  const zoneFact = pane.querySelector("dd.zone");
  if (name && zoneFact) zoneFact.textContent = `${zoneText(incident)} (${name})`;
}

// An arrow of the allowed heading (degrees, 0 = rightwards, 90 = downwards) at (x, y).
function arrow(x, y, degrees, incident) {
  const length = Math.min(incident.frameWidth || 100, incident.frameHeight || 100) / 6;
  const a = (degrees * Math.PI) / 180;
  const [dx, dy] = [Math.cos(a) * length, Math.sin(a) * length];
  const line = document.createElementNS(SVG_NS, "polyline");
  const head = (side) => [x + dx - Math.cos(a + side) * length / 3, y + dy - Math.sin(a + side) * length / 3];
  const [l, r] = [head(0.5), head(-0.5)];
  line.setAttribute("points", `${x - dx},${y - dy} ${x + dx},${y + dy} ${l} ${x + dx},${y + dy} ${r}`);
  line.classList.add("heading");
  return line;
}

function fillFacts(incident) {
  const first = msOf(incident.firstSeenNs);
  const last = msOf(incident.lastSeenNs);
  const facts = [
    ["Camera", incident.cameraId], ["Zone", zoneText(incident), "zone"], ["What", what(incident)],
    ["First seen", when(first)], ["Last seen", when(last)],
    ["Lasted", first && last ? duration((last - first) / 1000) : "—"],
    ["Detections", String(incident.count)], ["Severity", Number(incident.severity || 0).toFixed(2)],
    ["Owner", incident.owner || "nobody"], ["Last operator", incident.operator || "—"],
  ];
  if (Number(incident.escalationLevel)) facts.push(["Escalation level", String(incident.escalationLevel)]);
  if (Number(incident.reopened)) facts.push(["Reopened", `${incident.reopened}× (last ${when(incident.reopenedNs)})`]);
  const verdict = verdictText(incident.verdict);
  if (verdict) facts.push(["Verdict", verdict]);
  if (msOf(incident.closedNs)) facts.push(["Closed", when(incident.closedNs)]);
  for (const [key, value] of Object.entries(incident.attributes || {}).sort()) {
    facts.push([factLabel(key), factValue(key, value), "fact"]);
  }
  const dl = pane.querySelector("dl.facts");
  dl.replaceChildren(...facts.flatMap(([label, value, cls]) => {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (cls) dd.className = cls;
    return [dt, dd];
  }));
}

function fillNotes(incident) {
  const list = pane.querySelector("ol.notes");
  const notes = incident.notes && incident.notes.length ? incident.notes
    : (incident.comments || []).map((text) => ({ author: "", atNs: "", text }));
  list.replaceChildren(...notes.map((note) => {
    const item = document.createElement("li");
    item.className = "note";
    const who = document.createElement("span");
    who.className = "muted";
    who.textContent = note.author ? `${note.author} · ${when(note.atNs)}` : "";
    const text = document.createElement("p");
    text.textContent = note.text;
    item.append(who, text);
    return item;
  }));
  if (!notes.length) list.textContent = "No comment yet.";
}

function fillHistory(incident) {
  const list = pane.querySelector("ol.history");
  list.replaceChildren(...(incident.history || []).map((h) => {
    const item = document.createElement("li");
    item.textContent = `${when(h.atNs)} · ${h.actor} · ${h.what.replace(/_/g, " ")}${h.detail ? `: ${h.detail}` : ""}`;
    return item;
  }));
  if (!(incident.history || []).length) list.textContent = "No transition recorded.";
}

// POST an action on the incident shown; an error is said in the pane. Returns true once published.
async function act(body) {
  const error = pane.querySelector(".action-error");
  const status = pane.querySelector(".action-status");
  error.hidden = true;
  status.textContent = "";
  const response = await call(`/api/incidents/${encodeURIComponent(shown.id)}/actions`, {
    method: "POST", body: JSON.stringify(body),
  });
  if (!response.ok) {
    error.textContent = `${body.action} refused: ${await response.text()}`;
    error.hidden = false;
  } else {
    status.textContent = `${body.action} sent at ${when(Date.now())}: the alarm changes when the correlator applies it.`;
  }
  return response.ok;
}

for (const button of pane.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    if (!(await act({ action: button.dataset.action }))) button.disabled = false;
  });
}
pane.querySelector("button.live").addEventListener("click", () => {
  const query = new URLSearchParams({ camera: shown.cameraId, incident: shown.id });
  window.open(`/live?${query}`, "_blank", "noopener");
});
pane.querySelector("form.assign").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = event.target.elements.assignee;
  if (field.value.trim() && (await act({ action: "assign", assignee: field.value.trim() }))) field.value = "";
});
pane.querySelector(".comment-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = event.target.elements.comment;
  if (field.value.trim() && (await act({ action: "comment", comment: field.value.trim() }))) field.value = "";
});
pane.querySelector("button.hold-button").addEventListener("click", () => placeHold(pane.querySelector(".evidence"), shown.id));
pane.querySelector("button.transmit-button").addEventListener("click", () => transmitEvidence(shown.id));
pane.querySelector("button.evidence-button").addEventListener("click", () => showEvidence(pane.querySelector(".evidence"), shown.id));

// -- closing: a verdict is required (and, for a false alarm, its reason) before the dialog can send -------------

const closeDialog = document.getElementById("close-dialog");
const closeForm = document.getElementById("close-form");

function verdictChosen() {
  const verdict = closeForm.elements.verdict.value;
  const reason = closeForm.elements.reason.value;
  document.getElementById("reason-field").hidden = verdict !== "false_alarm";
  const ready = Boolean(verdict) && (verdict !== "false_alarm" || Boolean(reason));
  document.getElementById("close-send").disabled = !ready;
  document.getElementById("close-hint").textContent = ready ? ""
    : verdict === "false_alarm" ? "Say why it is a false alarm." : "Choose a verdict to close.";
  return ready;
}

pane.querySelector("button.close").addEventListener("click", () => {
  closeForm.reset();
  verdictChosen();
  closeDialog.showModal();
});
closeForm.addEventListener("change", verdictChosen);
closeDialog.addEventListener("close", async () => {
  if (closeDialog.returnValue !== "send" || !verdictChosen()) return;
  const body = { action: "close", verdict: closeForm.elements.verdict.value };
  if (body.verdict === "false_alarm") body.reason = closeForm.elements.reason.value;
  const comment = closeForm.elements.comment.value.trim();
  if (comment) body.comment = comment;
  await act(body);
});

// Escape in the pane goes back to the table (the keyboard's place).
pane.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.getElementById("alarms").focus();
});
