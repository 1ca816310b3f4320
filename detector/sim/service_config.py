"""The service settings a city would write for a rendered scenario's source, from its ground truth.

A fixed (pole) camera gets the no-vending zone over the road and pavements as its pixel polygon, the scenario's
dwell time and its ground calibration (control points: surveyed ground features seen by the camera model); a drone
gets ``camera: moving``, its camera profile and tiles for its frames. ``detector sim render`` writes this next to
the video as ``service.yaml``; ``make demo`` and ``detector bench accuracy --scenario`` run the service with it.

Example::

    truth = json.loads(Path("/tmp/ms/truth.json").read_text())
    document = service_document([truth], imgsz=416)   # {"rules": {"sources": {...}}, "tiling": {...}}
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

# Tiles for a moving (drone) source, 1.5 times the model input: objects reach the model at 2/3 of their size in the
# frame, the scale the real aerial stalls were learned at (640 px tiles trained at 416 px). At a 640 px input a
# 1920x1080 frame is 3 x 2 tiles of 960 px plus the whole-frame pass, instead of one pass at a third.
TILE_OVER_INPUT = 1.5
SIM_DRONE_PROFILE: dict[str, Any] = {"name": "sim-drone", "focal_35mm_mm": 24.0}
"""The simulator's drone camera (:meth:`detector.sim.views.FlightSettings.profile` with its default focal)."""


def drone_tiling(imgsz: int) -> dict[str, Any]:
    tile = round(imgsz * TILE_OVER_INPUT)
    return {"tile_px": tile, "overlap_px": round(tile / 5), "full_frame": True}


def source_rules(truth: dict[str, Any], camera_profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """``rules.sources.<id>`` for the truth's source: zones, dwell and calibration, or a drone's profile."""
    if truth["camera"] == "fixed":
        rules: dict[str, Any] = {
            "dwell_s": truth["dwell_s"],
            "zones": [
                {"id": z["id"], "polygon_px": z["polygon_px"], "prohibited_classes": z["prohibited_classes"]}
                for z in truth["zones"]
            ],
            "zones_frame_size_px": [truth["width"], truth["height"]],
        }
        if truth.get("calibration", {}).get("control_points"):
            rules["geo"] = {"calibration": {"control_points": truth["calibration"]["control_points"]}}
        return rules
    return {"camera": "moving", "geo": {"camera_profile": dict(camera_profile or SIM_DRONE_PROFILE)}}


def service_document(
    truths: Iterable[dict[str, Any]],
    imgsz: int | None,
    *,
    tile_drones: bool = True,
    camera_profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``rules`` (and ``tiling``, for drones) sections for these scenarios' sources. ``imgsz``: the model input
    the drone tiles are sized for (None: no tiles)."""
    sources: dict[str, Any] = {}
    tiled: dict[str, Any] = {}
    for truth in truths:
        sources[truth["source_id"]] = source_rules(truth, camera_profile)
        if truth["camera"] != "fixed" and tile_drones and imgsz is not None:
            tiled[truth["source_id"]] = drone_tiling(imgsz)
    document: dict[str, Any] = {"rules": {"sources": sources}}
    if tiled:
        document["tiling"] = {"sources": tiled}
    return document


def write_service_yaml(path: Path, document: dict[str, Any], header: str) -> None:
    """The document as YAML, after a comment header (``# `` added to each line)."""
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
