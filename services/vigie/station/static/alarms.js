// The alarm table: every incident held in memory, filtered, sorted by priority then last seen (newest first),
// storms of one camera, kind and zone folded into one group row; only the rows in view are in the DOM.
//
// Changes only mark the table dirty: it is rebuilt at most once per animation frame (and at most every
// REBUILD_MS while a burst streams in), in memory (filter, sort, fold: O(n log n) on arrays, no DOM), then the
// ROW_H-pixel rows that the scroll position shows are written into a fixed pool of <tr> elements.
"use strict";
// Uses format.js; station.js sets `onOpen` (open an incident's detail) and feeds `live` and `older`.

const live = new Map(); // id -> latest incident held by the station (open, recently closed)
const older = new Map(); // id -> closed incident read back from the history (not held any more)
const expanded = new Set(); // keys of the groups unfolded
const ROW_H = 28; // px, the fixed height of a row (station.css: #alarms tbody tr)
const OVERSCAN = 8;
const REBUILD_MS = 120;
const FLASH_MS = 9000;
const MUTE_KEY = "vigie.console.mute";

const scroller = document.getElementById("table-scroll");
const grid = document.getElementById("alarms"); // takes the focus and the keys
const tbody = document.getElementById("rows");
const filters = {
  state: document.getElementById("filter-state"),
  kind: document.getElementById("filter-kind"),
  camera: document.getElementById("filter-camera"),
  priority: document.getElementById("filter-priority"),
  search: document.getElementById("search"),
  fold: document.getElementById("fold"),
};
const known = { kind: new Set(), camera: new Set() }; // values offered by the kind and camera filters
const flashUntil = new Map(); // id -> ms until which its row flashes

let view = []; // rows shown, in order: {group, key, items, top} or {incident, key, depth}
let cursor = -1; // index in `view` of the row with the keyboard cursor
let cursorKey = null; // key of that row, kept across rebuilds
let openKey = null; // key of the incident whose detail is open
let dirty = false;
let scheduled = false;
let lastBuild = 0;
let onOpen = () => {}; // set by station.js: opens the detail of an incident
let onHistoryWanted = () => {}; // set by station.js: the filter now shows closed incidents

// Sort key and search text, computed once per revision.
function prepare(incident) {
  incident._prio = priorityOf(incident);
  incident._last = msOf(incident.lastSeenNs) || msOf(incident.updatedNs);
  incident._group = `${incident.cameraId}|${incident.kind}|${incident.zone || ""}`;
  return incident;
}

function searchText(incident) {
  if (incident._text === undefined) {
    const notes = (incident.notes || []).map((n) => `${n.author} ${n.text}`);
    const history = (incident.history || []).map((h) => `${h.actor} ${h.what} ${h.detail || ""}`);
    incident._text = [incident.id, kindLabel(incident.kind), incident.kind, incident.cameraId, zoneText(incident),
      incident.owner, incident.operator, STATE_LABEL[incident.state], what(incident), verdictText(incident.verdict),
      ...(incident.comments || []), ...notes, ...history].join("\n").toLowerCase();
  }
  return incident._text;
}

function byUrgency(a, b) {
  return a._prio - b._prio || b._last - a._last || (a.id < b.id ? -1 : 1);
}

// Put an incident (a new revision) in the table; returns the revision it replaces (undefined when new).
function putIncident(incident) {
  const previous = live.get(incident.id);
  live.set(incident.id, prepare(incident));
  older.delete(incident.id);
  offer("kind", incident.kind);
  offer("camera", incident.cameraId);
  markDirty();
  return previous;
}

function dropIncident(id) {
  if (live.delete(id)) markDirty();
}

function clearLive() {
  live.clear();
  markDirty();
}

function putOlder(incidents) {
  for (const incident of incidents) {
    if (live.has(incident.id)) continue;
    older.set(incident.id, prepare(incident));
    offer("kind", incident.kind);
    offer("camera", incident.cameraId);
  }
  markDirty();
}

// A new value of the kind or camera filter: one more option, in order.
function offer(which, value) {
  if (!value || known[which].has(value)) return;
  known[which].add(value);
  const select = filters[which];
  const option = new Option(which === "kind" ? kindLabel(value) : value, value);
  const after = [...select.options].slice(1).find((o) => o.value > value);
  select.insertBefore(option, after || null);
}

function markDirty() {
  dirty = true;
  schedule();
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(frame);
}

function frame() {
  scheduled = false;
  if (dirty) {
    const wait = lastBuild + REBUILD_MS - performance.now();
    if (wait > 0 && view.length) {
      if (!frame.later) frame.later = setTimeout(() => { frame.later = 0; schedule(); }, wait); // a burst: one
      // rebuild per REBUILD_MS, the rows drawn meanwhile
    } else {
      dirty = false;
      rebuild();
      lastBuild = performance.now();
    }
  }
  draw();
}

function matches(incident, f) {
  if (f.state === "open" && incident.state === "closed") return false;
  if (f.state === "closed" && incident.state !== "closed") return false;
  if (f.kind && incident.kind !== f.kind) return false;
  if (f.camera && incident.cameraId !== f.camera) return false;
  if (f.priority && incident._prio > f.priority) return false;
  return !f.words.length || f.words.every((w) => searchText(incident).includes(w));
}

// Filter, sort and fold every incident into `view` (no DOM).
function rebuild() {
  const f = {
    state: filters.state.value, kind: filters.kind.value, camera: filters.camera.value,
    priority: Number(filters.priority.value) || 0,
    words: filters.search.value.toLowerCase().split(/\s+/).filter(Boolean),
  };
  const chosen = [];
  for (const incident of live.values()) if (matches(incident, f)) chosen.push(incident);
  if (f.state !== "open") for (const incident of older.values()) if (matches(incident, f)) chosen.push(incident);
  chosen.sort(byUrgency);
  const rows = [];
  if (filters.fold.checked) {
    const groups = new Map();
    for (const incident of chosen) {
      const members = groups.get(incident._group);
      if (members) members.push(incident);
      else groups.set(incident._group, [incident]);
    }
    for (const incident of chosen) { // in urgency order: a group sits where its most urgent member would
      const members = groups.get(incident._group);
      if (members.length === 1) rows.push({ incident, key: `i:${incident.id}`, depth: 0 });
      else if (members[0] === incident) {
        const key = `g:${incident._group}`;
        rows.push({ group: true, key, items: members, top: incident });
        if (expanded.has(key)) for (const m of members) rows.push({ incident: m, key: `i:${m.id}`, depth: 1 });
      }
    }
  } else {
    for (const incident of chosen) rows.push({ incident, key: `i:${incident.id}`, depth: 0 });
  }
  view = rows;
  cursor = cursorKey === null ? -1 : view.findIndex((r) => r.key === cursorKey);
  status(chosen.length, f.state);
}

function status(shown, state) {
  const groups = view.filter((r) => r.group).length;
  const folded = groups ? ` in ${view.length - view.filter((r) => r.depth === 1).length} rows (${groups} folded groups)` : "";
  const history = state !== "open" && older.size ? ` · ${older.size} closed read from the history` : "";
  document.getElementById("list-status").textContent =
    `${shown} ${state === "open" ? "open " : state === "closed" ? "closed " : ""}alarm${shown === 1 ? "" : "s"}` +
    `${folded} · ${live.size} held${history}`;
  document.getElementById("alarms").dataset.rows = String(shown);
  const empty = document.getElementById("empty");
  empty.hidden = view.length > 0;
  empty.textContent = live.size || older.size ? "No alarm matches the filters."
    : "No incident. Alerts appear here as soon as the analytics raise them.";
  document.getElementById("history-controls").hidden = state === "open";
}

// Write the rows in view into the pool of <tr> (spacers above and below keep the scroll height).
function draw() {
  const height = scroller.clientHeight || 600;
  const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(view.length, Math.ceil((scroller.scrollTop + height) / ROW_H) + OVERSCAN);
  const wanted = last - first + 2;
  while (tbody.children.length < wanted) tbody.append(newRow());
  while (tbody.children.length > wanted) tbody.lastElementChild.remove();
  const rows = tbody.children;
  spacer(rows[0], first * ROW_H);
  const now = Date.now();
  for (let i = first; i < last; i++) fillRow(rows[i - first + 1], view[i], i, now);
  spacer(rows[rows.length - 1], (view.length - last) * ROW_H);
  grid.setAttribute("aria-rowcount", String(view.length + 1));
  const active = cursor >= first && cursor < last ? rows[cursor - first + 1] : null;
  if (active) grid.setAttribute("aria-activedescendant", active.id);
  else grid.removeAttribute("aria-activedescendant");
}

function newRow() {
  const tr = document.createElement("tr");
  for (const name of ["prio", "state", "kind", "camera", "zone", "first", "last", "count", "owner"]) {
    const td = document.createElement("td");
    td.className = `c-${name}`;
    tr.append(td);
  }
  tr.addEventListener("click", () => {
    const index = Number(tr.dataset.index);
    if (Number.isInteger(index)) activate(index);
  });
  return tr;
}

function spacer(tr, px) {
  tr.className = "spacer";
  tr.removeAttribute("id");
  for (const key of ["incidentId", "group", "state", "index", "testid"]) delete tr.dataset[key];
  tr.removeAttribute("aria-selected");
  tr.style.height = `${px}px`;
  for (const td of tr.children) td.textContent = "";
  tr.hidden = px === 0;
}

function fillRow(tr, row, index, now) {
  const c = tr.children;
  const incident = row.group ? row.top : row.incident;
  tr.hidden = false;
  tr.style.height = "";
  tr.id = `row-${index}`;
  tr.dataset.index = String(index);
  tr.setAttribute("aria-rowindex", String(index + 2));
  tr.setAttribute("aria-selected", String(index === cursor));
  let state = incident.state;
  if (row.group) {
    state = row.items.reduce((s, m) => (STATE_RANK[m.state] < STATE_RANK[s] ? m.state : s), "closed");
    tr.dataset.group = row.key.slice(2);
    tr.dataset.testid = "group";
    delete tr.dataset.incidentId;
    tr.setAttribute("aria-expanded", String(expanded.has(row.key)));
  } else {
    tr.dataset.incidentId = incident.id;
    tr.dataset.testid = older.has(incident.id) ? "history-incident" : "incident";
    delete tr.dataset.group;
    tr.removeAttribute("aria-expanded");
  }
  tr.dataset.state = state;
  const flashing = !row.group && (flashUntil.get(incident.id) || 0) > now;
  tr.className = [`row`, `p${incident._prio}`, state, row.group ? "group" : "", row.depth ? "member" : "",
    index === cursor ? "cursor" : "", row.key === openKey ? "open" : "", flashing ? "flash" : ""].join(" ");
  c[0].textContent = priorityText(incident._prio);
  c[1].textContent = STATE_LABEL[state] || state;
  c[2].textContent = (row.group ? (expanded.has(row.key) ? "▾ " : "▸ ") : row.depth ? "· " : "") + kindLabel(incident.kind);
  c[3].textContent = incident.cameraId;
  c[4].textContent = incident.zone || "—";
  const firstNs = row.group ? Math.min(...row.items.map((m) => msOf(m.firstSeenNs))) : msOf(incident.firstSeenNs);
  c[5].textContent = when(firstNs);
  c[6].textContent = when(incident._last);
  c[6].title = whenLong(incident._last);
  c[7].textContent = row.group ? `${row.items.length} alarms` : String(incident.count);
  c[8].textContent = row.group ? owners(row.items) : incident.owner || "—";
}

function owners(items) {
  const names = [...new Set(items.map((m) => m.owner).filter(Boolean))];
  return names.length ? names.slice(0, 2).join(", ") + (names.length > 2 ? "…" : "") : "—";
}

// Click or Enter on a row: a group folds or unfolds, an incident opens in the detail pane.
function activate(index) {
  const row = view[index];
  if (!row) return;
  moveCursor(index);
  if (row.group) {
    if (expanded.has(row.key)) expanded.delete(row.key);
    else expanded.add(row.key);
    markDirty();
  } else {
    openKey = row.key;
    onOpen(row.incident);
    schedule();
  }
}

function moveCursor(index) {
  if (!view.length) return;
  cursor = Math.max(0, Math.min(view.length - 1, index));
  cursorKey = view[cursor].key;
  const top = cursor * ROW_H;
  const room = scroller.clientHeight - ROW_H * 2; // the sticky header takes one row
  if (top < scroller.scrollTop) scroller.scrollTop = top;
  else if (top > scroller.scrollTop + room) scroller.scrollTop = top - room;
  schedule();
}

scroller.addEventListener("scroll", schedule, { passive: true });
window.addEventListener("resize", schedule);
grid.addEventListener("keydown", (event) => {
  const page = Math.max(1, Math.floor(scroller.clientHeight / ROW_H) - 2);
  const row = view[cursor];
  const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
  if (event.key in moves) moveCursor(cursor < 0 ? 0 : cursor + moves[event.key]);
  else if (event.key === "Home") moveCursor(0);
  else if (event.key === "End") moveCursor(view.length - 1);
  else if (event.key === "Enter" || event.key === " ") activate(cursor < 0 ? 0 : cursor);
  else if (event.key === "ArrowRight" && row?.group && !expanded.has(row.key)) activate(cursor);
  else if (event.key === "ArrowLeft" && row?.group && expanded.has(row.key)) activate(cursor);
  else if (event.key === "ArrowLeft" && row?.depth) {
    const group = view.slice(0, cursor).findLastIndex((r) => r.group);
    if (group >= 0) moveCursor(group);
  } else return;
  event.preventDefault();
});
for (const name of ["state", "kind", "camera", "priority", "fold"]) {
  filters[name].addEventListener("change", () => {
    if (name === "state" && filters.state.value !== "open") onHistoryWanted();
    scroller.scrollTop = 0;
    markDirty();
  });
}
filters.search.addEventListener("input", () => { scroller.scrollTop = 0; markDirty(); });
document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());

// -- new high-priority alarms: a beep (WebAudio, no file) and a flash of the row; Mute is remembered ---------

const muteButton = document.getElementById("mute");
let audio = null;

function muted() {
  return localStorage.getItem(MUTE_KEY) === "1";
}

function showMute() {
  muteButton.setAttribute("aria-pressed", String(muted()));
  muteButton.textContent = muted() ? "Sound off (muted)" : "Sound on";
}

muteButton.addEventListener("click", () => {
  localStorage.setItem(MUTE_KEY, muted() ? "0" : "1");
  showMute();
});
showMute();

// Browsers start sound only after a gesture: the context is made (or resumed) at the first one.
function wakeAudio() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch (_) { audio = null; }
}
document.addEventListener("pointerdown", wakeAudio, { once: true });
document.addEventListener("keydown", wakeAudio, { once: true });

function beep(times) {
  if (muted()) return;
  wakeAudio();
  if (!audio) return;
  for (let n = 0; n < times; n++) {
    const at = audio.currentTime + n * 0.25;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.12, at);
    gain.gain.exponentialRampToValueAtTime(0.001, at + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(at);
    osc.stop(at + 0.2);
  }
}

// An incident that just arrived (or came back from closed) with priority 1 or 2, or that was just escalated
// (whatever its priority: nobody took it in time): beep, flash its row, say it.
function announce(incident, previous) {
  const fresh = !previous || (previous.state === "closed" && incident.state !== "closed");
  const escalated = incident.state === "escalated" &&
    (!previous || Number(incident.escalationLevel || 0) > Number(previous.escalationLevel || 0));
  if (!escalated && (!fresh || incident.state !== "new" || incident._prio > 2)) return;
  flashUntil.set(incident.id, Date.now() + FLASH_MS);
  setTimeout(() => { flashUntil.delete(incident.id); schedule(); }, FLASH_MS + 50);
  beep(incident._prio === 1 || escalated ? 2 : 1);
  const banner = document.getElementById("alarm-banner");
  const what = escalated ? `Escalated (level ${incident.escalationLevel}, not acknowledged in time)`
    : "New";
  banner.textContent = `${what} ${priorityText(incident._prio)} alarm: ${kindLabel(incident.kind)} on ` +
    `${incident.cameraId} (${zoneText(incident)}) at ${when(incident.firstSeenNs)}. `;
  const show = document.createElement("button");
  show.type = "button";
  show.textContent = "Show";
  show.addEventListener("click", () => { banner.hidden = true; openIncident(incident.id); });
  banner.append(show);
  banner.hidden = false;
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => { banner.hidden = true; }, 30000);
}

// Select and open an incident by id (unfolding its group, clearing filters that hide it).
function openIncident(id) {
  const incident = live.get(id) || older.get(id);
  if (!incident) return;
  expanded.add(`g:${incident._group}`);
  dirty = false;
  rebuild();
  let index = view.findIndex((r) => r.key === `i:${id}`);
  if (index < 0) {
    for (const name of ["kind", "camera", "priority", "search"]) filters[name].value = "";
    if (incident.state === "closed") filters.state.value = "all";
    rebuild();
    index = view.findIndex((r) => r.key === `i:${id}`);
  }
  if (index >= 0) activate(index);
  grid.focus();
}
