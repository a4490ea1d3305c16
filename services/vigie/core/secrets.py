"""Redaction of secrets in camera URLs, for every message that may include one.

Cameras are often addressed as ``rtsp://user:password@host/stream`` or
``http://host/video.cgi?user=admin&pwd=secret``. Whatever the grabber writes to its
logs, ``/healthz`` or errors goes through :func:`redact` first (the JSON log
formatter applies it again to the whole line, as a last net), so the password never
leaves the process. The user name is kept: it helps to tell which account is refused.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact", "redact_url"]

#: What replaces a secret.
MASK = "***"

# scheme://user:password@ — the password runs to the last '@' before the path, a space or a quote
# (an unencoded '@' inside a password is common in hand-written camera URLs).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:\"']*):(?P<secret>[^\s/\"']*)@")
# ?password=...&token=... (query parameters that carry credentials on some cameras)
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pass|pwd|psw|token|access_token|auth|authorization|secret|key|apikey|"
    r"api_key|sig|signature|credentials)=)(?P<secret>[^&;#\s\"']*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the passwords of the URLs in it replaced by :data:`MASK`.

    Rewrites ``scheme://user:password@`` to ``scheme://user:***@`` and the values of
    credential query parameters (``password``, ``pwd``, ``token``, ``key``...) to
    ``***``, wherever they appear in the text (a message, an error, a JSON line).
    Idempotent; never raises. Text without a URL is returned unchanged.
    """
    if "=" not in text and "@" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY.sub(lambda m: m["head"] + (MASK if m["secret"] else ""), text)


def redact_url(url: str) -> str:
    """A camera URL fit for logs and ``/healthz``: :func:`redact` of one URL."""
    return redact(url)
