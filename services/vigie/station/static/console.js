// Shared by the console's pages (incidents, register): the logged-in user and every call to the station.
"use strict";

let me = null; // GET /api/me: user, roles, stations, station, csrf token, views, register

// Every call to the station: the session's CSRF token on state-changing requests; a 401 (no session,
// expired, logged out elsewhere) goes back to the login page.
async function call(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (options.method && options.method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (me) headers["X-CSRF-Token"] = me.csrf;
  }
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) location.assign("/login");
  return response;
}

document.getElementById("logout").addEventListener("click", async () => {
  await call("/logout", { method: "POST", body: "{}" });
  location.assign("/login");
});
