"""See what the model sees in a replay: each answered frame as one JSON line (``detector replay --jsonl``), and the
frames with their boxes, labels, track ids and zones drawn into an MP4 (``detector replay --annotate``).

Zones are drawn only when the service's settings are given (``--service-config``): the replay cannot ask the
service for them. They are a fixed camera's ``rules`` zones, scaled by ``zones_frame_size_px`` as the service
scales them (detector/rules/zones.py ``build_zones``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Protocol

import av
import numpy as np

from detector.annotate import annotate
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.types import Detections, ImageArray

Polygon = tuple[tuple[float, float], ...]


class FrameView(Protocol):
    """Something that is shown every answered frame, in answer order: ``begin`` with the nominal frame rate,
    ``add`` per answer (with the image sent when ``wants_images``), ``close`` at the end."""

    wants_images: bool

    def begin(self, fps: float) -> None: ...

    def add(self, result: pb.FrameResult, capture_ts: float | None, image: ImageArray | None) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ZoneOutlines:
    """A source's pixel zones as configured: (id, polygon), drawn on ``drawn_size`` (width, height) or, when None,
    in the stream's own pixels."""

    zones: tuple[tuple[str, Polygon], ...] = ()
    drawn_size: tuple[int, int] | None = None

    def at(self, frame_size: tuple[int, int]) -> list[tuple[str, Polygon]]:
        """The zones in the pixels of a frame of ``frame_size`` (width, height)."""
        sx = sy = 1.0
        if self.drawn_size is not None:
            (drawn_w, drawn_h), (w, h) = self.drawn_size, frame_size
            sx, sy = w / drawn_w, h / drawn_h
        return [(zone_id, tuple((x * sx, y * sy) for x, y in polygon)) for zone_id, polygon in self.zones]


def zones_from_service_config(path: Path, source_id: str) -> ZoneOutlines:
    """The pixel zones the service with settings ``path`` (merged as ``detector serve --config`` merges them)
    applies to ``source_id``; none for a moving camera. Raises ``detector.config.ConfigError``."""
    from detector.config import load_config
    from detector.rules.config import FixedCamera

    rules = load_config(path).rules.for_source(source_id)
    if not isinstance(rules, FixedCamera):
        return ZoneOutlines()
    zones = tuple((zone.id, tuple((float(x), float(y)) for x, y in zone.polygon_px)) for zone in rules.zones)
    size = (
        None
        if rules.zones_frame_size_px is None
        else (int(rules.zones_frame_size_px[0]), int(rules.zones_frame_size_px[1]))
    )
    return ZoneOutlines(zones, size)


def iso_time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def frame_record(result: pb.FrameResult, capture_ts: float | None) -> dict[str, object]:
    """One answered frame as a JSON-ready dict: seq, capture time, source, detections (label, class_id,
    confidence, box [x1, y1, x2, y2] in the frame's pixels, track_id, -1 when untracked), error, timings."""
    error = None
    if result.HasField("error"):
        error = {"code": pb.FrameErrorCode.Name(result.error.code), "message": result.error.message}
    t = result.timings
    return {
        "seq": result.seq,
        "capture_ts": capture_ts,
        "capture_time": None if capture_ts is None else iso_time(capture_ts),
        "source_id": result.source_id,
        "image_width": result.image_width,
        "image_height": result.image_height,
        "detections": [
            {
                "label": d.label,
                "class_id": d.class_id,
                "confidence": round(float(d.confidence), 4),
                "box": [round(float(v), 2) for v in (d.box.x1, d.box.y1, d.box.x2, d.box.y2)],
                "track_id": d.track_id,
            }
            for d in result.detections
        ],
        "error": error,
        "timings": {
            "decode_ms": round(float(t.decode_ms), 3),
            "queued_ms": round(float(t.queued_ms), 3),
            "inference_ms": round(float(t.inference_ms), 3),
            "batch_size": t.batch_size,
        },
        "frames_dropped_total": result.frames_dropped_total,
    }


def detections_of(result: pb.FrameResult) -> tuple[Detections, list[str]]:
    """The result's boxes as internal ``Detections``, and class names indexed by class id (from the labels)."""
    dets = result.detections
    names: dict[int, str] = {d.class_id: d.label for d in dets}
    class_names = [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]
    detections = Detections(
        xyxy=np.array([(d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in dets], np.float32).reshape(-1, 4),
        confidence=np.array([d.confidence for d in dets], np.float32),
        class_id=np.array([max(d.class_id, 0) for d in dets], np.int64),
        track_id=np.array([d.track_id for d in dets], np.int64),
    )
    return detections, class_names


class JsonlView:
    """Writes ``frame_record`` of each answered frame as one JSON line, flushed at once (follow it live)."""

    wants_images = False

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def begin(self, fps: float) -> None:
        pass

    def add(self, result: pb.FrameResult, capture_ts: float | None, image: ImageArray | None) -> None:
        import json

        self._out.write(json.dumps(frame_record(result, capture_ts), ensure_ascii=False) + "\n")
        self._out.flush()

    def close(self) -> None:
        self._out.flush()


class AnnotatedVideo:
    """An MP4 (H.264, or MPEG-4 part 2 where this PyAV has no libx264) of the answered frames with what the model
    found drawn on them. Each frame's timestamp is its capture time less the first one's, so the video plays at
    the source's pace (``fps`` is the nominal rate); a frame the service did not use (e.g. ``DROPPED``) is written
    as sent, without boxes."""

    TIME_BASE = Fraction(1, 1000)
    wants_images = True

    def __init__(self, path: Path, zones: ZoneOutlines | None = None) -> None:
        self.path = path
        self.fps = 1.0
        self.zones = zones or ZoneOutlines()
        self.frames = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._zones_px: list[tuple[str, Polygon]] = []
        self._first_ts: float | None = None
        self._last_pts = -1
        self._size = (0, 0)

    def begin(self, fps: float) -> None:
        """``fps``: the nominal rate of the stream (the source's, or the replay's ``--fps`` cap)."""
        self.fps = fps if fps > 0 else 1.0

    def add(self, result: pb.FrameResult, capture_ts: float | None, image: ImageArray | None) -> None:
        if image is None:
            return
        if self._container is None:
            self._open(image)
        assert self._container is not None and self._stream is not None
        if not result.HasField("error"):
            detections, class_names = detections_of(result)
            image = annotate(image, detections, class_names, self._zones_px)
        elif self._zones_px:
            image = annotate(image, Detections(), (), self._zones_px)
        width, height = self._size
        if image.shape[1] != width or image.shape[0] != height:  # odd sizes padded; a size change is scaled
            image = _fit(image, width, height)
        pts = self._last_pts + 1
        if capture_ts is not None:
            self._first_ts = capture_ts if self._first_ts is None else self._first_ts
            pts = max(pts, round((capture_ts - self._first_ts) / self.TIME_BASE))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts, frame.time_base = pts, self.TIME_BASE
        self._last_pts = pts
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def _open(self, image: ImageArray) -> None:
        height, width = image.shape[:2]
        self._size = (width + width % 2, height + height % 2)  # 4:2:0 needs even sides
        self._zones_px = self.zones.at((width, height))
        container = av.open(str(self.path), "w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.TIME_BASE
        stream.codec_context.time_base = self.TIME_BASE
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "20"}
        self._container, self._stream = container, stream

    def close(self) -> None:
        if self._container is None or self._stream is None:
            return
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None


def _fit(image: ImageArray, width: int, height: int) -> ImageArray:
    import cv2

    h, w = image.shape[:2]
    if w > width or h > height or (width - w) > 1 or (height - h) > 1:
        return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
    return np.asarray(cv2.copyMakeBorder(image, 0, height - h, 0, width - w, cv2.BORDER_REPLICATE), np.uint8)
