"""A tiny RTSP server for the gateway tests: serves one H.264 MP4 clip at rtsp://127.0.0.1:PORT/PATH.

Run with the system Python that has GStreamer's bindings (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad for h264parse; .ci/run installs
them):

    /usr/bin/python3 tests/gateway/rtsp_server.py CLIP.mp4 --port 8554 --path /cam

Each client gets its own pipeline, from the clip's start, paced to the clip's clock (as a camera sends).
Prints ``READY rtsp://...`` on stdout once it listens; SIGTERM or SIGINT stops it. It is not imported by the
tests (the venv has no GStreamer); they start it as a subprocess.
"""

from __future__ import annotations

import argparse
import signal
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="an MP4 file holding H.264 video")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
