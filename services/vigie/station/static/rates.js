// The supervisors' false-alarm rates: GET /api/rates over the chosen window, a sortable table per camera
// and kind (flagged pairs marked), the per-zone and per-kind breakdowns. Read-only.
"use strict";
// `me` and `call()` are in console.js, loaded before this script.

const windowSelect = document.getElementById("window");
let latest = null; // the latest answer of /api/rates
let pairs = []; // its pairs
let sortKey = "rate";
let sortDescending = true;

function say(text) {
  const error = document.getElementById("error");
  error.textContent = text;
  error.hidden = !text;
}

function percent(value) {
  return (100 * value).toFixed(1) + " %";
}

// "90.0 % (59.6-98.2 %)", or "–" without a verdict that counts.
function rateText(tally) {
  if (tally.rate === null) return "–";
  const [low, high] = tally.interval;
  return `${percent(tally.rate)} (${(100 * low).toFixed(1)}–${percent(high)})`;
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function counts(tally) {
  return [tally.closed, tally.confirmed, tally.false_alarms, tally.tests].map((n) => cell(String(n), "number"));
}

function pairRow(pair) {
  const tr = document.createElement("tr");
  tr.dataset.testid = "pair";
  tr.dataset.camera = pair.camera;
  tr.dataset.kind = pair.kind;
  tr.dataset.flagged = String(pair.flagged);
  if (pair.flagged) tr.className = "flagged";
  const flag = cell(pair.flagged ? "FLAGGED" : "", "flag");
  if (pair.flagged) flag.title = `over ${percent(latest.flag_rate)} with at least ${latest.min_verdicts} verdicts`;
  tr.append(cell(pair.camera), cell(pair.kind), ...counts(pair), cell(rateText(pair), "rate"),
    cell(pair.dominant.join(", "), "reasons"), flag);
  return tr;
}

function compare(a, b) {
  let x = a[sortKey], y = b[sortKey];
  if (x === null) x = -1;
  if (y === null) y = -1;
  const order = typeof x === "string" ? x.localeCompare(y) : x - y;
  return sortDescending ? -order : order;
}

function showPairs() {
  const body = document.querySelector("#pairs tbody");
  body.replaceChildren(...[...pairs].sort(compare).map(pairRow));
  for (const th of document.querySelectorAll("#pairs th[data-key]")) {
    if (th.dataset.key === sortKey) th.setAttribute("aria-sort", sortDescending ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
  document.getElementById("none").hidden = pairs.length > 0;
}

function showZones() {
  const rows = [];
  for (const pair of pairs) {
    for (const zone of pair.zones) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "zone";
      tr.append(cell(pair.camera), cell(pair.kind), cell(zone.zone === "" ? "whole view" : zone.zone),
        ...counts(zone), cell(rateText(zone), "rate"), cell(zone.dominant.join(", "), "reasons"));
      rows.push(tr);
    }
  }
  document.querySelector("#zones tbody").replaceChildren(...rows);
}

function showKinds(rates) {
  document.querySelector("#kinds tbody").replaceChildren(...rates.kinds.map((kind) => {
    const tr = document.createElement("tr");
    tr.append(cell(kind.kind), ...counts(kind), cell(rateText(kind), "rate"), cell(kind.dominant.join(", "), "reasons"));
    return tr;
  }));
  const all = rates.overall;
  document.getElementById("overall").textContent = `Station ${rates.station}: ${all.closed} closed, ` +
    `${all.confirmed} confirmed, ${all.false_alarms} false alarms, ${all.tests} tests; false-alarm rate ` +
    `${rateText(all)}.`;
}

// The figures over the selected window; first over the station's own (rates_window_s).
async function load(first = false) {
  const response = await call(first ? "/api/rates" : `/api/rates?window_s=${windowSelect.value}`);
  if (!response.ok) {
    say(await response.text());
    return;
  }
  say("");
  latest = await response.json();
  pairs = latest.pairs;
  if (first) windowSelect.value = String(latest.window_s);
  if (!windowSelect.value) windowSelect.value = "604800"; // another window configured: not in the list
  document.getElementById("span").textContent = `closed from ${latest.from} to ${latest.to}`;
  showPairs();
  showZones();
  showKinds(latest);
}

for (const th of document.querySelectorAll("#pairs th[data-key]")) {
  th.addEventListener("click", () => {
    sortDescending = th.dataset.key === sortKey ? !sortDescending : true;
    sortKey = th.dataset.key;
    showPairs();
  });
}
windowSelect.addEventListener("change", () => load());
document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());

async function start() {
  const response = await call("/api/me");
  if (!response.ok) return;
  me = await response.json();
  document.getElementById("whoami").textContent = `${me.user} (${me.roles.join(", ")})`;
  await load(true);
}
start();
