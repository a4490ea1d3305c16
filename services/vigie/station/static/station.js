// Operator console: renders the station's incidents from server-sent events and posts operator actions.
// The live list is what the station holds (open incidents, recently closed ones); older closed
// incidents are in the history, read page by page from /api/incidents?state=closed&before=<cursor>.
"use strict";
// `me` and `call()` are in console.js, loaded before this script.

const incidents = new Map(); // id -> latest incident (camelCase protobuf JSON), the live list
const list = document.getElementById("incidents");
const historyList = document.getElementById("history");
const olderButton = document.getElementById("load-older");
let historyCursor = null; // cursor of the next history page; null before the first one
const template = document.getElementById("incident-card");
const showClosed = document.getElementById("show-closed");

const KIND_LABEL = {
  abandoned_object: "Abandoned object",
  crowd_movement: "Crowd movement",
  density: "Overcrowded zone",
  intrusion: "Intrusion",
  wrong_way: "Wrong way",
  person_down: "Person on the ground",
  fire: "Fire",
  smoke: "Smoke",
  tamper: "Camera tampering",
  colour_query: "Colour query",
};

// What the event is, in words: the sub-type named in its track id ("<camera>/crowd/surge/1",
// "<camera>/colour_query/red/1", "<camera>/tamper/blinded-1") and the durations among its facts.
function what(incident) {
  const parts = [];
  const segments = ((incident.trackIds || [])[0] || "").split("/");
  if (segments.length >= 4) parts.push(segments.slice(2, -1).join(" "));
  else if (segments.length === 3 && /-\d+$/.test(segments[2])) parts.push(segments[2].replace(/-\d+$/, ""));
  for (const [key, value] of Object.entries(incident.attributes || {}).sort()) {
    if (key.endsWith("_s")) parts.push(`${key.slice(0, -2).replace(/_/g, " ")} ${Number(value).toFixed(1)} s`);
  }
  return parts.join(" · ") || "—";
}

function when(ns) {
  if (!ns) return "—";
  return new Date(Number(BigInt(ns) / 1000000n)).toLocaleTimeString();
}

// A new card for `incident`: live cards show the snapshot and the action buttons; history cards
// (closed, no longer held by the station) show the facts only.
function newCard(incident, live) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.id = (live ? "incident-" : "history-") + incident.id;
  card.dataset.incidentId = incident.id;
  if (live) {
    card.querySelector("img").src = `/api/incidents/${encodeURIComponent(incident.id)}/snapshot.jpg`;
    for (const button of card.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", () => act(incident.id, button.dataset.action, button));
    }
    card.querySelector("button.evidence-button").addEventListener("click", () => showEvidence(card, incident.id));
    const supervisor = me.roles.includes("supervisor");
    const hold = card.querySelector("button.hold-button");
    hold.hidden = !supervisor;
    hold.addEventListener("click", () => placeHold(card, incident.id));
    const transmit = card.querySelector("button.transmit-button");
    transmit.hidden = !supervisor;
    transmit.addEventListener("click", () => transmitEvidence(incident.id));
  } else {
    card.dataset.testid = "history-incident";
    card.querySelector("figure").remove();
    card.querySelector(".buttons").remove();
  }
  return card;
}

function fill(card, incident) {
  card.className = "incident " + incident.state;
  card.dataset.state = incident.state;
  card.querySelector(".kind").textContent = KIND_LABEL[incident.kind] || incident.kind;
  const pill = card.querySelector(".state");
  pill.textContent = incident.state;
  pill.className = "state pill " + incident.state;
  card.querySelector(".camera").textContent = incident.cameraId;
  card.querySelector(".what").textContent = what(incident);
  card.querySelector(".first").textContent = when(incident.firstSeenNs);
  card.querySelector(".last").textContent = when(incident.lastSeenNs);
  card.querySelector(".count").textContent = incident.count;
  card.querySelector(".severity").textContent = Number(incident.severity).toFixed(2);
  card.querySelector(".operator").textContent = incident.operator || "—";
  const svg = card.querySelector("svg"); // history cards have no snapshot
  if (!svg) return;
  svg.setAttribute("viewBox", `0 0 ${incident.frameWidth || 1} ${incident.frameHeight || 1}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.replaceChildren(...(incident.regions || []).map((r) => {
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", r.x || 0);
    rect.setAttribute("y", r.y || 0);
    rect.setAttribute("width", r.w || 0);
    rect.setAttribute("height", r.h || 0);
    rect.classList.add("region");
    return rect;
  }));
}

function render(incident) {
  let card = document.getElementById("incident-" + incident.id);
  if (!card) {
    card = newCard(incident, true);
    list.prepend(card);
  }
  fill(card, incident);
  card.querySelector("button.ack").disabled = incident.state !== "new";
  card.querySelector("button.esc").disabled = incident.state === "escalated" || incident.state === "closed";
  card.querySelector("button.close").disabled = incident.state === "closed";
  card.hidden = incident.state === "closed" && !showClosed.checked;
  showEmpty();
}

function showEmpty() {
  document.getElementById("empty").hidden = incidents.size > 0;
}

// One more page of the history, appended below the pages already shown (newest closing first).
async function loadOlder() {
  olderButton.disabled = true;
  const query = new URLSearchParams({ state: "closed", limit: "50" });
  if (historyCursor) query.set("before", historyCursor);
  const response = await call(`/api/incidents?${query}`);
  if (!response.ok) {
    olderButton.disabled = false;
    alert(`history: ${await response.text()}`);
    return;
  }
  const page = await response.json();
  for (const incident of page.incidents) {
    if (document.getElementById("history-" + incident.id)) continue;
    const card = newCard(incident, false);
    fill(card, incident);
    historyList.append(card);
  }
  historyCursor = page.next;
  const end = page.next === null;
  olderButton.hidden = end;
  olderButton.disabled = end;
  document.getElementById("history-end").hidden = !end;
}

async function act(id, action, button) {
  button.disabled = true;
  const response = await call(`/api/incidents/${encodeURIComponent(id)}/actions`, {
    method: "POST",
    body: JSON.stringify({ action }),
  });
  if (!response.ok) {
    button.disabled = false;
    alert(`${action} failed: ${await response.text()}`);
  }
}

// The incident's evidence: its clip played in the page (each play of the file is a view in the register),
// its hashes, due date and legal holds.
async function showEvidence(card, id) {
  const box = card.querySelector(".evidence");
  const response = await call(`/api/incidents/${encodeURIComponent(id)}/evidence`);
  box.hidden = false;
  if (!response.ok) {
    box.textContent = `evidence: ${await response.text()}`;
    return;
  }
  const { items } = await response.json();
  box.replaceChildren();
  if (!items.length) {
    box.textContent = "No evidence stored yet (the clip is cut once its last seconds are recorded).";
    return;
  }
  for (const item of items) {
    const row = document.createElement("div");
    row.className = "evidence-item";
    row.dataset.kind = item.kind;
    if (item.kind === "clip") {
      const video = document.createElement("video");
      video.controls = true;
      video.preload = "metadata";
      video.src = item.url;
      row.append(video);
    }
    const facts = document.createElement("p");
    facts.className = "muted";
    const held = item.holds.map((h) => `held: ${h.requisition} (${h.placedBy})`).join("; ");
    facts.textContent = `${item.kind} ${item.from} → ${item.to} · ${item.bytes} bytes · destroyed after ${item.due}` +
      ` · sha256 ${item.sha256.slice(0, 16)}…` + (held ? ` · ${held}` : "");
    row.append(facts);
    box.append(row);
  }
  const snapshot = items.find((i) => i.kind === "snapshot");
  const clip = items.find((i) => i.kind === "clip");
  if (snapshot && me.roles.includes("supervisor")) {
    const start = document.createElement("button");
    start.type = "button";
    start.className = "access-button";
    start.textContent = "Right of access";
    start.title = "export a requester's images, everyone else hidden: draw the requester's box on the snapshot";
    start.addEventListener("click", () => accessForm(box, id, snapshot, clip || snapshot));
    box.append(start);
  }
}

// Right of access: the supervisor draws the requester's box on the snapshot; the console exports the camera's
// images over the range, everyone else hidden, the requester followed by box overlap (never recognised).
function accessForm(box, id, snapshot, range) {
  const form = document.createElement("form");
  form.className = "access-form";
  const frame = document.createElement("div");
  frame.className = "access-frame";
  const img = document.createElement("img");
  img.src = snapshot.url;
  img.alt = "draw the requester's box on this frame";
  img.draggable = false;
  const mark = document.createElement("div");
  mark.className = "access-mark";
  mark.hidden = true;
  frame.append(img, mark);
  let drawn = null;
  let origin = null;
  const point = (event) => {
    const r = img.getBoundingClientRect();
    return [Math.max(0, Math.min(r.width, event.clientX - r.left)), Math.max(0, Math.min(r.height, event.clientY - r.top))];
  };
  frame.addEventListener("mousedown", (event) => { event.preventDefault(); origin = point(event); });
  frame.addEventListener("mousemove", (event) => {
    if (!origin) return;
    const [x, y] = point(event);
    const [left, top, w, h] = [Math.min(x, origin[0]), Math.min(y, origin[1]), Math.abs(x - origin[0]), Math.abs(y - origin[1])];
    Object.assign(mark.style, { left: `${left}px`, top: `${top}px`, width: `${w}px`, height: `${h}px` });
    mark.hidden = false;
    const scale = img.naturalWidth / img.getBoundingClientRect().width;
    drawn = [left, top, w, h].map((v) => Math.round(v * scale));
  });
  window.addEventListener("mouseup", () => { origin = null; });
  const field = (name, label, value) => {
    const wrap = document.createElement("label");
    wrap.textContent = label + " ";
    const input = document.createElement("input");
    input.name = name;
    input.value = value;
    wrap.append(input);
    return wrap;
  };
  const method = document.createElement("select");
  method.name = "method";
  for (const [value, text] of [["blur", "others pixelated"], ["black", "others blacked out"]]) {
    method.append(new Option(text, value));
  }
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.textContent = "Export";
  const status = document.createElement("p");
  status.className = "muted access-status";
  form.append(frame, field("from", "From", range.from), field("to", "To", range.to), method, submit, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!drawn || drawn[2] < 2 || drawn[3] < 2) {
      status.textContent = "Draw the requester's box on the frame first.";
      return;
    }
    submit.disabled = true;
    status.textContent = "Exporting (the requester is followed frame to frame; this takes a while)…";
    const response = await call(`/api/incidents/${encodeURIComponent(id)}/access-exports`, {
      method: "POST",
      body: JSON.stringify({ from: form.elements.from.value, to: form.elements.to.value, method: method.value,
                             requester: { at: snapshot.from, box: drawn } }),
    });
    submit.disabled = false;
    if (!response.ok) {
      status.textContent = `export refused: ${await response.text()}`;
      return;
    }
    await download(response, "access.zip");
    status.textContent = "Exported (recorded in the register). Watch it before handing it over.";
  });
  box.append(form);
}

async function placeHold(card, id) {
  const requisition = prompt("Judicial requisition's reference for this legal hold:");
  if (requisition === null) return;
  const response = await call(`/api/incidents/${encodeURIComponent(id)}/holds`, {
    method: "POST",
    body: JSON.stringify({ requisition }),
  });
  if (!response.ok) {
    alert(`legal hold refused: ${await response.text()}`);
    return;
  }
  await showEvidence(card, id);
}

// The judicial bundle of the incident's evidence, downloaded as a ZIP (recorded in the register).
async function transmitEvidence(id) {
  const requisition = prompt("Judicial requisition's reference:");
  if (requisition === null) return;
  const authority = prompt("Judicial authority it goes to:");
  if (authority === null) return;
  const response = await call(`/api/incidents/${encodeURIComponent(id)}/transmissions`, {
    method: "POST",
    body: JSON.stringify({ requisition, authority }),
  });
  if (!response.ok) {
    alert(`transmission refused: ${await response.text()}`);
    return;
  }
  await download(response, "transmission.zip");
}

// Save a response's body as the file its Content-Disposition names.
async function download(response, fallback) {
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name ? name[1] : fallback;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// The active legal holds (supervisors): requisition, scope, who placed them; each may be lifted.
async function showHolds() {
  const list = document.getElementById("holds");
  const response = await call("/api/holds");
  if (!response.ok) {
    list.textContent = `legal holds: ${await response.text()}`;
    return;
  }
  const { holds } = await response.json();
  list.replaceChildren(...holds.map((hold) => {
    const item = document.createElement("li");
    item.className = "hold";
    item.dataset.holdId = hold.id;
    item.textContent = `${hold.requisition}: ${hold.scope}, placed by ${hold.placedBy} ${hold.placed} `;
    const lift = document.createElement("button");
    lift.type = "button";
    lift.textContent = "Lift";
    lift.addEventListener("click", async () => {
      if (!confirm(`Lift the legal hold for ${hold.requisition}? Its evidence is then destroyed when due.`)) return;
      const done = await call(`/api/holds/${encodeURIComponent(hold.id)}/release`, { method: "POST", body: "{}" });
      if (!done.ok) alert(`not lifted: ${await done.text()}`);
      await showHolds();
    });
    item.append(lift);
    return item;
  }));
  if (!holds.length) list.textContent = "No active legal hold.";
}

function connect() {
  const link = document.getElementById("link");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { link.textContent = "live"; link.className = "pill online"; });
  source.addEventListener("error", () => {
    link.textContent = "reconnecting";
    link.className = "pill offline";
    // The stream ends when the session does: find out whether we are still logged in (call() redirects).
    call("/api/me").then((response) => {
      if (response.ok && source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    });
  });
  // What follows a resync is the whole live list: start it again.
  source.addEventListener("resync", () => {
    incidents.clear();
    list.replaceChildren();
    showEmpty();
    cameraHealth.clear();
  });
  source.addEventListener("camera", (event) => cameraHealth.apply(JSON.parse(event.data)));
  source.addEventListener("gone", (event) => {
    const { id } = JSON.parse(event.data);
    incidents.delete(id);
    document.getElementById("incident-" + id)?.remove();
    showEmpty();
  });
  source.addEventListener("incident", (event) => {
    const incident = JSON.parse(event.data);
    const known = incidents.get(incident.id);
    if (known && known.revision >= incident.revision) return;
    incidents.set(incident.id, incident);
    render(incident);
  });
}

showClosed.addEventListener("change", () => { for (const i of incidents.values()) render(i); });
document.getElementById("history-toggle").addEventListener("click", () => {
  const view = document.getElementById("history-view");
  view.hidden = !view.hidden;
  if (!view.hidden && historyCursor === null && !historyList.children.length) loadOlder();
});
olderButton.addEventListener("click", loadOlder);

async function start() {
  const response = await call("/api/me");
  if (!response.ok) return;
  me = await response.json();
  if (me.mustChangePassword) {
    location.assign("/login");
    return;
  }
  document.getElementById("station").textContent = "station " + me.station;
  document.getElementById("whoami").textContent = `${me.user} (${me.roles.join(", ")})`;
  document.getElementById("register-link").hidden = !me.register;
  const holdsToggle = document.getElementById("holds-toggle");
  holdsToggle.hidden = !me.roles.includes("supervisor");
  holdsToggle.addEventListener("click", () => {
    const view = document.getElementById("holds-view");
    view.hidden = !view.hidden;
    if (!view.hidden) showHolds();
  });
  if (!me.views) {
    document.getElementById("no-view").hidden = false;
    document.getElementById("cameras-view").hidden = true;
    document.getElementById("empty").hidden = true;
    document.getElementById("history-toggle").disabled = true;
    return;
  }
  connect();
}
start();
