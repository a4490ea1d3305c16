// Words and numbers of the console: kinds, states, verdicts, local date and time, human durations.
"use strict";

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

// State words as the station sends them, and what the table says (colour is never the only carrier).
const STATE_LABEL = {
  new: "NEW", acknowledged: "TAKEN", on_hold: "ON HOLD", escalated: "ESCALATED", closed: "CLOSED",
};
// Most urgent first: a folded group shows the most urgent state of its incidents.
const STATE_RANK = { new: 0, escalated: 1, acknowledged: 2, on_hold: 3, closed: 4 };

const VERDICT_LABEL = { confirmed: "confirmed", false_alarm: "false alarm", test: "test" };
const REASON_LABEL = {
  shadow_or_light: "shadow or light", reflection: "reflection", vegetation: "vegetation",
  person_still: "person standing still", object_owned: "object belongs to someone", other: "other",
};

// An enum word of the station's JSON, whether it comes as "false_alarm" or "KIND_FALSE_ALARM".
function enumWord(value, prefix) {
  if (value === undefined || value === null || value === "") return "";
  return String(value).replace(new RegExp(`^${prefix}_`), "").toLowerCase();
}

function kindLabel(kind) {
  return KIND_LABEL[kind] || kind || "—";
}

// Priority 1 (highest) to 5; 0 or absent (incidents from before priorities) sorts last.
function priorityOf(incident) {
  const p = Number(incident.priority || 0);
  return p >= 1 && p <= 5 ? p : 9;
}

function priorityText(p) {
  return p >= 1 && p <= 5 ? `P${p}` : "—";
}

// Milliseconds since the epoch of an int64 ns JSON value (a string, or a number), 0 when absent.
function msOf(ns) {
  if (!ns || ns === "0") return 0;
  return Number(BigInt(typeof ns === "number" ? Math.trunc(ns) : ns) / 1000000n);
}

const pad = (n) => String(n).padStart(2, "0");

// "05/12 14:03:21": local day/month and time; the year too when it is not this year's. `ns`: an int64 ns JSON
// string, or a number of milliseconds.
function when(ns) {
  const ms = typeof ns === "number" ? ns : msOf(ns);
  if (!ms) return "—";
  const d = new Date(ms);
  const year = d.getFullYear() !== new Date().getFullYear() ? `/${d.getFullYear()}` : "";
  return `${pad(d.getDate())}/${pad(d.getMonth() + 1)}${year} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// The full local date and time, for tooltips.
function whenLong(ns) {
  const ms = typeof ns === "number" ? ns : msOf(ns);
  return ms ? new Date(ms).toLocaleString() : "";
}

// "28 min 47 s", "2 h 05 min", "3 d 4 h", "12 s", "0.4 s" from seconds.
function duration(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s)) return "—";
  if (s < 10) return `${Math.max(0, s).toFixed(1).replace(/\.0$/, "")} s`;
  const t = Math.round(s);
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${pad(t % 60)} s`.replace(/ 0(\d) s$/, " $1 s");
  if (t < 86400) return `${Math.floor(t / 3600)} h ${pad(Math.floor((t % 3600) / 60))} min`;
  return `${Math.floor(t / 86400)} d ${Math.floor((t % 86400) / 3600)} h`;
}

// A fact of the detection in words: seconds as durations, other numbers rounded.
function factValue(key, value) {
  if (key.endsWith("_s")) return duration(value);
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function factLabel(key) {
  return key.replace(/_s$/, "").replace(/_/g, " ");
}

// What the event is, in words: the sub-type named in its track id ("<camera>/crowd/surge/1",
// "<camera>/colour_query/red/1", "<camera>/tamper/blinded-1") and the durations among its facts.
function what(incident) {
  const parts = [];
  const segments = ((incident.trackIds || [])[0] || "").split("/");
  if (segments.length >= 4) parts.push(segments.slice(2, -1).join(" "));
  else if (segments.length === 3 && /-\d+$/.test(segments[2])) parts.push(segments[2].replace(/-\d+$/, ""));
  for (const [key, value] of Object.entries(incident.attributes || {}).sort()) {
    if (key.endsWith("_s")) parts.push(`${factLabel(key)} ${duration(value)}`);
  }
  return parts.join(" · ") || "—";
}

// The zone as the operator reads it: its name when the camera's geometry is known, else its index.
function zoneText(incident) {
  return incident.zone ? `zone ${incident.zone}` : "whole view";
}

// Verdict of a closed incident, in words ("false alarm: reflection (op-2)").
function verdictText(verdict) {
  if (!verdict) return "";
  const kind = enumWord(verdict.kind, "KIND");
  if (!kind || kind === "unspecified") return "";
  const reason = enumWord(verdict.reason, "REASON");
  const because = reason && reason !== "unspecified" ? `: ${REASON_LABEL[reason] || reason}` : "";
  return `${VERDICT_LABEL[kind] || kind}${because}${verdict.author ? ` (${verdict.author})` : ""}`;
}
