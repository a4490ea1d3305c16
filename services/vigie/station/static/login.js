// Login page: POST /login as JSON; an account with a one-time password chooses a new one (POST
// /api/password with the session's CSRF token) before going to the console.
"use strict";

const message = document.getElementById("message");
let csrf = null;
let typed = "";

function say(text) {
  message.textContent = text;
  message.hidden = !text;
}

async function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" });
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  typed = document.getElementById("password").value;
  const response = await post("/login", { user: document.getElementById("user").value, password: typed });
  if (!response.ok) {
    document.getElementById("password").value = "";
    say(await response.text());
    return;
  }
  const me = await response.json();
  csrf = me.csrf;
  if (me.mustChangePassword) {
    document.getElementById("login-form").hidden = true;
    document.getElementById("change-form").hidden = false;
    document.getElementById("new-password").focus();
    return;
  }
  location.assign("/");
});

document.getElementById("change-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const fresh = document.getElementById("new-password").value;
  if (fresh !== document.getElementById("new-password-again").value) {
    say("the two passwords differ");
    return;
  }
  const response = await post("/api/password", { current: typed, new: fresh });
  if (!response.ok) {
    say(await response.text());
    return;
  }
  location.assign("/");
});

document.getElementById("login-button").disabled = false; // the form works once this script runs
