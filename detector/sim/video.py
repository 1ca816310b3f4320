"""MP4 (H.264) output with PyAV, one frame per rendered frame at the scenario's frame rate."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av

from detector.types import ImageArray


class Mp4Writer:
    """Writes BGR frames; frame ``i`` is shown at ``i / fps`` seconds. Use as a context manager."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 23) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"H.264 (yuv420p) needs an even frame size, got {width}x{height}")
        rate = Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = 1 / rate
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._count = 0

    def write(self, image: ImageArray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._count
        self._count += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
