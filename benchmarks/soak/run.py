"""Soak: mixed load on a real `detector serve` process, then an audit that no incident event was lost.

Load (defaults): 8 LIVE camera streams at 4 fps, 1 LOSSLESS drone replay at 2 fps with telemetry, and 2
case-system subscribers, one of which reads slowly and stops reading for a minute at a time. Frames are real
street photos from ../shared (the committed model sees garbage in them, so incidents open and clear), each
stream switching photo every 20 s of capture time.

Usage::

    .venv/bin/python benchmarks/soak/run.py --seconds 1800        # the 30-minute soak
    .venv/bin/python benchmarks/soak/run.py --seconds 60          # what CI runs

Writes benchmarks/results/soak/<date>-<seconds>s/soak.json and soak.md, and exits 1 when any event was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import grpc
import psutil
from tqdm import tqdm

from detector.api.client import IngestClient, OutgoingFrame
from detector.api.health_probe import HealthProbe
from detector.api.incidents_client import IncidentsClient
from detector.ingest.decode import RejectCode
from detector.types import DeliveryMode, Telemetry

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
PHOTO_SECONDS = 20


@dataclass
class StreamStats:
    source_id: str
    mode: str
    sent: int = 0
    answered: int = 0
    dropped: int = 0
    errors: int = 0
    reconnects: int = 0


@dataclass
class SubscriberStats:
    consumer: str
    slow: bool
    received: list[int] = field(default_factory=list)
    reconnects: int = 0


def _photos(n: int, width: int) -> list[bytes]:
    files = sorted((SHARED / "datasets" / "city-garbage" / "images" / "train").glob("*.jpg"))[:n]
    if not files:
        sys.exit(f"soak: needs street photos under {SHARED}/datasets/city-garbage (the ../shared checkout)")
    out = []
    for f in files:
        image = cv2.imread(str(f))
        scale = width / image.shape[1]
        image = cv2.resize(image, (width, int(image.shape[0] * scale)))
        out.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_serving(target: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with HealthProbe(target) as probe:
        while time.monotonic() < deadline:
            if probe.serving(timeout_s=1):
                return
            time.sleep(0.2)
    raise RuntimeError("the service never became SERVING")


class Load:
    """The clients: one task per stream and per subscriber, all on one event loop in a thread of their own (gRPC's
    asyncio API wants a single loop per process), while the main thread samples the server."""

    def __init__(self, target: str, photos: list[bytes], stop: threading.Event) -> None:
        self.target = target
        self.photos = photos
        self.stop = stop

    async def stream(self, stats: StreamStats, fps: float, offset: int, telemetry: bool) -> None:
        """Send frames paced at ``fps`` with wall-clock capture times; reconnect when the stream breaks."""
        mode = DeliveryMode.LOSSLESS if stats.mode == "LOSSLESS" else DeliveryMode.LIVE
        seq = 0

        async def frames() -> AsyncIterator[OutgoingFrame]:
            nonlocal seq
            next_at = time.monotonic()
            while not self.stop.is_set():
                now = time.time()
                seq += 1
                photo = self.photos[(int(now) // PHOTO_SECONDS + offset) % len(self.photos)]
                pose = Telemetry(lat=22.54 + seq * 1e-6, lon=113.95, altitude_agl_m=60.0, gimbal_pitch_deg=-90.0)
                yield OutgoingFrame(
                    stats.source_id, seq, now, jpeg=photo, mode=mode, telemetry=pose if telemetry else None
                )
                stats.sent += 1
                next_at += 1.0 / fps
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        while not self.stop.is_set():
            async with IngestClient(self.target) as client:
                try:
                    async for answer in client.send(frames()):
                        stats.answered += 1
                        if answer.error is not None:
                            stats.dropped += answer.error is RejectCode.DROPPED
                            stats.errors += answer.error is not RejectCode.DROPPED
                except grpc.RpcError:
                    stats.reconnects += 1
                    await asyncio.sleep(1)

    async def subscribe(self, stats: SubscriberStats, until: threading.Event) -> None:
        """Follow from the committed offset, ack each event; the slow one also pauses a minute at a time."""
        paused_at = time.monotonic()
        while not until.is_set():
            async with IncidentsClient(self.target) as client, client.subscribe(stats.consumer) as events:
                try:
                    async for event in events:
                        stats.received.append(event.sequence)
                        await client.ack(stats.consumer, event.sequence)
                        if stats.slow and not self.stop.is_set():
                            await asyncio.sleep(0.5)
                            if time.monotonic() - paused_at > 120:
                                await asyncio.sleep(60)  # stops reading for a minute; the server must not care
                                paused_at = time.monotonic()
                        if until.is_set():
                            break
                except grpc.RpcError:
                    stats.reconnects += 1
                    await asyncio.sleep(1)


async def _audit(target: str) -> list[int]:
    """Every sequence in the log: read from the start until nothing new came for 10 s."""
    async with IncidentsClient(target) as client:
        events = client.subscribe("audit", after_sequence=0, idle_timeout_s=10)
        return [event.sequence async for event in events]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1800)
    parser.add_argument("--live-streams", type=int, default=8)
    parser.add_argument("--live-fps", type=float, default=4.0)
    parser.add_argument("--drone-fps", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "soak")
    args = parser.parse_args()

    photos = _photos(12, args.width)
    port = _free_port()
    target = f"127.0.0.1:{port}"
    data_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    log_path = data_dir / "serve.log"
    cmd = [sys.executable, "-m", "detector.cli", "serve", "--port", str(port), "--device", "cpu"]
    cmd += ["--set", f"store.data_dir={data_dir / 'data'}", "--set", "logging.level=WARNING"]
    with log_path.open("w") as log:
        server = subprocess.Popen(cmd, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_serving(target, 180)
        proc = psutil.Process(server.pid)
        stop, subscribers_done = threading.Event(), threading.Event()
        load = Load(target, photos, stop)
        streams = [StreamStats(f"cam-{i + 1}", "LIVE") for i in range(args.live_streams)]
        drone = StreamStats("drone-1", "LOSSLESS")
        subs = [SubscriberStats("case-fast", slow=False), SubscriberStats("case-slow", slow=True)]
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        senders = [
            asyncio.run_coroutine_threadsafe(load.stream(s, args.live_fps, i, False), loop)
            for i, s in enumerate(streams)
        ]
        senders.append(asyncio.run_coroutine_threadsafe(load.stream(drone, args.drone_fps, 5, True), loop))
        readers = [asyncio.run_coroutine_threadsafe(load.subscribe(s, subscribers_done), loop) for s in subs]
        samples = []
        start = time.monotonic()
        with tqdm(total=int(args.seconds), desc="soak", unit="s") as bar:
            while (elapsed := time.monotonic() - start) < args.seconds:
                time.sleep(min(5.0, args.seconds - elapsed))
                info = proc.memory_info()
                samples.append(
                    {
                        "t_s": round(time.monotonic() - start, 1),
                        "rss_mb": info.rss / 2**20,
                        "fds": proc.num_fds(),
                        "threads": proc.num_threads(),
                    }
                )
                bar.n = int(time.monotonic() - start)
                bar.set_postfix(rss_mb=f"{samples[-1]['rss_mb']:.0f}", fds=samples[-1]["fds"])
        stop.set()
        concurrent.futures.wait(senders, timeout=30)
        log_sequences = asyncio.run_coroutine_threadsafe(_audit(target), loop).result()
        # Give the slow subscriber time to catch up with everything in the log, then stop it.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and any(set(log_sequences) - set(s.received) for s in subs):
            time.sleep(1)
        subscribers_done.set()
        for future in [*senders, *readers]:
            future.cancel()  # a subscriber waiting for an event that will not come
        concurrent.futures.wait([*senders, *readers], timeout=10)
        loop.call_soon_threadsafe(loop.stop)
    finally:
        server.terminate()
        server.wait(60)

    expected = set(log_sequences)
    warm = [s for s in samples if s["t_s"] >= min(60.0, args.seconds / 4)] or samples
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "seconds": args.seconds,
        "load": {
            "live_streams": args.live_streams,
            "live_fps": args.live_fps,
            "drone_fps": args.drone_fps,
            "width_px": args.width,
        },
        "memory_rss_mb": {
            "first": samples[0]["rss_mb"],
            "after_warmup": warm[0]["rss_mb"],
            "last": samples[-1]["rss_mb"],
            "growth_after_warmup": samples[-1]["rss_mb"] - warm[0]["rss_mb"],
        },
        "fds": {"first": samples[0]["fds"], "max": max(s["fds"] for s in samples), "last": samples[-1]["fds"]},
        "streams": [asdict(s) for s in [*streams, drone]],
        "frames_dropped_live": sum(s.dropped for s in streams),
        "events_in_log": len(expected),
        "log_gap_free": sorted(expected) == list(range(1, len(expected) + 1)),
        "subscribers": [
            {
                "consumer": s.consumer,
                "slow": s.slow,
                "received": len(s.received),
                "unique": len(set(s.received)),
                "lost": len(expected - set(s.received)),
                "reconnects": s.reconnects,
            }
            for s in subs
        ],
        "samples": samples,
    }
    lost = sum(s["lost"] for s in result["subscribers"])
    result["events_lost"] = lost
    out = args.out / f"{dt.date.today().isoformat()}-{int(args.seconds)}s"
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2))
    (out / "soak.md").write_text(_markdown(result))
    print(_markdown(result))
    print(f"written to {out}")
    return 1 if lost or not result["log_gap_free"] else 0


def _markdown(r: dict) -> str:  # type: ignore[type-arg]
    lines = [
        f"# Soak, {r['seconds']:.0f} s ({r['date']})",
        "",
        f"Load: {r['load']['live_streams']} LIVE streams at {r['load']['live_fps']} fps, 1 LOSSLESS drone at "
        f"{r['load']['drone_fps']} fps, {r['load']['width_px']} px wide JPEGs; 2 subscribers (one slow).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| server RSS first / after warm-up / last (MB) | {r['memory_rss_mb']['first']:.0f} / "
        f"{r['memory_rss_mb']['after_warmup']:.0f} / {r['memory_rss_mb']['last']:.0f} |",
        f"| RSS growth after warm-up (MB) | {r['memory_rss_mb']['growth_after_warmup']:.1f} |",
        f"| open fds first / max / last | {r['fds']['first']} / {r['fds']['max']} / {r['fds']['last']} |",
        f"| frames sent / answered (all streams) | {sum(s['sent'] for s in r['streams'])} / "
        f"{sum(s['answered'] for s in r['streams'])} |",
        f"| LIVE frames dropped (by design when behind) | {r['frames_dropped_live']} |",
        f"| drone (LOSSLESS) sent / answered / dropped | {r['streams'][-1]['sent']} / {r['streams'][-1]['answered']}"
        f" / {r['streams'][-1]['dropped']} |",
        f"| events in the log (gap-free: {r['log_gap_free']}) | {r['events_in_log']} |",
    ]
    for s in r["subscribers"]:
        lines.append(f"| subscriber {s['consumer']}: received / lost | {s['received']} / {s['lost']} |")
    lines.append(f"| **events lost** | **{r['events_lost']}** |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
