import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_MODE_UNSPECIFIED: _ClassVar[DeliveryMode]
    LIVE: _ClassVar[DeliveryMode]
    LOSSLESS: _ClassVar[DeliveryMode]

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    BGR8: _ClassVar[PixelFormat]
    RGB8: _ClassVar[PixelFormat]

class FrameErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_ERROR_CODE_UNSPECIFIED: _ClassVar[FrameErrorCode]
    UNDECODABLE: _ClassVar[FrameErrorCode]
    INVALID_IMAGE: _ClassVar[FrameErrorCode]
    IMAGE_TOO_LARGE: _ClassVar[FrameErrorCode]
    INVALID_FRAME: _ClassVar[FrameErrorCode]
    UNKNOWN_SOURCE: _ClassVar[FrameErrorCode]
    OUT_OF_ORDER: _ClassVar[FrameErrorCode]
    INTERNAL: _ClassVar[FrameErrorCode]
    DROPPED: _ClassVar[FrameErrorCode]
    RATE_LIMITED: _ClassVar[FrameErrorCode]
    PERMISSION_DENIED: _ClassVar[FrameErrorCode]
DELIVERY_MODE_UNSPECIFIED: DeliveryMode
LIVE: DeliveryMode
LOSSLESS: DeliveryMode
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
BGR8: PixelFormat
RGB8: PixelFormat
FRAME_ERROR_CODE_UNSPECIFIED: FrameErrorCode
UNDECODABLE: FrameErrorCode
INVALID_IMAGE: FrameErrorCode
IMAGE_TOO_LARGE: FrameErrorCode
INVALID_FRAME: FrameErrorCode
UNKNOWN_SOURCE: FrameErrorCode
OUT_OF_ORDER: FrameErrorCode
INTERNAL: FrameErrorCode
DROPPED: FrameErrorCode
RATE_LIMITED: FrameErrorCode
PERMISSION_DENIED: FrameErrorCode

class RawImage(_message.Message):
    __slots__ = ("width", "height", "pixel_format", "data")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PIXEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    pixel_format: PixelFormat
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., pixel_format: _Optional[_Union[PixelFormat, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Telemetry(_message.Message):
    __slots__ = ("lat", "lon", "altitude_agl_m", "aircraft_yaw_deg", "aircraft_pitch_deg", "aircraft_roll_deg", "gimbal_yaw_deg", "gimbal_pitch_deg", "gimbal_roll_deg", "hfov_deg")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    ALTITUDE_AGL_M_FIELD_NUMBER: _ClassVar[int]
    AIRCRAFT_YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    AIRCRAFT_PITCH_DEG_FIELD_NUMBER: _ClassVar[int]
    AIRCRAFT_ROLL_DEG_FIELD_NUMBER: _ClassVar[int]
    GIMBAL_YAW_DEG_FIELD_NUMBER: _ClassVar[int]
    GIMBAL_PITCH_DEG_FIELD_NUMBER: _ClassVar[int]
    GIMBAL_ROLL_DEG_FIELD_NUMBER: _ClassVar[int]
    HFOV_DEG_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lon: float
    altitude_agl_m: float
    aircraft_yaw_deg: float
    aircraft_pitch_deg: float
    aircraft_roll_deg: float
    gimbal_yaw_deg: float
    gimbal_pitch_deg: float
    gimbal_roll_deg: float
    hfov_deg: float
    def __init__(self, lat: _Optional[float] = ..., lon: _Optional[float] = ..., altitude_agl_m: _Optional[float] = ..., aircraft_yaw_deg: _Optional[float] = ..., aircraft_pitch_deg: _Optional[float] = ..., aircraft_roll_deg: _Optional[float] = ..., gimbal_yaw_deg: _Optional[float] = ..., gimbal_pitch_deg: _Optional[float] = ..., gimbal_roll_deg: _Optional[float] = ..., hfov_deg: _Optional[float] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("source_id", "seq", "capture_time", "encoded", "raw", "telemetry", "delivery_mode", "gap_before_s")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_MODE_FIELD_NUMBER: _ClassVar[int]
    GAP_BEFORE_S_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    seq: int
    capture_time: _timestamp_pb2.Timestamp
    encoded: bytes
    raw: RawImage
    telemetry: Telemetry
    delivery_mode: DeliveryMode
    gap_before_s: float
    def __init__(self, source_id: _Optional[str] = ..., seq: _Optional[int] = ..., capture_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ..., telemetry: _Optional[_Union[Telemetry, _Mapping]] = ..., delivery_mode: _Optional[_Union[DeliveryMode, str]] = ..., gap_before_s: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("class_id", "label", "confidence", "box", "track_id")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    label: str
    confidence: float
    box: Box
    track_id: int
    def __init__(self, class_id: _Optional[int] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., track_id: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: FrameErrorCode
    message: str
    def __init__(self, code: _Optional[_Union[FrameErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("decode_ms", "queued_ms", "inference_ms", "batch_size")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    queued_ms: float
    inference_ms: float
    batch_size: int
    def __init__(self, decode_ms: _Optional[float] = ..., queued_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class FrameResult(_message.Message):
    __slots__ = ("source_id", "seq", "detections", "model", "timings", "frames_dropped_total", "error", "image_width", "image_height")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    seq: int
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    model: ModelInfo
    timings: Timings
    frames_dropped_total: int
    error: FrameError
    image_width: int
    image_height: int
    def __init__(self, source_id: _Optional[str] = ..., seq: _Optional[int] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., frames_dropped_total: _Optional[int] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ...) -> None: ...

class VideoHeader(_message.Message):
    __slots__ = ("source_id", "start_time", "fps", "telemetry_offset_s")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    start_time: _timestamp_pb2.Timestamp
    fps: float
    telemetry_offset_s: float
    def __init__(self, source_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fps: _Optional[float] = ..., telemetry_offset_s: _Optional[float] = ...) -> None: ...

class VideoChunk(_message.Message):
    __slots__ = ("header", "srt", "video")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SRT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    header: VideoHeader
    srt: bytes
    video: bytes
    def __init__(self, header: _Optional[_Union[VideoHeader, _Mapping]] = ..., srt: _Optional[bytes] = ..., video: _Optional[bytes] = ...) -> None: ...

class TelemetryReport(_message.Message):
    __slots__ = ("cues", "gps_order", "warnings", "first_s", "last_s")
    CUES_FIELD_NUMBER: _ClassVar[int]
    GPS_ORDER_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    FIRST_S_FIELD_NUMBER: _ClassVar[int]
    LAST_S_FIELD_NUMBER: _ClassVar[int]
    cues: int
    gps_order: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    first_s: float
    last_s: float
    def __init__(self, cues: _Optional[int] = ..., gps_order: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., first_s: _Optional[float] = ..., last_s: _Optional[float] = ...) -> None: ...

class SubmitVideoResponse(_message.Message):
    __slots__ = ("telemetry", "frame")
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    telemetry: TelemetryReport
    frame: FrameResult
    def __init__(self, telemetry: _Optional[_Union[TelemetryReport, _Mapping]] = ..., frame: _Optional[_Union[FrameResult, _Mapping]] = ...) -> None: ...
