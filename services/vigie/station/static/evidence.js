// Evidence of the incident open in the detail pane: its clip (played on demand: each play of the file is a
// view in the register), hashes, due date and legal holds; supervisors' legal holds, judicial bundles and
// right-of-access exports.
"use strict";
// `me` and `call()` are in console.js.

// The incident's evidence in `box`: listing it is no view; a clip is fetched (and recorded) when played.
async function showEvidence(box, id) {
  const response = await call(`/api/incidents/${encodeURIComponent(id)}/evidence`);
  box.hidden = false;
  if (!response.ok) {
    box.textContent = `evidence: ${await response.text()}`;
    return;
  }
  const { items } = await response.json();
  if (box.dataset.incidentId !== id) return; // another incident was opened meanwhile
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
      const play = document.createElement("button");
      play.type = "button";
      play.className = "play";
      play.textContent = "Play clip";
      play.title = "play the evidence clip here (recorded in the register)";
      play.addEventListener("click", () => {
        const video = document.createElement("video");
        video.controls = true;
        video.autoplay = true;
        video.muted = true;
        video.src = item.url;
        play.replaceWith(video);
      });
      const link = document.createElement("a");
      link.href = item.url;
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "open the clip";
      row.append(play, " ", link);
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

async function placeHold(box, id) {
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
  await showEvidence(box, id);
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
