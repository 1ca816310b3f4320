"""Proto messages <-> internal types. The only module outside _gen that knows the ingest proto's shape."""

from __future__ import annotations

import math

from google.protobuf.timestamp_pb2 import Timestamp

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.geo.pose import PoseError, check_pose
from detector.ingest.decode import FrameRejected, RejectCode
from detector.ingest.frames import EncodedImage, FrameInput, ImagePayload, RawPixels, Unreadable
from detector.pipeline import FrameOutcome
from detector.types import DeliveryMode, Detections, Telemetry

_TELEMETRY_FIELDS = (
    "lat",
    "lon",
    "altitude_agl_m",
    "aircraft_yaw_deg",
    "aircraft_pitch_deg",
    "aircraft_roll_deg",
    "gimbal_yaw_deg",
    "gimbal_pitch_deg",
    "gimbal_roll_deg",
    "hfov_deg",
)
# Timestamps before 2000 or after 2100 are a gateway bug (or an unset clock), not a capture time.
_MIN_TS, _MAX_TS = 946684800, 4102444800


def delivery_mode(value: int) -> DeliveryMode:
    return DeliveryMode.LOSSLESS if value == pb.LOSSLESS else DeliveryMode.LIVE


def capture_ts(frame: pb.Frame) -> float:
    if not frame.HasField("capture_time"):
        raise FrameRejected(RejectCode.INVALID_FRAME, "capture_time is required (the time the image was taken)")
    return wall_clock_s(frame.capture_time, "capture_time")


def wall_clock_s(t: Timestamp, name: str) -> float:
    """Seconds since the epoch; ``FrameRejected`` naming the field when it is not a plausible capture time."""
    if not (_MIN_TS <= t.seconds < _MAX_TS) or not (0 <= t.nanos < 1_000_000_000):
        raise FrameRejected(
            RejectCode.INVALID_FRAME,
            f"{name} {t.seconds}s {t.nanos}ns is not a plausible wall-clock time",
        )
    return t.seconds + t.nanos / 1e9


def telemetry(frame: pb.Frame) -> Telemetry | None:
    if not frame.HasField("telemetry"):
        return None
    msg = frame.telemetry
    values = {name: getattr(msg, name) for name in _TELEMETRY_FIELDS if msg.HasField(name)}
    for name, value in values.items():
        if not math.isfinite(value):
            raise FrameRejected(RejectCode.INVALID_FRAME, f"telemetry.{name} must be finite, got {value}")
    try:
        return check_pose(Telemetry(**values))
    except PoseError as exc:
        raise FrameRejected(RejectCode.INVALID_FRAME, f"telemetry: {exc}") from None
    except ValueError as exc:
        raise FrameRejected(RejectCode.INVALID_FRAME, str(exc)) from None


def telemetry_to_proto(value: Telemetry) -> pb.Telemetry:
    """Only the known fields are set; the rest stay unset (unknown)."""
    return pb.Telemetry(**{name: v for name in _TELEMETRY_FIELDS if (v := getattr(value, name)) is not None})


def telemetry_from_proto(msg: pb.Telemetry) -> Telemetry:
    """The fields the message sets; unset ones stay unknown (None). ValueError when a value is out of range."""
    return Telemetry(**{name: getattr(msg, name) for name in _TELEMETRY_FIELDS if msg.HasField(name)})


def detections_to_proto(dets: Detections, class_names: list[str]) -> list[pb.Detection]:
    out = []
    track_ids = dets.track_id
    for i in range(len(dets)):
        class_id = int(dets.class_id[i])
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        out.append(
            pb.Detection(
                class_id=class_id,
                label=class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id),
                confidence=float(dets.confidence[i]),
                box=pb.Box(x1=x1, y1=y1, x2=x2, y2=y2),
                track_id=-1 if track_ids is None else int(track_ids[i]),
            )
        )
    return out


def frame_input(frame: pb.Frame, mode: DeliveryMode | None = None) -> FrameInput | Unreadable:
    """The pipeline's input for a Frame message, or what is unreadable about it (per-frame error)."""
    try:
        kind = frame.WhichOneof("image")
        image: ImagePayload
        if kind == "encoded":
            image = EncodedImage(frame.encoded)
        elif kind == "raw":
            raw = frame.raw
            if raw.pixel_format not in (pb.BGR8, pb.RGB8):
                raise FrameRejected(RejectCode.INVALID_IMAGE, "raw.pixel_format must be BGR8 or RGB8")
            image = RawPixels(raw.width, raw.height, raw.pixel_format == pb.RGB8, raw.data)
        else:
            raise FrameRejected(RejectCode.INVALID_IMAGE, "frame carries no image (set encoded or raw)")
        gap = frame.gap_before_s
        if not (math.isfinite(gap) and gap >= 0):
            raise FrameRejected(RejectCode.INVALID_FRAME, f"gap_before_s must be finite and >= 0, got {gap}")
        return FrameInput(
            source_id=frame.source_id,
            seq=frame.seq,
            capture_ts=capture_ts(frame),
            image=image,
            telemetry=telemetry(frame),
            mode=delivery_mode(frame.delivery_mode) if mode is None else mode,
            gap_before_s=gap,
        )
    except FrameRejected as exc:
        return Unreadable(frame.source_id, frame.seq, exc)


def outcome_to_proto(outcome: FrameOutcome, model: pb.ModelInfo, class_names: list[str]) -> pb.FrameResult:
    if outcome.error is not None:
        result = error_result(outcome.source_id, outcome.seq, outcome.error.code, outcome.error.message)
        result.frames_dropped_total = outcome.frames_dropped_total
        return result
    t = outcome.timings
    width, height = outcome.image_size or (0, 0)
    result = pb.FrameResult(
        source_id=outcome.source_id,
        seq=outcome.seq,
        model=model,
        frames_dropped_total=outcome.frames_dropped_total,
        image_width=width,
        image_height=height,
    )
    if t is not None:
        result.timings.CopyFrom(
            pb.Timings(
                decode_ms=t.decode_ms,
                queued_ms=t.queued_ms,
                inference_ms=t.inference_ms,
                batch_size=t.batch_size,
            )
        )
    if outcome.detections is not None:
        result.detections.extend(detections_to_proto(outcome.detections, class_names))
    return result


def error_result(source_id: str, seq: int, code: RejectCode, message: str) -> pb.FrameResult:
    return pb.FrameResult(
        source_id=source_id,
        seq=seq,
        error=pb.FrameError(code=pb.FrameErrorCode.Name(pb.FrameErrorCode.Value(code.value)), message=message),
    )
