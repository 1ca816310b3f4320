"""Read a video file (or a URL PyAV opens: rtsp://, http(s)://, file://) as (video time in seconds, BGR frame),
with PyAV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from detector.types import ImageArray


class VideoError(Exception):
    """The file is missing or is not a video PyAV can decode."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int  # 0 when the container does not say
    duration_s: float


def probe(path: Path | str) -> VideoInfo:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
            if not duration and container.duration:
                duration = container.duration / 1e6
            return VideoInfo(stream.codec_context.width, stream.codec_context.height, fps, stream.frames, duration)
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise VideoError(f"cannot open video {path}: {exc}") from exc


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def read_images(folder: Path, fps: float) -> Iterator[tuple[float, ImageArray]]:
    """A folder of images as a stream at ``fps`` (file names in sorted order); unreadable files are skipped."""
    import cv2

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VideoError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for i, file in enumerate(files):
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is not None:
            yield i / fps, np.asarray(image, dtype=np.uint8)


def read_frames(path: Path | str, every_s: float = 0.0) -> Iterator[tuple[float, ImageArray]]:
    """Yield (video_time_s, image); with ``every_s`` > 0, at most one frame per that many seconds of video."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"cannot open video {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_t = 0.0
        first_pts: float | None = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None or stream.time_base is None:
                    continue
                t = float(frame.pts * stream.time_base)
                first_pts = t if first_pts is None else first_pts
                t -= first_pts
                if every_s > 0 and t + 1e-6 < next_t:
                    continue
                next_t = t + every_s
                yield t, np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
        except av.FFmpegError as exc:
            raise VideoError(f"{path}: decoding failed: {exc}") from exc
