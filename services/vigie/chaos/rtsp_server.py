"""A real RTSP server for tests and ``vigie chaos`` (GStreamer's GstRtspServer), plus a helper to drive it.

Server (run with Debian's ``/usr/bin/python3``, which has python3-gi)::

    /usr/bin/python3 services/vigie/chaos/rtsp_server.py --port 8554 --name cam [--repeat 20] [--auth user:pw] clip.avi

serves ``rtsp://127.0.0.1:8554/cam`` and prints ``READY`` once listening (with ``--auth``,
only to clients authenticated with Basic authentication as ``user:pw``: others get 401). The media
is H.264: a non-H.264 input is transcoded once with ffmpeg (libx264, a keyframe every
0.5 s) into a cache directory; ``--repeat N`` plays it N times back to back
(remuxed once with ``-stream_loop``, timestamps continuous). Each client gets its
own playback from the start, paced in real time. SIGTERM stops it cleanly.

Helper (a test or the chaos run, any Python)::

    with RtspServer(clip) as server:        # free port, waits for READY
        url = server.url
        server.kill(); server.start()       # same port again

``rtsp_server_unavailable()`` returns a reason to skip, or None.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
CACHE_DIR = Path(tempfile.gettempdir()) / "vigie-rtsp-cache"


# --------------------------------------------------------------------------- server side
def _probe_codec(path: str) -> str:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
         "-of", "default=nw=1:nk=1", path], capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def prepare_media(path: str, repeat: int = 1) -> Path:
    """H.264 in Matroska for ``path`` (cached by path, size, mtime and repeat)."""
    st = os.stat(path)
    key = hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{repeat}".encode()).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = CACHE_DIR / f"{key}.mkv"
    if out.exists():
        return out
    tmp = CACHE_DIR / f"{key}.{os.getpid()}.tmp.mkv"
    once = tmp.with_suffix(".once.mkv")
    try:
        if _probe_codec(path) == "h264":
            cmd = ["ffmpeg", "-v", "error", "-y", "-i", path, "-an", "-c:v", "copy", str(once)]
        else:
            cmd = ["ffmpeg", "-v", "error", "-y", "-i", path, "-an", "-c:v", "libx264", "-preset", "ultrafast",
                   "-tune", "zerolatency", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", str(once)]
        subprocess.run(cmd, check=True)
        if repeat > 1:
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(repeat - 1), "-i", str(once),
                            "-c", "copy", str(tmp)], check=True)
            once.unlink()
        else:
            once.rename(tmp)
        tmp.rename(out)  # atomic: concurrent servers never see a partial file
    finally:
        for p in (tmp, once):
            if p.exists():
                p.unlink()
    return out


def serve(media: Path, port: int, name: str, auth: str | None = None) -> int:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{media}" ! matroskademux ! h264parse '
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    if auth:
        user, _, password = auth.partition(":")
        token = GstRtspServer.RTSPToken.new()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        checker = GstRtspServer.RTSPAuth()
        checker.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(checker)
        factory.add_role_from_structure(Gst.Structure.from_string(
            f"viewer, {GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS}=(boolean)true, "
            f"{GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT}=(boolean)true")[0])
    server.get_mount_points().add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on 127.0.0.1:{port}", flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("media", help="video file to serve")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="cam", help="mount point: rtsp://127.0.0.1:PORT/NAME")
    ap.add_argument("--repeat", type=int, default=1, help="play the clip N times back to back")
    ap.add_argument("--auth", help="user:password required (Basic authentication)")
    args = ap.parse_args(argv)
    return serve(prepare_media(args.media, max(1, args.repeat)), args.port, args.name, args.auth)


# --------------------------------------------------------------------------- test side
def rtsp_server_unavailable() -> str | None:
    """Why the RTSP server cannot run here (a skip reason), or None when it can."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found (needs Debian python3-gi)"
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import GstRtspServer"], capture_output=True, text=True,
    )
    if probe.returncode != 0:
        return "GstRtspServer not importable by /usr/bin/python3 (apt: python3-gi gir1.2-gst-rtsp-server-1.0)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """Runs this file as a subprocess serving ``media`` at :attr:`url`.

    ``auth``: ``user:password`` required of clients (Basic). ``start()`` waits for READY (``startup_timeout`` seconds, the first run may
    transcode); ``kill()`` SIGKILLs it, ``stop()`` SIGTERMs it; ``start()`` again
    reuses the same port. Also a context manager (start on enter, stop on exit).
    """

    def __init__(self, media: str | os.PathLike[str], *, port: int | None = None, name: str = "cam",
                 repeat: int = 1, auth: str | None = None, startup_timeout: float = 90.0):
        self.media = str(media)
        self.port = port or free_port()
        self.name = name
        self.repeat = repeat
        self.auth = auth
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.name}"

    def url_as(self, user: str, password: str) -> str:
        """:attr:`url` with credentials."""
        return f"rtsp://{user}:{password}@127.0.0.1:{self.port}/{self.name}"

    def start(self) -> "RtspServer":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("RTSP server already running")
        cmd = [SYSTEM_PYTHON, os.path.abspath(__file__), self.media, "--port", str(self.port),
               "--name", self.name, "--repeat", str(self.repeat)] + (["--auth", self.auth] if self.auth else [])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream) -> None:
            for line in stream:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(
                    f"RTSP server not READY after {self.startup_timeout} s: {self.output[-5:]}") from None
            if line is None:
                raise RuntimeError(f"RTSP server exited ({self.proc.wait()}): {self.output[-10:]}")
            self.output.append(line)
            if line.strip() == "READY":
                return self

    def _end(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL (a crashed camera): connections drop without a TEARDOWN."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
