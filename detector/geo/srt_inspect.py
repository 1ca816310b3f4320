"""`detector srt inspect FILE...`: what the parser reads from a DJI .SRT, in one line or one JSON object per file.

Example::

    $ detector srt inspect DJI_0001.SRT
    DJI_0001.SRT: 381 cues, 0.000-381.000 s (1.0 Hz), GPS lat,lon (third value ...), 0 warnings
      first 36.6146,-6.1120 rel_alt 0.3 m ... last ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from detector.geo.errors import SrtParseError
from detector.geo.srt import SrtCue, read_srt

_POSE_FIELDS = ("lat", "lon", "rel_alt_m", "abs_alt_m", "gimbal_pitch_deg", "gimbal_yaw_deg", "aircraft_yaw_deg")


@dataclass
class SrtSummary:
    file: str
    cues: int = 0
    error: str = ""  # set when the file holds no usable telemetry
    first_s: float = 0.0
    last_s: float = 0.0
    rate_hz: float = 0.0
    gps_order: str = ""
    gps_order_reason: str = ""
    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    fields_present: list[str] = field(default_factory=list)
    clock_jumps: int = 0  # new recording segments; each is also a warning
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def text(self, max_warnings: int = 5) -> str:
        if self.error:
            return f"{self.file}: unusable: {self.error}"
        order = f"GPS {self.gps_order} ({self.gps_order_reason})" if self.gps_order else "no GPS(...) tuples"
        # Said in the first line so that it shows however many other warnings push it out of the list.
        jumps = f"{self.clock_jumps} drone clock jumps (new recording segments), " if self.clock_jumps else ""
        lines = [
            f"{self.file}: {self.cues} cues, {self.first_s:.3f}-{self.last_s:.3f} s ({self.rate_hz:.1f} Hz), "
            f"{order}, {jumps}{len(self.warnings)} warnings",
            f"  first {_values(self.first)}",
            f"  last  {_values(self.last)}",
            f"  fields: {', '.join(self.fields_present)}",
        ]
        lines += [f"  warning: {w}" for w in self.warnings[:max_warnings]]
        if len(self.warnings) > max_warnings:
            lines.append(f"  ... {len(self.warnings) - max_warnings} more warnings")
        return "\n".join(lines)


def _values(values: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.10g}" for k, v in values.items()) or "(no pose values)"


def _pose(cue: SrtCue) -> dict[str, float]:
    return {name: value for name in _POSE_FIELDS if (value := getattr(cue, name)) is not None}


def inspect_srt(path: Path) -> SrtSummary:
    """Parse one file; an unusable file gives a summary with ``error`` set rather than an exception."""
    summary = SrtSummary(file=str(path))
    try:
        parsed = read_srt(path)
    except SrtParseError as exc:
        summary.error = str(exc)
        return summary
    cues = parsed.cues
    summary.cues = len(cues)
    summary.first_s, summary.last_s = cues[0].start_s, cues[-1].start_s
    if len(cues) > 1 and summary.last_s > summary.first_s:
        summary.rate_hz = (len(cues) - 1) / (summary.last_s - summary.first_s)
    summary.gps_order = parsed.gps_order or ""
    summary.gps_order_reason = parsed.gps_order_reason
    summary.first, summary.last = _pose(cues[0]), _pose(cues[-1])
    names = [name for name in SrtCue.__dataclass_fields__ if name not in ("index", "start_s", "end_s")]
    summary.fields_present = [name for name in names if any(getattr(c, name) is not None for c in cues)]
    summary.clock_jumps = len(parsed.clock_jumps)
    summary.warnings = list(parsed.warnings)
    return summary
