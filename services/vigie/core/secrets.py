"""Redaction of secrets in camera URLs, for every message that may include one.

Cameras are often addressed as ``rtsp://user:password@host/stream`` or
``http://host/video.cgi?user=admin&pwd=secret``. Whatever the grabber writes to its
logs, ``/healthz``, ``/metrics`` or errors goes through :func:`redact` first (the JSON
log formatter and the HTTP endpoints apply it again to the whole text, as a last net),
so the password never leaves the process. The user name is kept: it helps to tell which
account is refused.

Patterns miss passwords that do not look like one (a ``/`` or a space inside, a library
that prints the password alone), so the secrets the process knows are also registered
(:func:`register_secret`: every camera URL's password, every password read from an
environment variable or a file) and replaced wherever they appear, as they are,
percent-encoded or JSON-escaped.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote, quote_plus, unquote, urlsplit

__all__ = ["MASK", "redact", "redact_url", "register_secret", "register_url_password"]

#: Shortest secret registered: shorter strings are too common in ordinary text to be replaced.
MIN_SECRET_LENGTH = 4

_known: set[str] = set()  # every registered secret, in every spelling
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()

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

# Console session cookies (``vigie_session=<token>``), which a bad request's error may echo with its headers.
_SESSION_COOKIE = re.compile(r"(?P<head>\bvigie_session=)(?P<secret>[^;,\s\"'\\]+)")


def redact(text: str) -> str:
    """``text`` with the passwords of the URLs in it replaced by :data:`MASK`.

    Rewrites ``scheme://user:password@`` to ``scheme://user:***@`` and the values of
    credential query parameters (``password``, ``pwd``, ``token``, ``key``...) to
    ``***``, and the console's session cookie (``vigie_session=***``), wherever they appear in the text
    (a message, an error, a JSON line).
    Idempotent; never raises. Text without a URL is returned unchanged.
    """
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "=" not in text and "@" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _SESSION_COOKIE.sub(lambda m: m["head"] + MASK, text)
    return _QUERY.sub(lambda m: m["head"] + (MASK if m["secret"] else ""), text)


def register_secret(value: str | None) -> None:
    """Have :func:`redact` replace ``value`` from now on, in this process: as it is, percent-encoded
    (``%40`` for ``@``, ``+`` or ``%20`` for a space) and JSON-escaped. Thread-safe; values shorter
    than :data:`MIN_SECRET_LENGTH` characters and None are ignored."""
    global _pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    spellings = {value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1],
                 json.dumps(value, ensure_ascii=False)[1:-1]}
    with _lock:
        if spellings <= _known:
            return
        _known.update(spellings)
        # longest first, so that a spelling that contains another is replaced whole
        _pattern = re.compile("|".join(map(re.escape, sorted(_known, key=len, reverse=True))))


def register_url_password(url: str) -> None:
    """:func:`register_secret` of the password of ``url`` (``scheme://user:password@host...``), as written
    and percent-decoded; nothing for a URL without one. Never raises.

    A hand-written password may hold an unencoded ``/``, ``@`` or space, which :func:`urllib.parse.urlsplit`
    reads as the path: the text from the user's ``:`` to the last ``@`` before the query counts too.
    """
    candidates = set()
    try:
        candidates.add(urlsplit(url).password or "")
    except ValueError:
        pass
    _, sep, rest = url.partition("://")
    userinfo, at, _ = rest.partition("?")[0].rpartition("@")
    if sep and at and ":" in userinfo:
        candidates.add(userinfo.partition(":")[2])
    for password in candidates - {""}:
        register_secret(password)
        register_secret(unquote(password))


def redact_url(url: str) -> str:
    """A camera URL fit for logs and ``/healthz``: :func:`redact` of one URL."""
    return redact(url)
