"""Geotagging accuracy, for the issue note: projection round trip, whether accuracy_m covers the truth, and the
cue counts of the DJI .SRT fixtures.

    .venv/bin/python benchmarks/geo_accuracy.py [--trials 4000] [--seed 1] [--fixtures ../shared/fixtures/dji-srt]

1. Round trip: ground points -> pixels (camera model) -> WGS84 (projector) -> metres from the truth, over a grid
   of poses (altitude 30-150 m, gimbal pitch -90..-30 deg, yaw all round), for every visible grid point.
2. Drone uncertainty: Monte-Carlo trials with pose noise drawn from the projector's stated sigmas; how often
   the true point lies within accuracy_m (a DRMS radius: about 63-68 % expected) and within 2x (about 95 %).
3. Fixed-camera uncertainty: a camera 8 m up looking 35 deg down, calibrated from 8 control points with survey
   noise and pixel noise; the same question for HOMOGRAPHY locations of other ground points, with the default
   accuracy floor (min_accuracy_m 0.5 m, above the simulated survey noise) and with a floor out of the way.
4. Cue counts: every .SRT fixture through the parser.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detector.geo import accuracy
from detector.geo.camera import CameraProfile
from detector.geo.projection import DroneProjector, ProjectionSigmas
from detector.geo.srt_inspect import inspect_srt
from detector.types import Telemetry

REPO = Path(__file__).resolve().parents[1]
LAT, LON = 39.9042, 116.4074
COLUMNS = f"{'points':>6} {'within 1x':>9} {'within 2x':>9} {'median err':>10} {'median acc':>10}"
PROFILE = CameraProfile(name="mavic3-4k", focal_35mm_mm=24.0, image_width_px=3840, image_height_px=2160)


def round_trip(progress: tqdm) -> tuple[int, int, float]:
    projector = DroneProjector(PROFILE, max_range_m=2000.0)
    poses = list(itertools.product(range(30, 151, 20), range(-90, -29, 5), range(-180, 180, 30)))
    worst, points = 0.0, 0
    for altitude, pitch, yaw in poses:
        telemetry = Telemetry(
            lat=LAT, lon=LON, altitude_agl_m=altitude, gimbal_pitch_deg=pitch, gimbal_yaw_deg=yaw, gimbal_roll_deg=0.0
        )
        errors = accuracy.round_trip_errors_m(projector, telemetry)
        worst, points = max(worst, float(errors.max())), points + len(errors)
        progress.update()
    return len(poses), points, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4000, help="Monte-Carlo trials per drone scenario")
    parser.add_argument("--fixed-trials", type=int, default=300, help="calibrations in the fixed-camera check")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fixtures", type=Path, default=REPO.parent / "shared" / "fixtures" / "dji-srt")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    projector = DroneProjector(PROFILE, ProjectionSigmas(), max_range_m=2000.0)
    sigmas = projector.sigmas
    total = 7 * 13 * 12 + 2 * args.trials + 2 * args.fixed_trials
    with tqdm(total=total, desc="geo accuracy", file=sys.stderr) as progress:
        poses, points, worst = round_trip(progress)
        drone = {
            label: accuracy.coverage(
                projector, rng, args.trials, drop_pitch=drop, lat=LAT, lon=LON, progress=progress.update
            )
            for label, drop in (("full telemetry", False), ("gimbal missing (nadir)", True))
        }
        fixed = {
            floor: accuracy.homography_coverage(rng, args.fixed_trials, min_accuracy_m=floor, progress=progress.update)
            for floor in (0.5, 0.05)
        }

    print("\n1. Projection round trip (camera model -> pixels -> ground)")
    print(f"   {poses} poses (alt 30-150 m / 20, pitch -90..-30 / 5, yaw / 30), {points} points")
    print(f"   max error {worst:.3e} m (limit 0.05 m)")
    print("\n2. Drone accuracy_m vs truth, Monte-Carlo with the stated sigmas")
    print(
        f"   sigmas: GPS {sigmas.gps_horizontal_m} m/axis, height {sigmas.height_m} m, tilt {sigmas.tilt_deg} deg, "
        f"heading {sigmas.heading_deg} deg, pixel {sigmas.pixel_px} px, nadir tilt {sigmas.assumed_nadir_tilt_deg} deg"
    )
    print(f"   {'scenario':26} {COLUMNS}")
    for label, c in drone.items():
        print(
            f"   {label:26} {c.trials:6d} {c.within_1x:9.1%} {c.within_2x:9.1%} "
            f"{c.median_error_m:8.2f} m {c.median_accuracy_m:8.2f} m"
        )
    print("\n3. Fixed camera accuracy_m vs truth (8 m up, 35 deg down, 8 control points, survey 0.3 m, pixel 2 px)")
    print(f"   {'min_accuracy_m':26} {COLUMNS}")
    for floor, c in fixed.items():
        label = f"{floor} m" + (" (default)" if floor == 0.5 else " (the model alone)")
        print(
            f"   {label:26} {c.trials:6d} {c.within_1x:9.1%} {c.within_2x:9.1%} "
            f"{c.median_error_m:8.2f} m {c.median_accuracy_m:8.2f} m"
        )
    print(f"\n4. DJI .SRT fixtures ({args.fixtures})")
    print(f"   {'file':24} {'cues':>6} {'span s':>16} {'rate Hz':>7} {'GPS order':>9} {'warnings':>8}")
    for path in sorted(args.fixtures.glob("*")):
        if path.suffix.lower() != ".srt":
            continue
        s = inspect_srt(path)
        span = f"{s.first_s:.2f}-{s.last_s:.2f}"
        status = f"unusable: {s.error}" if s.error else ""
        print(
            f"   {path.name:24} {s.cues:6d} {span:>16} {s.rate_hz:7.1f} {s.gps_order or '-':>9} "
            f"{len(s.warnings):8d} {status}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
