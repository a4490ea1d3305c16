"""A console client for tools (chaos runs, tests): log in over HTTP and keep the session cookie."""

from __future__ import annotations

import json
import urllib.request


def login_cookie(base: str, user: str, password: str, timeout_s: float = 10.0) -> str:
    """Log in to the console at ``base`` (``http://host:port``); returns the ``Cookie`` header value to send.

    Raises urllib.error.HTTPError when the login is refused (401, 403, 429) and OSError when nothing answers.
    """
    request = urllib.request.Request(f"{base}/login", data=json.dumps({"user": user, "password": password}).encode(),
                                     headers={"Content-Type": "application/json", "Origin": base}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        return answer.headers["Set-Cookie"].split(";")[0]
