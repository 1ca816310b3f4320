"""Test media for the gateway: a rendered H.264 clip (PyAV) and a real RTSP server serving it (GStreamer's RTSP
server from Debian's packages, run by the system Python as a subprocess; see rtsp_server.py)."""

from __future__ import annotations

import functools
import select
import socket
import subprocess
from pathlib import Path

import av
import numpy as np

SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
APT_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
)
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')\n"
    "from gi.repository import Gst, GstRtspServer\n"
    "Gst.init(None)\n"
    "missing = [e for e in ('filesrc', 'qtdemux', 'h264parse', 'rtph264pay') if Gst.ElementFactory.find(e) is None]\n"
    "print(' '.join(missing))\n"
)


def render_clip(path: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (640, 360)) -> Path:
    """An H.264 MP4 of a red square (a "stall" to the colour-blob engine) moving across a grey street, one
    keyframe a second."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
        for i in range(round(seconds * fps)):
            image = np.full((height, width, 3), 90, np.uint8)
            x = (i * 8) % (width - 60)
            image[height // 2 - 30 : height // 2 + 30, x : x + 60] = (0, 0, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@functools.cache
def rtsp_server_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is absent (the RTSP test server needs Debian's python3-gi)"
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", _PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer's RTSP server is not installed ({reason}); apt-get install {APT_PACKAGES}"
    if probe.stdout.strip():
        return f"GStreamer elements missing: {probe.stdout.strip()}; apt-get install {APT_PACKAGES}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """The clip at ``rtsp://127.0.0.1:PORT/cam``; ``start()`` and ``stop()`` (SIGTERM, as a crash or a restart of
    the camera would look to the gateway) as often as needed, on the same port."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip = clip
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        assert self._proc is None, "already running"
        proc = subprocess.Popen(
            [str(SYSTEM_PYTHON), str(SERVER_SCRIPT), str(self.clip), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.startswith("READY"):
            self.stop()
            raise AssertionError(f"the RTSP server did not start within {timeout_s} s: {line!r}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
