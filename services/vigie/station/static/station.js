// Operator console: wires the station's server-sent events to the alarm table (alarms.js), the detail pane
// (detail.js) and the camera strip (cameras.js). The live list is what the station holds (open incidents,
// recently closed ones); older closed incidents are read back page by page from
// /api/incidents?state=closed&before=<cursor> when the state filter shows closed ones.
"use strict";
// `me` and `call()` are in console.js, loaded before this script.

const olderButton = document.getElementById("load-older");
let historyCursor = null; // cursor of the next history page; null before the first one
let historyStarted = false;
let syncing = true; // the whole list is streaming in (after a resync): no sound, no flash
let syncTimer = null;

// One more page of the history (closed incidents no longer held), into the table.
async function loadOlder() {
  historyStarted = true;
  olderButton.disabled = true;
  const query = new URLSearchParams({ state: "closed", limit: "100" });
  if (historyCursor) query.set("before", historyCursor);
  const response = await call(`/api/incidents?${query}`);
  if (!response.ok) {
    olderButton.disabled = false;
    document.getElementById("list-status").textContent = `history: ${await response.text()}`;
    return;
  }
  const page = await response.json();
  putOlder(page.incidents);
  historyCursor = page.next;
  const end = page.next === null;
  olderButton.hidden = end;
  olderButton.disabled = end;
  document.getElementById("history-end").hidden = !end;
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
  // What follows a resync is the whole live list: start it again, quietly until it has streamed in.
  source.addEventListener("resync", () => {
    clearLive();
    clearCameras(); // every camera comes again, after the incidents
    settle();
  });
  source.addEventListener("gone", (event) => {
    const { id } = JSON.parse(event.data);
    dropIncident(id);
    if (shown && shown.id === id) refreshDetail(null);
  });
  source.addEventListener("incident", (event) => {
    const incident = JSON.parse(event.data);
    const previous = live.get(incident.id);
    if (previous && previous.revision >= incident.revision) return;
    putIncident(incident);
    if (syncing) settle();
    else announce(incident, previous);
    refreshDetail(incident);
  });
  source.addEventListener("camera", (event) => putCamera(JSON.parse(event.data)));
}

// The initial list has streamed in once no incident came for 700 ms (then #link says data-synced="true").
function settle() {
  const link = document.getElementById("link");
  syncing = true;
  link.dataset.synced = "false";
  clearTimeout(syncTimer);
  syncTimer = setTimeout(() => { syncing = false; link.dataset.synced = "true"; }, 700);
}

onOpen = (incident) => showDetail(incident, live.has(incident.id));
onHistoryWanted = () => { if (!historyStarted) loadOlder(); };
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
  document.getElementById("rates-link").hidden = !me.roles.includes("supervisor");
  const holdsToggle = document.getElementById("holds-toggle");
  holdsToggle.hidden = !me.roles.includes("supervisor");
  holdsToggle.addEventListener("click", () => {
    const view = document.getElementById("holds-view");
    view.hidden = !view.hidden;
    if (!view.hidden) showHolds();
  });
  if (!me.views) {
    document.getElementById("no-view").hidden = false;
    document.getElementById("manager").hidden = true;
    return;
  }
  connect();
}
start();
