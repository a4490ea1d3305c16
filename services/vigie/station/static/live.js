// The live view of one camera (live.html?camera=<id>&incident=<id>): WebRTC, receive-only video from the
// station, and a data channel on which the station describes each frame it sends (its capture time), so the
// page shows how far behind capture the picture is. Uses call() and me from console.js.
"use strict";

const params = new URLSearchParams(location.search);
const camera = params.get("camera") || "";
const incident = params.get("incident") || "";
const video = document.getElementById("live-video");
const link = document.getElementById("link");
// window.liveStats: what the page measured, read by the tests too.
const stats = window.liveStats = { behindMs: null, serverMs: null, jitterMs: null, decodeMs: null,
                                   framesDecoded: 0, described: 0 };
let pc = null;

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
    // Clocks of the station and of this computer: the same when both run on one machine or use NTP.
    const arrivedMs = Date.now() - frame.capture_ns / 1e6;
    stats.behindMs = arrivedMs + (stats.jitterMs || 0) + (stats.decodeMs || 0);
  };
  pc.ontrack = (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); };
  pc.onconnectionstatechange = () => {
    const state = pc.connectionState;
    setLink(state === "connected" ? "live" : state, state === "connected");
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
  show("server-delay", stats.serverMs);
  show("jitter", stats.jitterMs);
  show("decode", stats.decodeMs);
  document.getElementById("frames").textContent = String(stats.framesDecoded);
}

window.addEventListener("pagehide", () => { if (pc) pc.close(); });
start();
