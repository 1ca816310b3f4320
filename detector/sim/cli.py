"""`detector sim`: render scenarios, score incident events against their truth, make training composites.

Registered by detector/cli.py::

    from detector.sim import cli as sim_cli
    sim_cli.add_commands(commands)            # next to the other add_parser calls
    if args.command == "sim": return sim_cli.run(args)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from detector.sim.scenarios import SCENARIOS

if TYPE_CHECKING:
    from detector.sim.sprites import SpriteBank


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = subparsers.add_parser("sim", help="street-world simulator: footage with ground truth, and a scorer")
    commands = sim.add_subparsers(dest="sim_command", required=True)

    render = commands.add_parser("render", help="render a scenario: video.mp4, truth.json, flight.srt, preview.jpg")
    render.add_argument("--scenario", required=True, choices=sorted(SCENARIOS), help="what to render")
    render.add_argument("--out", required=True, type=Path, help="output folder")
    render.add_argument("--seed", type=int, default=0, help="same seed, same world and pixels")
    render.add_argument("--minutes", type=float, help="length (market-street: 4 or more; drone-patrol: cut short)")
    render.add_argument("--fps", type=float, help="frames per second (default: 2 for market-street, 4 for drones)")
    render.add_argument("--size", default="1280x720", help="frame size WIDTHxHEIGHT, even numbers")
    render.add_argument("--altitude", type=float, help="drone height above ground, 30-120 m (default 60)")
    render.add_argument("--gimbal-pitch", type=float, help="drone gimbal pitch, -90..-45 deg (default -60)")
    render.add_argument("--speed", type=float, help="drone ground speed, m/s (default 8)")
    render.add_argument(
        "--telemetry-noise",
        type=float,
        default=1.0,
        help="scale of the drone's telemetry errors in the .SRT: 0 exact, 1 default (GPS 1.5 m, height 0.8 m, "
        "heading 2 deg, gimbal pitch 0.5 deg)",
    )
    render.add_argument("--no-video", action="store_true", help="write the truth only (fast)")
    render.add_argument(
        "--sprites",
        type=Path,
        help="sprite bank for people and vehicles (default .cache/sprites when built: `detector sim sprites`)",
    )
    render.add_argument("--no-sprites", action="store_true", help="draw people and vehicles as meshes")
    render.add_argument(
        "--no-photo-objects",
        action="store_true",
        help="draw garbage, bins, potholes and stalls as meshes, not the bank's cut-outs of labelled photos",
    )
    render.add_argument(
        "--no-textures", action="store_true", help="paint road and pavements in flat colours, not the bank's photos"
    )
    render.add_argument("--json", action="store_true", help="print the summary as JSON")

    score = commands.add_parser("score", help="score incident events (detector subscribe --json) against a truth")
    score.add_argument("--truth", required=True, type=Path, help="truth.json of the rendered scenario")
    score.add_argument("--events", required=True, type=Path, help="JSON lines from `detector subscribe --json`")
    score.add_argument("--out", type=Path, help="write the full score as JSON here")
    score.add_argument(
        "--start-ts",
        type=float,
        help="capture time (UNIX s) of frame 0, if replayed at another time: the first_capture_ts of "
        "`detector replay --json` (default: the truth's start_ts)",
    )
    score.add_argument(
        "--replay-summary",
        type=Path,
        help="the JSON that `detector replay --json` printed: its first_capture_ts is --start-ts",
    )
    score.add_argument("--source", help="score only this source_id's events")
    score.add_argument("--dwell", type=float, help="the service's dwell_s (default: the truth's)")
    score.add_argument("--match-radius", type=float, default=5.0, help="metres an incident may be off (default 5)")
    score.add_argument("--json", action="store_true", help="print the score as JSON instead of a table")

    comp = commands.add_parser("composites", help="write YOLO training composites of the simulator's classes")
    comp.add_argument("--out", required=True, type=Path, help="output folder (images/, labels/)")
    comp.add_argument("--images", type=int, default=100, help="how many")
    comp.add_argument("--imgsz", type=int, default=640, help="side in pixels")
    comp.add_argument("--classes", nargs="+", default=["stall", "cart", "goods"], help="classes to draw and label")
    comp.add_argument("--backgrounds", nargs="*", type=Path, default=[], help="folders of real photos (optional)")
    comp.add_argument("--seed", type=int, default=0)

    export = commands.add_parser("export-yolo", help="a rendered scenario as a YOLO dataset (for detector eval)")
    export.add_argument("--scenario-dir", required=True, type=Path, help="folder written by `detector sim render`")
    export.add_argument("--out", required=True, type=Path, help="output folder (images/val, labels/val, data.yaml)")
    export.add_argument(
        "--classes", nargs="+", help="class list in id order (default: the committed model's, so eval lines up)"
    )
    export.add_argument("--every", type=float, default=5.0, help="one frame every this many seconds")
    export.add_argument("--min-visibility", type=float, default=0.5, help="label objects at least this visible")
    export.add_argument("--min-side", type=float, default=8.0, help="label objects at least this many pixels")
    export.add_argument(
        "--tile", metavar="TILE_PX:OVERLAP_PX", help="write each frame's tiles (as a tiled source is cut), e.g. 960:192"
    )

    realism = commands.add_parser(
        "realism",
        help="domain gap: a COCO model's recall on a render's cars, trucks, people; its detections on real photos",
    )
    realism.add_argument("--scenario-dir", required=True, type=Path, help="folder written by `detector sim render`")
    realism.add_argument("--weights", type=Path, help="COCO checkpoint (default ../shared/pretrained/yolo11n-coco.pt)")
    realism.add_argument(
        "--photos", nargs="*", type=Path, help="folders of real photos (default ../shared/datasets/city-garbage/images)"
    )
    realism.add_argument("--max-photos", type=int, default=60, help="photos at most, spread over the folders")
    realism.add_argument("--conf", type=float, default=0.25, help="detection confidence threshold")
    realism.add_argument("--imgsz", type=int, default=640, help="model input size")
    realism.add_argument("--every-s", type=float, default=1.0, help="one frame every this many seconds")
    realism.add_argument("--out", type=Path, help="write FILE.json and FILE.md")

    sprites = commands.add_parser(
        "sprites",
        help="cut people, cars and trucks (a COCO model + GrabCut), the labelled garbage, bins, potholes and stalls, "
        "and ground textures out of real photos (../shared)",
        description="Builds .cache/sprites (about 15 minutes on 2 cores): cut-outs of people and vehicles, of the "
        "labelled objects (the demo's from the model's validation photos only), and asphalt, paving and roof patches; "
        "renders use it once it exists.",
    )
    sprites.add_argument("--out", type=Path, help="bank folder (default .cache/sprites)")
    sprites.add_argument("--weights", type=Path, help="COCO checkpoint (default ../shared/pretrained/yolo11n-coco.pt)")
    sprites.add_argument("--min-conf", type=float, default=0.4, help="COCO confidence a cut-out needs (default 0.4)")
    sprites.add_argument("--max-photos", type=int, default=0, help="photos per source folder at most (0: all)")
    sprites.add_argument(
        "--recheck", action="store_true", help="only drop the bank's cut-outs the model no longer finds alone"
    )
    again = sprites.add_mutually_exclusive_group()
    again.add_argument(
        "--textures-only", action="store_true", help="only cut the ground textures again, into the existing bank"
    )
    again.add_argument(
        "--objects-only", action="store_true", help="only cut the labelled objects again, into the existing bank"
    )


def run(args: argparse.Namespace) -> int:
    handlers = {"render": _render, "score": _score, "composites": _composites, "export-yolo": _export,
                "realism": _realism, "sprites": _sprites}  # fmt: skip
    try:
        return handlers[args.sim_command](args)
    except (ValueError, ValidationError) as exc:  # bad settings or input files: say what to fix
        print(f"detector sim {args.sim_command}: {exc}", file=sys.stderr)
        return 2


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must be WIDTHxHEIGHT, e.g. 1280x720; got {text!r}") from None
    return width, height


def _render(args: argparse.Namespace) -> int:
    from detector.sim.runner import render_scenario
    from detector.sim.views import FlightSettings, TelemetryNoise

    width, height = _size(args.size)
    flight_options = {
        k: v
        for k, v in (("altitude_m", args.altitude), ("gimbal_pitch_deg", args.gimbal_pitch), ("speed_m_s", args.speed))
        if v is not None
    }
    if args.telemetry_noise < 0:
        raise ValueError(f"--telemetry-noise must be 0 or more, got {args.telemetry_noise}")
    default = TelemetryNoise()
    noise = default.model_copy(
        update={k: getattr(default, k) * args.telemetry_noise for k in ("gps_m", "height_m", "yaw_deg", "pitch_deg")}
    )
    flight = FlightSettings.model_validate({**flight_options, "noise": noise})
    bank = _bank(args.sprites, args.no_sprites, "scenario")
    summary = render_scenario(
        args.scenario,
        args.out,
        seed=args.seed,
        minutes=args.minutes,
        fps=args.fps,
        width=width,
        height=height,
        flight=flight,
        video=not args.no_video,
        sprites=bank.without_objects() if bank is not None and args.no_photo_objects else bank,
        textures=not args.no_textures,
    )
    if args.json:
        data = {**summary.__dict__, "out_dir": str(summary.out_dir)}
        print(json.dumps(data, indent=2))
    else:
        print(summary.text())
    return 0


def _bank(folder: Path | None, off: bool, split: str) -> SpriteBank | None:
    """The sprite bank a render uses: none with --no-sprites, the given folder, or the default one when built."""
    from detector.sim.sprites import SpriteBank, default_bank

    if off:
        return None
    return SpriteBank(folder, split) if folder is not None else default_bank(split)


def _score(args: argparse.Namespace) -> int:
    from detector.sim.events import read_events
    from detector.sim.score import Scorer, ScoreSettings
    from detector.sim.truth import Truth

    truth = Truth.load(args.truth)
    start_ts = args.start_ts
    if args.replay_summary is not None:
        if start_ts is not None:
            raise ValueError("give --start-ts or --replay-summary, not both")
        start_ts = _first_capture_ts(args.replay_summary)
    settings = ScoreSettings(
        dwell_s=args.dwell, match_radius_m=args.match_radius, start_ts=start_ts, source_id=args.source
    )
    report = Scorer(truth, settings).score(read_events(args.events))
    for warning in report.warnings:
        print(f"detector sim score: WARNING: {warning}", file=sys.stderr)
    if args.out is not None:
        args.out.write_text(json.dumps(report.to_dict(), indent=2))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.text())
    return 0


def _first_capture_ts(path: Path) -> float:
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--replay-summary {path}: not readable JSON ({exc})") from exc
    value = summary.get("first_capture_ts") if isinstance(summary, dict) else None
    if not isinstance(value, int | float):
        raise ValueError(f"--replay-summary {path}: no first_capture_ts (the output of `detector replay --json`)")
    return float(value)


def _composites(args: argparse.Namespace) -> int:
    from detector.sim.composite import render_composites
    from detector.train.config import SimSource

    source = SimSource(
        name="sim",
        images=args.images,
        imgsz=args.imgsz,
        backgrounds=args.backgrounds,
        classes=args.classes,
        seed=args.seed,
    )
    images = render_composites(source, list(args.classes), args.out)
    boxes = sum(len(i.boxes) for i in images)
    print(f"wrote {len(images)} composites with {boxes} boxes to {args.out}/images and {args.out}/labels")
    return 0


def _realism(args: argparse.Namespace) -> int:
    from detector.sim.realism import DEFAULT_PHOTOS, DEFAULT_WEIGHTS, measure_realism

    report = measure_realism(
        args.scenario_dir,
        weights=args.weights or DEFAULT_WEIGHTS,
        photos=args.photos if args.photos is not None else [DEFAULT_PHOTOS],
        max_photos=args.max_photos,
        conf=args.conf,
        every_s=args.every_s,
        imgsz=args.imgsz,
    )
    print(report.text())
    if args.out is not None:
        import shlex

        from detector.bench.machine import machine_info

        info = machine_info("cpu")
        command = shlex.join(["detector", *sys.argv[1:]])
        report.header = info.markdown_header("", {k: info.versions[k] for k in ("torch", "ultralytics")}, command)[2:]
        for path in report.write(args.out):
            print(f"wrote {path}")
    return 0


def _sprites(args: argparse.Namespace) -> int:
    from detector.sim.realism import DEFAULT_WEIGHTS
    from detector.sim.sprites import DEFAULT_BANK, DEFAULT_SOURCES, harvest, realism_photos_excluded, recheck

    missing = [str(folder) for folder, _ in DEFAULT_SOURCES if not folder.exists()]
    if missing:
        raise ValueError(f"the photo folders {missing} are missing (../shared beside the repository)")
    out = args.out or DEFAULT_BANK
    if args.recheck:
        kept, dropped = recheck(out, weights=args.weights or DEFAULT_WEIGHTS, min_conf=args.min_conf)
        print(f"sprite bank {out}: kept {kept}, dropped {dropped} the model does not find alone")
        return 0
    if args.textures_only or args.objects_only:
        from detector.sim.photo_objects import harvest_objects
        from detector.sim.textures import harvest_textures

        manifest = out / "manifest.json"
        if not manifest.is_file():
            raise ValueError(f"{out} is not a sprite bank (no manifest.json): build it whole first")
        splits = json.loads(manifest.read_text()).get("splits", ["scenario", "train"])
        part, again = (("ground textures", harvest_textures) if args.textures_only
                       else ("labelled objects", harvest_objects))  # fmt: skip
        redone = again(out, exclude=realism_photos_excluded(), splits=splits, max_photos=args.max_photos)
        print(f"sprite bank {out}: {part}: {redone.text()}")
        return 0
    report = harvest(DEFAULT_SOURCES, out, weights=args.weights or DEFAULT_WEIGHTS, min_conf=args.min_conf,
                     max_photos=args.max_photos, exclude=realism_photos_excluded())  # fmt: skip
    print(f"sprite bank {out}: {report.text()}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from detector.sim.export import export_yolo

    classes = args.classes
    if not classes:
        from detector import yolo_env
        from detector.config import DEFAULT_WEIGHTS

        yolo_env.prepare()
        from ultralytics.models.yolo.model import YOLO

        names = YOLO(str(DEFAULT_WEIGHTS)).names
        classes = [names[i] for i in sorted(names)]
    tile = None
    if args.tile:
        from detector.inference.tiling import TilingSpec

        try:
            tile = TilingSpec.parse(args.tile, full_frame=False)
        except ValueError as exc:
            print(f"detector sim export-yolo: --tile: {exc}", file=sys.stderr)
            return 2
    summary = export_yolo(
        args.scenario_dir, args.out, list(classes), args.every, args.min_visibility, args.min_side, tile=tile
    )
    print(summary.text())
    print(f"evaluate with: detector eval --weights W --data {args.out / 'data.yaml'}")
    return 0
