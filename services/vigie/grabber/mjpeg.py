"""MJPEG over HTTP: a ``multipart/x-mixed-replace`` body read part by part.

Cameras serve MJPEG as one endless HTTP response, each JPEG a part of a multipart
body (RFC 2046 section 5.1, ``multipart/x-mixed-replace`` as browsers show it)::

    --myboundary\\r\\n
    Content-Type: image/jpeg\\r\\n
    Content-Length: 48213\\r\\n
    \\r\\n
    <48213 bytes of JPEG>\\r\\n
    --myboundary\\r\\n
    ...

Real cameras get it wrong: a ``Content-Length`` that does not match the body, a JPEG
cut short, bytes of garbage between parts, a boundary declared with or without its
leading dashes. :class:`PartReader` resynchronises on the next delimiter after any of
those and reports the bad part (:class:`MalformedPart`) instead of failing the
stream, so the caller counts it and goes on with the same connection.

:func:`open_http` opens the stream with the standard library (Basic and Digest
authentication from the URL's ``user:password@``, connect and read timeouts).
"""

from __future__ import annotations

import http.client
import urllib.request
from collections.abc import Callable
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["MalformedPart", "PartReader", "is_jpeg", "open_http"]

#: The largest part accepted, bytes (a 4K JPEG at high quality is a few MiB).
MAX_PART_BYTES = 16 << 20
#: The largest header block of a part, bytes.
MAX_HEADER_BYTES = 16 << 10


class MalformedPart(Exception):
    """One part of the stream was unusable and was skipped; the reader is ready for the next one."""


def is_jpeg(body: bytes) -> bool:
    """True when ``body`` starts with a JPEG SOI marker and ends (after padding) with an EOI marker."""
    return body[:2] == b"\xff\xd8" and body.rstrip(b"\r\n\t \x00")[-2:] == b"\xff\xd9"


class PartReader:
    """The JPEG parts of a ``multipart/x-mixed-replace`` body, one per :meth:`next` call.

    ``read()``: returns the next bytes of the body (any amount, ``b""`` at its end; it
    may raise, e.g. a timeout, which propagates). ``boundary``: the ``boundary``
    parameter of the response's Content-Type; its leading dashes are optional in the
    stream (cameras disagree on them). A part's body is delimited by its
    ``Content-Length`` when it has one (the part is handed over as soon as it is
    complete), else by the next delimiter.
    """

    def __init__(self, read: Callable[[], bytes], boundary: str, *, max_part_bytes: int = MAX_PART_BYTES):
        token = boundary.strip().strip('"').lstrip("-").encode("latin-1")
        if not token:
            raise ValueError(f"empty multipart boundary {boundary!r}")
        self._token = token
        self._read = read
        self._buf = bytearray()
        self._max_part = max_part_bytes
        self._after_bad = False  # the bytes up to the next delimiter belong to a part already reported

    def _fill(self) -> None:
        data = self._read()
        if not data:
            raise EOFError("end of the multipart stream")
        self._buf += data

    def _delimiter(self, start: int = 0) -> tuple[int, int] | None:
        """(start, end) of the first delimiter line at or after ``start`` (end: after its
        line feed, -1 while the line is incomplete), or None."""
        buf, token = self._buf, self._token
        i = buf.find(token, start)
        while i >= 0:
            line = i
            while line > 0 and buf[line - 1] == 0x2D:  # '-'
                line -= 1
            if i - line >= 2:
                eol = buf.find(b"\n", i + len(token))
                return line, (eol + 1 if eol >= 0 else -1)
            i = buf.find(token, i + 1)
        return None

    def next(self) -> bytes:
        """The body of the next part that looks like a JPEG (SOI ... EOI), as bytes.

        Raises :class:`MalformedPart` for a part that was skipped (garbage between
        parts, headers too long, a Content-Length that is not a number, too large or
        that runs into the next part, a body that is not a whole JPEG); call again for
        the next part. Raises ``EOFError`` at the end of the stream (closing
        delimiter or end of the body), and whatever ``read`` raises.
        """
        self._skip_to_delimiter()
        headers = self._headers()
        length = headers.get("content-length")
        if length is None:
            body = self._body_to_delimiter()
        else:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if not 0 < n <= self._max_part:
                self._after_bad = True
                raise MalformedPart(f"bad Content-Length {length[:40]!r}")
            body = self._body_of_length(n)
        if not is_jpeg(body):
            self._after_bad = True
            raise MalformedPart(f"a part of {len(body)} bytes is not a whole JPEG "
                                f"(starts {bytes(body[:2]).hex()}, ends {bytes(body[-2:]).hex()})")
        return body

    def _skip_to_delimiter(self) -> None:
        """Consume up to and including the next delimiter line; garbage before it is reported once."""
        searched, dropped = 0, False
        while True:
            found = self._delimiter(searched)
            if found is not None and found[1] >= 0:
                break
            if found is None:
                searched = max(0, len(self._buf) - len(self._token) - 64)
                if len(self._buf) > self._max_part + MAX_HEADER_BYTES:  # no delimiter in sight: drop, keep a tail
                    del self._buf[:searched]
                    searched, dropped = 0, True
            self._fill()
        start, end = found
        if dropped or bytes(self._buf[:start]).strip(b"\r\n\t \x00"):
            del self._buf[:start]
            start, end = 0, end - start
            if not self._after_bad:
                self._after_bad = True
                raise MalformedPart("garbage before a part")
        self._after_bad = False
        closing = bytes(self._buf[start:end]).rstrip().endswith(self._token + b"--")
        del self._buf[:end]
        if closing:
            raise EOFError("closing delimiter of the multipart stream")

    def _headers(self) -> dict[str, str]:
        """The part's headers (lower-case names), consumed with the blank line after them."""
        while True:
            crlf, lf = self._buf.find(b"\r\n\r\n"), self._buf.find(b"\n\n")
            ends = [(i, k) for i, k in ((crlf, 4), (lf, 2)) if i >= 0]
            if self._buf[:2] == b"\r\n":  # no header at all
                ends.append((0, 2))
            elif self._buf[:1] == b"\n":
                ends.append((0, 1))
            if ends:
                at, size = min(ends)
                break
            if len(self._buf) > MAX_HEADER_BYTES:
                self._after_bad = True
                raise MalformedPart(f"part headers longer than {MAX_HEADER_BYTES} bytes")
            self._fill()
        headers = {}
        for line in bytes(self._buf[:at]).decode("latin-1").splitlines():
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        del self._buf[:at + size]
        return headers

    def _body_of_length(self, n: int) -> bytes:
        """``n`` bytes of body; a delimiter inside them means the Content-Length was too long."""
        searched = 0
        while True:
            found = self._delimiter(searched)
            if found is not None and found[0] < n:
                del self._buf[:found[0]]  # keep the next part
                raise MalformedPart(f"Content-Length {n} runs into the next part ({found[0]} bytes of body)")
            if len(self._buf) >= n:
                break
            searched = max(0, len(self._buf) - len(self._token) - 64)
            self._fill()
        body = bytes(self._buf[:n])
        del self._buf[:n]
        return body

    def _body_to_delimiter(self) -> bytes:
        """The body up to the next delimiter (left in the buffer), without the line break before it."""
        searched = 0
        while (found := self._delimiter(searched)) is None:
            if len(self._buf) > self._max_part:
                self._after_bad = True
                raise MalformedPart(f"a part without Content-Length longer than {self._max_part} bytes")
            searched = max(0, len(self._buf) - len(self._token) - 64)
            self._fill()
        body = bytes(self._buf[:found[0]])
        del self._buf[:found[0]]
        return body[:-2] if body.endswith(b"\r\n") else body[:-1] if body.endswith(b"\n") else body


def open_http(url: str, timeout_s: float, user_agent: str = "vigie-grabber") -> http.client.HTTPResponse:
    """GET ``url`` and return the response once its headers arrived (its body is not read).

    Credentials in the URL (``http://user:password@host/...``, percent-encoded) are
    sent with Basic or Digest authentication, as the camera asks, and never put in
    the request line. ``timeout_s`` bounds the connection and every later read of the
    socket (a read raises ``TimeoutError``). Raises ``urllib.error.HTTPError`` for an
    HTTP error status (``.code``: 401, 403, 404...; close it), ``urllib.error.URLError``
    or ``OSError`` when the camera cannot be reached, ``http.client.HTTPException``
    for a broken answer.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    handlers: list[urllib.request.BaseHandler] = []
    if parts.username is not None:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, clean, unquote(parts.username), unquote(parts.password or ""))
        handlers += [urllib.request.HTTPDigestAuthHandler(passwords), urllib.request.HTTPBasicAuthHandler(passwords)]
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(clean, headers={"User-Agent": user_agent, "Accept": "*/*"})
    return opener.open(request, timeout=timeout_s)
