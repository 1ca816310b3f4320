"""Telemetry synced to video frames by video time, interpolated between SRT cues.

Each cue's values are taken to hold at its start time (DJI writes one cue per frame, or one per second
on older models). Between two cues every field is interpolated linearly, angles along the shorter way
round the circle; a field missing on either side stays None rather than being bridged over a gap.

Two cues on either side of a drone clock jump (a new recording segment, see ``find_clock_jumps``) are never
blended: a frame between them takes the cue before it, the one the subtitle shows at that time, even when the
cue after is nearer, since nothing else tells which recording such a frame belongs to. Across a long gap the
cue before holds only within ``tolerance_s``, and a frame further on gets None.

Example::

    track = TelemetryTrack.from_srt(read_srt("DJI_0001.SRT").cues)
    telemetry = track.at(frame_index / fps)  # detector.types.Telemetry, or None off the recording
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields

import numpy as np
import numpy.typing as npt

from detector.geo.srt import SrtCue, find_clock_jumps
from detector.types import Telemetry

Float64Array = npt.NDArray[np.float64]

_ANGULAR = ("aircraft_yaw_deg", "gimbal_yaw_deg", "aircraft_roll_deg", "gimbal_roll_deg")


class TelemetryTrack:
    """Telemetry samples over video time; ``at(t)`` gives the pose at any frame time."""

    def __init__(
        self,
        times_s: Sequence[float],
        samples: Sequence[Telemetry],
        *,
        end_s: float | None = None,
        tolerance_s: float = 0.5,
        max_gap_s: float = 2.5,
        segment_starts: Sequence[int] = (),
    ) -> None:
        """``times_s`` must not decrease. ``end_s`` is when the last sample stops holding (its cue end);
        outside ``[times_s[0], end_s]``, or inside a gap of more than ``max_gap_s`` between samples, the
        nearest sample is used up to ``tolerance_s`` away, else the answer is None. ``segment_starts`` are
        the positions of samples that begin a new recording: between such a sample and the one before it,
        a time takes the sample before (within ``tolerance_s`` of it when the gap is long), never a blend."""
        if len(times_s) != len(samples) or not samples:
            raise ValueError("telemetry track needs one time per sample and at least one sample")
        times = np.asarray(times_s, np.float64)
        if np.any(np.diff(times) < 0.0) or not np.all(np.isfinite(times)):
            raise ValueError("telemetry sample times must be finite and must not decrease")
        self._times = times
        self._end_s = float(times[-1]) if end_s is None else max(float(times[-1]), end_s)
        self._tolerance_s = tolerance_s
        self._max_gap_s = max_gap_s
        self._starts_segment = np.zeros(len(times), bool)
        for position in segment_starts:
            if not 0 <= position < len(times):
                raise ValueError(f"segment start {position} is not a sample position (0..{len(times) - 1})")
            self._starts_segment[position] = True
        names = [f.name for f in fields(Telemetry)]
        self._columns = {n: np.array([_or_nan(getattr(s, n)) for s in samples], np.float64) for n in names}

    @classmethod
    def from_srt(
        cls,
        cues: Sequence[SrtCue],
        *,
        tolerance_s: float = 0.5,
        max_gap_s: float = 2.5,
        time_offset_s: float = 0.0,
        ground_abs_alt_m: float | None = None,
    ) -> TelemetryTrack:
        """A track from parsed cues. Height above ground is ``rel_alt_m`` (above the take-off point, so
        flat terrain is assumed); without it, ``abs_alt_m - ground_abs_alt_m`` when the caller knows the
        ground's altitude in the file's datum. ``time_offset_s`` is added to cue times to reach video time.
        Where the drone clock jumps between cues, the track is split there (see ``find_clock_jumps``)."""
        ordered = sorted(cues, key=lambda c: c.start_s)
        samples = [_telemetry(c, ground_abs_alt_m) for c in ordered]
        times = [c.start_s + time_offset_s for c in ordered]
        end = max((c.end_s for c in ordered), default=0.0) + time_offset_s
        starts = [position for jump in find_clock_jumps(ordered) for position in jump.new_segment_positions]
        return cls(times, samples, end_s=end, tolerance_s=tolerance_s, max_gap_s=max_gap_s, segment_starts=starts)

    @property
    def span_s(self) -> tuple[float, float]:
        return float(self._times[0]), self._end_s

    def at(self, video_ts: float) -> Telemetry | None:
        """Interpolated telemetry at ``video_ts`` seconds; None outside the track (beyond the tolerance)."""
        first, last = self.span_s
        inside = first - self._tolerance_s <= video_ts <= last + self._tolerance_s
        if not (math.isfinite(video_ts) and inside):
            return None
        t = min(max(video_ts, first), float(self._times[-1]))
        right = int(np.searchsorted(self._times, t, side="right"))
        left = max(right - 1, 0)
        right = min(right, len(self._times) - 1)
        t0, t1 = float(self._times[left]), float(self._times[right])
        weight = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        if right > left and self._starts_segment[right]:
            # Two recordings: the cue before holds (the subtitle shows it until the next one starts).
            if t1 - t0 > self._max_gap_s and t - t0 > self._tolerance_s:
                return None
            weight = 0.0
        elif t1 - t0 > self._max_gap_s:
            if min(t - t0, t1 - t) > self._tolerance_s:
                return None
            weight = round(weight)
        values: dict[str, float | None] = {}
        for name, column in self._columns.items():
            a, b = float(column[left]), float(column[right])
            if weight == 0.0 or weight == 1.0:
                value = a if weight == 0.0 else b
            elif name in _ANGULAR:
                value = a + weight * ((b - a + 180.0) % 360.0 - 180.0)
                value = (value + 180.0) % 360.0 - 180.0
            else:
                value = a + weight * (b - a)
            values[name] = None if math.isnan(value) else value
        return Telemetry(**values)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _telemetry(cue: SrtCue, ground_abs_alt_m: float | None) -> Telemetry:
    height = cue.rel_alt_m
    if height is None and cue.abs_alt_m is not None and ground_abs_alt_m is not None:
        height = cue.abs_alt_m - ground_abs_alt_m
    return Telemetry(
        lat=cue.lat,
        lon=cue.lon,
        altitude_agl_m=height,
        aircraft_yaw_deg=cue.aircraft_yaw_deg,
        aircraft_pitch_deg=cue.aircraft_pitch_deg,
        aircraft_roll_deg=cue.aircraft_roll_deg,
        gimbal_yaw_deg=cue.gimbal_yaw_deg,
        gimbal_pitch_deg=cue.gimbal_pitch_deg,
        gimbal_roll_deg=cue.gimbal_roll_deg,
    )
