"""Render speed of the simulator (issue 19): frames per second at 960x540 and 1920x1080, people and vehicles drawn
as meshes and as photo cut-outs (the sprite bank, `detector sim sprites`), with the bank's photo textures for
road, pavements and roofs, and with its labelled objects (garbage, bins, potholes, stalls from above) cut out of
photos; both scenarios, video and truth written.

    .venv/bin/python benchmarks/sim_render_speed.py [--frames 40] [--out benchmarks/results/sim-realism/DATE]

Each run renders the scenario's first ``--frames`` frames (market-street at its default 2 fps, drone-patrol at its
default 4 fps) into a temporary folder; the time includes the camera effects, the H.264 encode and the truth (and,
with textures, painting the ground once: about a second).
One process, one core busy at a time (the renderer is single-threaded); the load average is in the header.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import tempfile
from pathlib import Path

import cv2

from detector.bench.machine import machine_info
from detector.sim.runner import render_scenario
from detector.sim.scenarios import SCENARIOS
from detector.sim.sprites import default_bank

SIZES = ((960, 540), (1920, 1080))
RATES = {"market-street": 2.0, "drone-patrol": 4.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40, help="frames per run")
    parser.add_argument("--out", type=Path, help="folder for render-speed.md/.json (default: print only)")
    args = parser.parse_args(argv)
    bank = default_bank("scenario")
    looks = [("meshes", None, False)]
    if bank is not None:
        plain = bank.without_objects()  # people and vehicles only: the labelled objects as meshes
        looks += [("sprites", plain, False)] + ([("sprites+textures", plain, True)] if bank.textures.textures else [])
        if bank.objects_fingerprint:
            looks += [("sprites+textures+objects", bank, bool(bank.textures.textures))]
    if bank is None:
        print("no sprite bank (.cache/sprites): measuring meshes only; build it with `detector sim sprites`")
    rows = []
    for name in SCENARIOS:
        rate = RATES[name]
        minutes = 4.0 if name == "market-street" else None  # the shortest market street; the whole flight
        for width, height in SIZES:
            for look, sprites, textures in looks:
                with tempfile.TemporaryDirectory() as tmp:
                    summary = render_scenario(name, Path(tmp), minutes=minutes, fps=rate, width=width,
                                              height=height, sprites=sprites, progress=False,
                                              max_frames=args.frames, textures=textures)  # fmt: skip
                speed = summary.frames / summary.wall_s
                rows.append({"scenario": name, "size": f"{width}x{height}", "look": look, "frames": summary.frames,
                             "wall_s": round(summary.wall_s, 2), "frames_per_s": round(speed, 2)})  # fmt: skip
                print(f"{name:14} {width}x{height:<5} {look:16} {summary.frames} frames in {summary.wall_s:6.1f} s: "
                      f"{speed:5.2f} frames/s", flush=True)  # fmt: skip
    if args.out is not None:
        info = machine_info("cpu")
        command = shlex.join(["python", "benchmarks/sim_render_speed.py", *sys.argv[1:]])
        lines = info.markdown_header("Simulator render speed", {"opencv": cv2.__version__}, command)
        lines += ["", f"- Date: {datetime.date.today()}; sprite bank: {bank.fingerprint if bank else 'none'}", ""]
        lines += [
            "| scenario | size | look: people and vehicles (+ photo textures, + labelled objects) | frames | seconds | "
            "frames/s |",
            "|---|---|---|---:|---:|---:|",
        ]
        lines += [f"| {r['scenario']} | {r['size']} | {r['look']} | {r['frames']} | {r['wall_s']} | "
                  f"{r['frames_per_s']} |" for r in rows]  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "render-speed.md").write_text("\n".join(lines) + "\n")
        (args.out / "render-speed.json").write_text(json.dumps(rows, indent=1))
        print(f"wrote {args.out / 'render-speed.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
