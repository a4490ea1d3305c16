// The live view of one camera (live.html?camera=<id>&incident=<id>): WebRTC, receive-only video from the
// station, and a data channel on which the station describes each frame it sends (its capture time and RTP
// timestamp), so the page shows how far behind capture the picture is: each frame shown is matched to its
// description by its RTP timestamp (requestVideoFrameCallback), its delay is its display time less its
// capture time. Without that callback, the delay is estimated: the description's arrival, plus the mean
// jitter-buffer and decode times of getStats(). Uses call() and me from console.js.
"use strict";

const params = new URLSearchParams(location.search);
const camera = params.get("camera") || "";
const incident = params.get("incident") || "";
const video = document.getElementById("live-video");
const link = document.getElementById("link");
// window.liveStats: what the page measured, read by the tests too.
const stats = window.liveStats = { behindMs: null, serverMs: null, jitterMs: null, decodeMs: null,
                                   framesDecoded: 0, described: 0, shown: 0, matched: 0, how: "estimated",
                                   samples: [] }; // samples: the last measured delays, ms
let pc = null;
const described = new Map(); // RTP timestamp less the sender's origin -> capture time, ms since the epoch
const shownRtp = []; // RTP timestamps of the last frames shown
let origin = null; // the sender's random RTP origin, once found
const WRAP = 2 ** 32;

// The most frequent difference between the RTP timestamps of frames shown and those described.
function findOrigin() {
  const counts = new Map();
  let best = null;
  for (const rtp of shownRtp) {
    for (const pts of described.keys()) {
      const candidate = ((rtp - pts) % WRAP + WRAP) % WRAP;
      const n = (counts.get(candidate) || 0) + 1;
      counts.set(candidate, n);
      if (!best || n > best[1]) best = [candidate, n];
    }
  }
  return best && best[1] >= 3 ? best[0] : null;
}

function onFrameShown(_, metadata) {
  video.requestVideoFrameCallback(onFrameShown);
  stats.shown += 1;
  if (metadata.rtpTimestamp === undefined) return;
  shownRtp.push(metadata.rtpTimestamp);
  if (shownRtp.length > 30) shownRtp.shift();
  const key = (rtp) => ((rtp - origin) % WRAP + WRAP) % WRAP;
  if (origin === null || !described.has(key(metadata.rtpTimestamp))) origin = findOrigin();
  if (origin === null) return;
  const capture = described.get(key(metadata.rtpTimestamp));
  if (capture === undefined) return;
  stats.matched += 1;
  stats.how = "measured";
  stats.behindMs = performance.timeOrigin + metadata.expectedDisplayTime - capture;
  stats.samples.push(stats.behindMs);
  if (stats.samples.length > 200) stats.samples.shift();
}

function show(id, ms) {
  document.getElementById(id).textContent = ms === null ? "–" : `${Math.round(ms)} ms`;
}

function setLink(text, ok) {
  link.textContent = text;
  link.classList.toggle("offline", !ok);
}

async function start() {
  const meResponse = await call("/api/me");
  if (!meResponse.ok) return;
  me = await meResponse.json();
  document.getElementById("whoami").textContent = `${me.user} (${me.roles.join(", ")})`;
  document.getElementById("camera").textContent = `camera ${camera}` + (incident ? `, incident ${incident}` : "");
  pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  const channel = pc.createDataChannel("capture");
  channel.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    stats.described += 1;
    stats.serverMs = (frame.sent_ns - frame.capture_ns) / 1e6;
    described.set(frame.pts, frame.capture_ns / 1e6);
    if (described.size > 300) described.delete(described.keys().next().value);
    if (stats.how === "estimated") {
      // Clocks of the station and of this computer: the same when both run on one machine or use NTP.
      const arrivedMs = Date.now() - frame.capture_ns / 1e6;
      stats.behindMs = arrivedMs + (stats.jitterMs || 0) + (stats.decodeMs || 0);
    }
  };
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(onFrameShown);
  pc.ontrack = (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); };
  pc.onconnectionstatechange = () => {
    const state = pc.connectionState;
    setLink(state === "connected" ? "live" : state, state === "connected");
    if (state === "failed" || state === "closed") call("/api/me"); // a session that ended: to the login page
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const response = await call(`/api/cameras/${encodeURIComponent(camera)}/live`, {
    method: "POST", body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp, incident }) });
  if (!response.ok) {
    const refused = document.getElementById("refused");
    refused.textContent = `Live view refused (${response.status}): ${await response.text()}`;
    refused.hidden = false;
    setLink("refused", false);
    pc.close();
    return;
  }
  await pc.setRemoteDescription(await response.json());
  setInterval(readStats, 1000);
}

// Wait until the browser has gathered its ICE candidates (they travel in the offer: no trickle).
function gathered(connection) {
  if (connection.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (connection.iceGatheringState === "complete") resolve(); };
    connection.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

async function readStats() {
  if (!pc) return;
  const report = await pc.getStats();
  report.forEach((item) => {
    if (item.type !== "inbound-rtp" || item.kind !== "video") return;
    stats.framesDecoded = item.framesDecoded || 0;
    if (item.jitterBufferEmittedCount) stats.jitterMs = 1000 * item.jitterBufferDelay / item.jitterBufferEmittedCount;
    if (item.framesDecoded) stats.decodeMs = 1000 * item.totalDecodeTime / item.framesDecoded;
  });
  show("behind", stats.behindMs);
  document.getElementById("behind").title = stats.how === "measured"
    ? "frames shown, matched to their capture time" : "estimated: not every browser tells which frame it shows";
  show("server-delay", stats.serverMs);
  show("jitter", stats.jitterMs);
  show("decode", stats.decodeMs);
  document.getElementById("frames").textContent = String(stats.framesDecoded);
}

window.addEventListener("pagehide", () => { if (pc) pc.close(); });
start();
