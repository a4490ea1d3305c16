// Operator console: renders the station's incidents from server-sent events and posts operator actions.
"use strict";

const incidents = new Map(); // id -> latest incident (camelCase protobuf JSON)
const list = document.getElementById("incidents");
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

function render(incident) {
  let card = document.getElementById("incident-" + incident.id);
  if (!card) {
    card = template.content.firstElementChild.cloneNode(true);
    card.id = "incident-" + incident.id;
    card.dataset.incidentId = incident.id;
    const img = card.querySelector("img");
    img.src = `/api/incidents/${encodeURIComponent(incident.id)}/snapshot.jpg`;
    for (const button of card.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", () => act(incident.id, button.dataset.action, button));
    }
    list.prepend(card);
  }
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
  const svg = card.querySelector("svg");
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
  card.querySelector("button.ack").disabled = incident.state !== "new";
  card.querySelector("button.esc").disabled = incident.state === "escalated" || incident.state === "closed";
  card.querySelector("button.close").disabled = incident.state === "closed";
  card.hidden = incident.state === "closed" && !showClosed.checked;
  document.getElementById("empty").hidden = incidents.size > 0;
}

async function act(id, action, button) {
  button.disabled = true;
  const response = await fetch(`/api/incidents/${encodeURIComponent(id)}/actions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ action }),
  });
  if (!response.ok) {
    button.disabled = false;
    alert(`${action} failed: ${await response.text()}`);
  }
}

function connect() {
  const link = document.getElementById("link");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { link.textContent = "live"; link.className = "pill online"; });
  source.addEventListener("error", () => { link.textContent = "reconnecting"; link.className = "pill offline"; });
  source.addEventListener("incident", (event) => {
    const incident = JSON.parse(event.data);
    const known = incidents.get(incident.id);
    if (known && known.revision >= incident.revision) return;
    incidents.set(incident.id, incident);
    render(incident);
  });
}

showClosed.addEventListener("change", () => { for (const i of incidents.values()) render(i); });
fetch("/healthz").then((r) => r.json()).then((h) => {
  document.getElementById("station").textContent = "station " + h.station;
});
connect();
