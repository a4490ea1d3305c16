// The auditor's register page: entries page by page with filters, the hash chain's status, exports.
// Read-only: nothing here changes the register (the export is recorded in it by the server).
"use strict";
// `me` and `call()` are in console.js, loaded before this script.

const body = document.querySelector("#entries tbody");
const moreButton = document.getElementById("more");
const COLUMNS = ["seq", "at", "kind", "user", "station", "camera_id", "incident_id", "record", "service", "client"];
let next = null; // after_seq of the next page; null at the end


function say(text) {
  const error = document.getElementById("error");
  error.textContent = text;
  error.hidden = !text;
}

// The filters as query parameters (datetime-local is the browser's local time: sent as UTC).
function filters() {
  const query = new URLSearchParams();
  for (const name of ["since", "until"]) {
    const value = document.getElementById(name).value;
    if (value) query.set(name, new Date(value).toISOString());
  }
  for (const name of ["camera", "user", "kind"]) {
    const value = document.getElementById(name).value.trim();
    if (value) query.set(name, value);
  }
  return query;
}

function row(entry) {
  const tr = document.createElement("tr");
  tr.dataset.testid = "entry";
  tr.dataset.seq = entry.seq;
  tr.dataset.kind = entry.kind;
  tr.id = "seq-" + entry.seq;
  for (const name of COLUMNS) {
    const td = document.createElement("td");
    td.textContent = entry[name];
    td.className = name;
    tr.append(td);
  }
  const detail = document.createElement("td");
  detail.className = "detail";
  detail.textContent = entry.subject ? `${entry.subject}: ${entry.detail}` : entry.detail;
  tr.append(detail);
  return tr;
}

async function load(fresh) {
  if (fresh) {
    next = null;
    body.replaceChildren();
  }
  const query = filters();
  query.set("limit", "100");
  if (next !== null) query.set("after_seq", String(next));
  moreButton.disabled = true;
  const response = await call(`/api/register?${query}`);
  moreButton.disabled = false;
  if (!response.ok) {
    say(await response.text());
    return;
  }
  say("");
  const page = await response.json();
  const kind = document.getElementById("kind");
  if (kind.options.length === 1) {
    for (const name of page.kinds) kind.append(new Option(name, name));
  }
  body.append(...page.entries.map(row));
  next = page.next;
  moreButton.hidden = next === null;
  document.getElementById("none").hidden = body.children.length > 0;
  markBad();
}

let bad = null; // seq of the first entry found wrong
function markBad() {
  for (const tr of body.querySelectorAll("tr.bad")) tr.classList.remove("bad");
  if (bad !== null) document.getElementById("seq-" + bad)?.classList.add("bad");
}

async function verify() {
  const chain = document.getElementById("chain");
  const detail = document.getElementById("chain-detail");
  chain.textContent = "checking…";
  chain.className = "pill offline";
  const response = await call("/api/register/verify");
  if (!response.ok) {
    chain.textContent = "not checked";
    detail.textContent = await response.text();
    detail.hidden = false;
    return;
  }
  const result = await response.json();
  chain.dataset.ok = String(result.ok);
  chain.dataset.firstBadSeq = result.first_bad_seq ?? "";
  if (result.ok) {
    chain.textContent = `chain intact: ${result.checked} entries`;
    chain.className = "pill online";
    detail.hidden = true;
    bad = null;
  } else {
    const at = result.first_bad_seq !== null ? `seq ${result.first_bad_seq}` : "its ends";
    chain.textContent = `chain broken at ${at}`;
    chain.className = "pill broken";
    detail.textContent = `Chain broken at ${at}${result.entry_id ? ` (entry ${result.entry_id})` : ""}: ` +
      `${result.reason}. ${result.checked} entries intact before it. Checked ${result.verified_at}.`;
    detail.hidden = false;
    bad = result.first_bad_seq;
  }
  markBad();
}

function exportLinks() {
  for (const format of ["csv", "json"]) {
    const query = filters();
    query.set("format", format);
    document.getElementById("export-" + format).href = `/api/register/export?${query}`;
  }
}

document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  exportLinks();
  load(true);
});
document.getElementById("filters").addEventListener("input", exportLinks);
moreButton.addEventListener("click", () => load(false));
document.getElementById("verify").addEventListener("click", verify);

async function start() {
  const response = await call("/api/me");
  if (!response.ok) return;
  me = await response.json();
  document.getElementById("whoami").textContent = `${me.user} (${me.roles.join(", ")})`;
  document.getElementById("incidents-link").hidden = !me.views;
  exportLinks();
  await load(true);
  await verify();
}
start();
