"""`detector demo` (`make demo`): the whole product on simulated streets, end to end, on this machine.

1. Render the market-street (fixed pole camera) and drone-patrol (flight + .SRT) scenarios, or reuse the cache.
2. Start the real service in-process with the embedded defaults, plus each scenario's camera calibration, zone
   and drone profile, and a SQLite store under ``demo-data/``.
3. Stream both through gRPC at once: the camera as a gateway would (frame by frame), the drone as an uplink
   (frames with telemetry from its .SRT).
4. Subscribe as a case system, printing each incident as it opens, updates and clears.
5. Score the incidents against the ground truth and write ``demo-data/report.html``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from tqdm import tqdm

from detector.api.incidents_client import IncidentsClient, Subscription
from detector.api.replay import ReplaySummary, replay
from detector.api.subscribe import event_line
from detector.config import DEFAULT_WEIGHTS, ServiceConfig, load_config
from detector.types import DeliveryMode, EvidenceKind, IncidentEvent

SCENARIOS = ("market-street", "drone-patrol")
# What cameras in the field record: pole cameras 1280x720 or more, drones 1920x1080 to 4K.
FIELD_SIZES = {"market-street": (1280, 720), "drone-patrol": (1920, 1080)}


@dataclass(frozen=True)
class DemoSettings:
    out_dir: Path = Path("demo-data")
    cache_dir: Path = Path(".cache/demo")
    seed: int = 0
    fps: float = 2.0
    sizes: tuple[tuple[str, int, int], ...] = tuple((n, w, h) for n, (w, h) in FIELD_SIZES.items())
    weights: Path = DEFAULT_WEIGHTS
    consumer: str = "demo-case-system"
    minutes: float | None = None  # None: each scenario's own length (10 min market street, the whole flight)
    # Simulated stalls are 40-60 px wide in a 1280 px frame: at 640 px input the model still sees them at 20-30 px,
    # and a 2-fps demo has the CPU time for it (weights/MODEL_CARD.md).
    imgsz: int = 640
    tile_drone: bool = True
    sprites: bool = True  # people and vehicles as photo cut-outs (the bank is built from ../shared on first use)

    def size(self, name: str) -> tuple[int, int]:
        for scenario, width, height in self.sizes:
            if scenario == name:
                return width, height
        return FIELD_SIZES.get(name, (1280, 720))


def scenario_dir(settings: DemoSettings, name: str, sprites: str = "") -> Path:
    """The cached render of one scenario; ``sprites``: the sprite bank's fingerprint ("" when drawn as meshes). The
    renderer's version is in the name too, so a change to how frames are drawn renders afresh."""
    from detector.sim.render import RENDER_VERSION

    length = "" if settings.minutes is None else f"-{settings.minutes:g}min"
    width, height = settings.size(name)
    look = f"-r{RENDER_VERSION}" + (f"-sprites-{sprites}" if sprites else "")
    return settings.cache_dir / f"{name}-seed{settings.seed}-{width}x{height}-{settings.fps:g}fps{length}{look}"


def ensure_rendered(settings: DemoSettings) -> dict[str, Path]:
    """Render each scenario once; later runs reuse the cache (a scenario is reused only when complete)."""
    from detector.sim.runner import render_scenario
    from detector.sim.sprites import ensure_bank

    bank = ensure_bank("scenario") if settings.sprites else None
    dirs = {}
    for name in SCENARIOS:
        folder = scenario_dir(settings, name, bank.fingerprint if bank is not None else "")
        if not (folder / "truth.json").exists() or not (folder / "video.mp4").exists():
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            print(f"rendering {name} (first run only; cached in {folder})", flush=True)
            width, height = settings.size(name)
            summary = render_scenario(
                name,
                partial,
                seed=settings.seed,
                minutes=settings.minutes,
                fps=settings.fps,
                width=width,
                height=height,
                sprites=bank,
            )
            print(summary.text(), flush=True)
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
        else:
            print(f"reusing the rendered {name} in {folder}", flush=True)
        dirs[name] = folder
    return dirs


def demo_config(settings: DemoSettings, truths: dict[str, dict[str, Any]], data_dir: Path) -> ServiceConfig:
    """Embedded defaults plus what a city would configure per source: zones and calibration, drone profile
    (the service.yaml that `detector sim render` writes, :mod:`detector.sim.service_config`)."""
    from detector.sim.service_config import service_document

    rules = service_document(truths.values(), settings.imgsz, tile_drones=settings.tile_drone)
    document = {
        "model": {"weights": str(settings.weights.resolve()), "device": "cpu", "imgsz": settings.imgsz},
        "store": {"data_dir": str(data_dir.resolve())},
        **rules,
    }
    path = settings.out_dir / "demo-config.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    return load_config(path, environ={}, overrides=["server.port=0"])


async def _follow(target: str, consumer: str, events: list[IncidentEvent], stop: asyncio.Event) -> None:
    """The case system: print every event, keep it, ack it; until ``stop`` is set."""
    async with IncidentsClient(target) as client, client.subscribe(consumer, after_sequence=0) as subscription:
        stopper = asyncio.create_task(_cancel_when_set(stop, subscription))
        try:
            async for event in subscription:
                tqdm.write("  case system ← " + event_line(event))
                events.append(event)
                await client.ack(consumer, event.sequence)
        finally:
            stopper.cancel()


async def _cancel_when_set(stop: asyncio.Event, subscription: Subscription) -> None:
    await stop.wait()
    subscription.cancel()


async def _evidence(target: str, events: list[IncidentEvent]) -> dict[str, bytes]:
    wanted = {ev.sha256 for e in events for ev in e.evidence if ev.kind is EvidenceKind.FRAME_JPEG}
    out: dict[str, bytes] = {}
    async with IncidentsClient(target) as client:
        for sha in wanted:
            try:
                out[sha] = await client.evidence(sha)
            except grpc.aio.AioRpcError:  # gone or damaged: the report shows the incident without its photo
                continue
    return out


async def _stream(target: str, folder: Path, truth: dict[str, Any]) -> ReplaySummary:
    srt = folder / truth["files"]["srt"] if truth["files"].get("srt") else None
    summary = await replay(
        target,
        folder / truth["files"]["video"],
        truth["source_id"],
        mode=DeliveryMode.LOSSLESS,
        start_ts=truth["start_ts"],
        srt=srt,
    )
    return summary


def _processed(service: Any) -> int:
    return int(sum(s.value for m in service.metrics.frames_processed.collect() for s in m.samples if "total" in s.name))


@dataclass
class StreamedRun:
    """What the case system received while the scenarios streamed through one service."""

    events: list[IncidentEvent]
    evidence: dict[str, bytes]
    summaries: list[ReplaySummary]


async def stream_scenarios(
    settings: DemoSettings, folders: dict[str, Path], truths: dict[str, dict[str, Any]], data_dir: Path
) -> StreamedRun:
    """Start the service on these scenarios' settings, stream them all at once, follow the event log to its end."""
    from detector.server import start_service

    config = demo_config(settings, truths, data_dir)
    print(f"starting the service (model {settings.weights}, store {data_dir})", flush=True)
    service = await start_service(config)
    target = f"127.0.0.1:{service.port}"
    events: list[IncidentEvent] = []
    stop = asyncio.Event()
    try:
        follower = asyncio.create_task(_follow(target, settings.consumer, events, stop))
        total = sum(len(t["frames"]) for t in truths.values())
        with tqdm(total=total, desc=f"streaming {' + '.join(folders)}", unit="frame") as bar:
            streams = asyncio.gather(*(_stream(target, folders[n], truths[n]) for n in folders))
            while not streams.done():
                bar.n = min(total, _processed(service))
                bar.refresh()
                await asyncio.wait({streams}, timeout=0.5)
            summaries = streams.result()
            bar.n = total
        await service.writer.flush()
        # Let the follower drain the log: stop once no new event arrived for a second.
        seen = -1
        while seen != len(events):
            seen = len(events)
            await asyncio.sleep(1.0)
        stop.set()
        await follower
        evidence = await _evidence(target, events)
    finally:
        await service.stop(2)
    return StreamedRun(events, evidence, list(summaries))


def score_events(truth_dict: dict[str, Any], events: list[IncidentEvent]) -> Any:
    """The simulator's scorer on the events of this scenario's source."""
    from detector.sim.events import fold_events
    from detector.sim.score import Scorer
    from detector.sim.truth import Truth

    truth = Truth.from_dict(truth_dict)
    return Scorer(truth).score(fold_events(e for e in events if e.source_id == truth.source_id))


def score_scenario(folder: Path, weights: Path) -> dict[str, float]:
    """`detector bench accuracy --scenario`: one rendered scenario through the real service with ``weights``,
    scored as a city would (recall, precision, duplicates, geo error, time to open). Numbers only."""
    truth = json.loads((folder / "truth.json").read_text())
    with tempfile.TemporaryDirectory(prefix="streetwatch-score-") as tmp:
        settings = DemoSettings(out_dir=Path(tmp), weights=weights, consumer="bench-accuracy")
        run = asyncio.run(stream_scenarios(settings, {folder.name: folder}, {folder.name: truth}, Path(tmp) / "data"))
    metrics = score_events(truth, run.events).metrics
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update({f"{key}_{k}": float(v) for k, v in value.items() if isinstance(v, int | float)})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


async def run_demo(settings: DemoSettings) -> int:
    from detector.demo.report import ScenarioReport, render_html
    from detector.sim.scenarios import SCENARIOS as PLANS
    from detector.sim.truth import Truth

    started = time.perf_counter()
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    folders = ensure_rendered(settings)
    truths = {name: json.loads((folder / "truth.json").read_text()) for name, folder in folders.items()}
    data_dir = settings.out_dir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)  # every demo run starts with an empty event log
    run = await stream_scenarios(settings, folders, truths, data_dir)
    for s in run.summaries:
        print(s.text())
    reports = []
    tables = []
    for name in SCENARIOS:
        truth = Truth.from_dict(truths[name])
        mine = [e for e in run.events if e.source_id == truth.source_id]
        scored = score_events(truths[name], run.events)
        tables.append(scored.text())
        (settings.out_dir / f"score-{name}.json").write_text(json.dumps(scored.to_dict(), indent=2))
        matches = {i.incident_id: i.object_id for i in scored.incidents if i.object_id is not None}
        plan = PLANS[name](settings.seed, None, None)
        reports.append(ScenarioReport(name, truth, plan.world.street, mine, run.evidence, matches, scored.text()))
    wall = time.perf_counter() - started
    summary = "\n\n".join(tables) + f"\n\ndemo wall time {wall:.0f} s"
    report = settings.out_dir / "report.html"
    report.write_text(render_html(reports, "StreetWatch demo: incidents against ground truth", summary))
    print("\n" + summary)
    print(f"\nreport: {report.resolve()}")
    return 0
