"""DJI .SRT telemetry subtitles: read every known DJI family into cues, write the modern family.

Example::

    parsed = read_srt(Path("DJI_0001.SRT"))
    for warning in parsed.warnings:
        log.warning(warning)
    first = parsed.cues[0]  # first.lat, first.rel_alt_m, first.gimbal_pitch_deg, ...
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Literal

from detector.geo.errors import SrtParseError
from detector.geo.srt_fields import RawCue, extract, number

GpsOrder = Literal["lonlat", "latlon"]

_TIMECODE = re.compile(
    r"(\d{1,3}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*-->\s*(\d{1,3}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})", re.ASCII
)
_MAX_LISTED = 10
# Older drone clocks tick in whole seconds, so between two cues the clock may move up to about 1 s more or less
# than the subtitle time (seen in the Mavic Pro sample); a difference beyond this is a jump, not rounding.
_CLOCK_JUMP_S = 2.0


@dataclass(frozen=True)
class SrtCue:
    """One cue. Every telemetry field is None when the file does not give it: nothing is guessed.

    Angles in degrees, yaw clockwise from north. ``rel_alt_m`` is above the take-off point (``rel_alt``,
    ``BAROMETER``, ``H``, ``Hb``); ``abs_alt_m`` is ``abs_alt``, ``altitude`` or the GPS altitude
    (``GPS(lat,lon,95.5M)``, never its ``0.0M`` placeholder), whose datum (ellipsoid or sea level) differs by
    model. ``focal_len_mm`` is the 35 mm equivalent DJI writes. ``local_time`` is the drone clock, usually local
    time without a zone.
    """

    index: int
    start_s: float
    end_s: float
    local_time: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    rel_alt_m: float | None = None
    abs_alt_m: float | None = None
    home_lat: float | None = None
    home_lon: float | None = None
    home_distance_m: float | None = None
    aircraft_yaw_deg: float | None = None
    aircraft_pitch_deg: float | None = None
    aircraft_roll_deg: float | None = None
    gimbal_yaw_deg: float | None = None
    gimbal_pitch_deg: float | None = None
    gimbal_roll_deg: float | None = None
    focal_len_mm: float | None = None
    fnum: float | None = None
    iso: int | None = None
    shutter_s: float | None = None
    ev: float | None = None
    satellites: int | None = None


_TELEMETRY = tuple(f.name for f in fields(SrtCue) if f.name not in ("index", "start_s", "end_s"))


@dataclass(frozen=True)
class ClockJump:
    """The drone clock moved ``clock_s`` while the subtitle (video) time moved ``video_s``: a new recording
    segment. Positions index the time-ordered cue list: ``last_before`` is the last cue with a clock before the
    jump, ``first_after`` the first after it; cues between them have no clock, so their side is unknown."""

    last_before: int
    first_after: int
    cue_before: int  # SRT numbers, for messages
    cue_after: int
    clock_s: float
    video_s: float

    @property
    def new_segment_positions(self) -> range:
        """Positions of the cues that must not be interpolated from the cue before them."""
        return range(self.last_before + 1, self.first_after + 1)

    def warning(self) -> str:
        return (
            f"drone clock jumps {self.clock_s:+.1f} s between cue {self.cue_before} and cue {self.cue_after} "
            f"while the video moves {self.video_s:.3f} s (a new recording segment?); "
            "telemetry is not interpolated across it"
        )


@dataclass(frozen=True)
class SrtParseResult:
    """The cues read, what went wrong on the way, how the ``GPS(a,b,c)`` order was decided, and where the
    drone clock jumps (found on the cues in time order)."""

    cues: list[SrtCue]
    warnings: list[str]
    gps_order: GpsOrder | None
    gps_order_reason: str
    clock_jumps: tuple[ClockJump, ...] = ()


@dataclass
class _Block:
    index: int
    start_s: float
    end_s: float
    line_no: int
    lines: list[str]


def _seconds(h: str, m: str, s: str, frac: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(frac) / 10.0 ** len(frac)


def _decode(data: str | bytes, warnings: list[str]) -> str:
    if isinstance(data, str):
        text = data
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            warnings.append("file is not valid UTF-8; undecodable bytes were replaced")
    return text.lstrip("\ufeff").replace("\x00", "")


def _blocks(text: str, warnings: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    preamble: list[str] = []
    for line_no, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        match = _TIMECODE.match(line.strip())
        if match is None:
            (blocks[-1].lines if blocks else preamble).append(line)
            continue
        before = blocks[-1].lines if blocks else preamble
        index_line = before.pop().strip() if before and before[-1].strip().isdecimal() else ""
        index = int(index_line) if index_line.isascii() and index_line else len(blocks) + 1
        g = match.groups()
        start_s, end_s = _seconds(*g[:4]), _seconds(*g[4:])
        if end_s < start_s:
            warnings.append(f"cue {index} (line {line_no}) ends before it starts; its end was set to its start")
            end_s = start_s
        blocks.append(_Block(index, start_s, end_s, line_no, []))
    if any(line.strip() for line in preamble):
        warnings.append("text before the first cue was ignored")
    return blocks


def _decide_gps_order(raws: Sequence[RawCue], requested: GpsOrder | None) -> tuple[GpsOrder | None, str]:
    """Which of ``GPS(a,b,c)`` is the longitude, decided once for the whole file.

    1. A value beyond +-90 can only be a longitude: whichever column holds such values (in GPS or HOME)
       is the longitude column, by majority over all cues.
    2. Both columns look like latitudes (e.g. Buenos Aires, -58/-34): decide by family. Matrice models
       write ``GPS(lat,lon,altM)`` (third value with unit M, no HOME); the consumer families write
       ``GPS(lon,lat,satellites)`` (bare integer) and a ``HOME(lon,lat)``.
    3. Nothing tells: assume lon,lat (the older, commoner form) and say so.
    """
    pairs = [r.gps for r in raws if r.gps is not None] + [r.home for r in raws if r.home is not None]
    if not pairs:
        return None, "no GPS(...) values"
    if requested is not None:
        return requested, "given by the caller"
    first_is_lon = sum(abs(a) > 90.0 >= abs(b) for a, b in pairs)
    second_is_lon = sum(abs(b) > 90.0 >= abs(a) for a, b in pairs)
    if first_is_lon or second_is_lon:
        order: GpsOrder = "lonlat" if first_is_lon >= second_is_lon else "latlon"
        mixed = " (mixed: the minority was read the same way)" if first_is_lon and second_is_lon else ""
        return order, f"values beyond +-90 in the {'first' if order == 'lonlat' else 'second'} column{mixed}"
    thirds = [r.gps_third for r in raws if r.gps_third]
    with_unit = sum(t.upper().endswith("M") for t in thirds)
    satellites = sum(t.isdecimal() for t in thirds)
    has_home = any(r.home is not None for r in raws)
    if with_unit > satellites and not has_home:
        return "latlon", "third value has the unit M of an altitude (Matrice family)"
    if satellites or has_home:
        return "lonlat", "third value is a satellite count or HOME(...) is present (consumer family)"
    return "lonlat", "ambiguous; assumed lon,lat"


def _gps_altitude(third: str) -> float | None:
    """The altitude in a ``GPS(lat,lon,95.5M)`` third value; None for anything else, and for ``0.0M``.

    ``0.0M`` is a placeholder, not a reading: the Matrice 300 sample writes it in all 381 cues while its
    BAROMETER moves between -0.1 and 87.9 m. Decided per cue rather than per file: a measured GPS altitude is
    noisy at 0.1 m resolution, so an exact zero is not a measurement wherever it appears, while a file-wide
    test ("zero throughout while the barometer moves") would keep the zeros of a file that writes them only in
    some cues, and those of a short hover whose barometer holds still. The cost is that a true reading of
    exactly 0.0 m becomes None (unknown), never a wrong number; the barometer stays the height either way.
    """
    if not third.upper().endswith("M"):
        return None
    altitude = number(third[:-1])
    return None if altitude is None or altitude == 0.0 else altitude


def _position(raw: RawCue, order: GpsOrder | None) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    swap = order == "latlon"
    if raw.gps is not None and "lat" not in raw.values and "lon" not in raw.values:
        a, b = raw.gps
        out["lon"], out["lat"] = (b, a) if swap else (a, b)
        third = raw.gps_third or ""
        if (altitude := _gps_altitude(third)) is not None:
            out["abs_alt_m"] = altitude
        elif third.isdecimal() and third.isascii():
            out["satellites"] = int(third)
    if raw.home is not None:
        a, b = raw.home
        out["home_lon"], out["home_lat"] = (b, a) if swap else (a, b)
    return out


def _checked(block: _Block, raw: RawCue, order: GpsOrder | None, warnings: list[str]) -> SrtCue | None:
    values: dict[str, float | int] = {**raw.values, **_position(raw, order)}
    for prefix in ("", "home_"):
        lat, lon = values.get(f"{prefix}lat"), values.get(f"{prefix}lon")
        if lat is None and lon is None:
            continue
        if lat is None or lon is None:
            reason = "has a latitude or a longitude without the other"
        elif lat == 0.0 and lon == 0.0:
            reason = "is 0,0 (no GPS fix)"
        elif not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            reason = f"({lat}, {lon}) is out of range"
        else:
            continue
        warnings.append(f"cue {block.index}: {prefix or 'aircraft '}position {reason}; dropped")
        values.pop(f"{prefix}lat", None)
        values.pop(f"{prefix}lon", None)
    if "iso" in values:
        values["iso"] = round(values["iso"])
    for problem in raw.problems:
        warnings.append(f"cue {block.index} (line {block.line_no}): {problem}")
    if not values and raw.local_time is None:
        return None
    return SrtCue(block.index, block.start_s, block.end_s, raw.local_time, **values)  # type: ignore[arg-type]


def _missing_warnings(cues: Sequence[SrtCue]) -> list[str]:
    """Cues that lack fields nearly every other cue has: the signature of a truncated or damaged file."""
    if len(cues) < 3:
        return []
    common = [n for n in _TELEMETRY if sum(getattr(c, n) is not None for c in cues) >= 0.9 * len(cues)]
    damaged = [(c.index, [n for n in common if getattr(c, n) is None]) for c in cues]
    damaged = [(index, names) for index, names in damaged if names]
    out = [f"cue {index} lacks {', '.join(names)} (truncated or damaged?)" for index, names in damaged]
    if len(out) > _MAX_LISTED:
        out = [*out[:_MAX_LISTED], f"... and {len(out) - _MAX_LISTED} more cues lack fields"]
    return out


def find_clock_jumps(cues: Sequence[SrtCue]) -> list[ClockJump]:
    """Where the drone clock (``local_time``) moves more than ``_CLOCK_JUMP_S`` away from the subtitle time
    between consecutive cues with a clock, ``cues`` in time order. A jump forward or back is a new recording
    segment (or a reset clock): the two sides are separate recordings and must never be blended.

    >>> a = SrtCue(1, 10.0, 10.033, datetime(2023, 2, 14, 11, 5, 22))
    >>> b = SrtCue(2, 10.033, 10.067, datetime(2023, 2, 14, 11, 6, 3))
    >>> [(j.cue_before, j.cue_after, j.clock_s) for j in find_clock_jumps([a, b])]
    [(1, 2, 41.0)]
    """
    timed = [(position, cue, cue.local_time) for position, cue in enumerate(cues) if cue.local_time is not None]
    jumps = []
    for (i, a, a_time), (j, b, b_time) in itertools.pairwise(timed):
        clock_s, video_s = (b_time - a_time).total_seconds(), b.start_s - a.start_s
        if abs(clock_s - video_s) > _CLOCK_JUMP_S:
            jumps.append(ClockJump(i, j, a.index, b.index, clock_s, video_s))
    return jumps


def parse_srt(data: str | bytes, *, gps_order: GpsOrder | None = None) -> SrtParseResult:
    """Parse DJI .SRT text or bytes. ``gps_order`` overrides the lon/lat decision for ``GPS(a,b,c)``.

    Returns the usable cues plus warnings; raises ``SrtParseError`` when nothing usable is found.
    """
    warnings: list[str] = []
    blocks = _blocks(_decode(data, warnings), warnings)
    if not blocks:
        raise SrtParseError("no subtitle cues found (no 'HH:MM:SS,mmm --> HH:MM:SS,mmm' line); is this an .SRT?")
    raws = [extract(block.lines) for block in blocks]
    order, reason = _decide_gps_order(raws, gps_order)
    cues: list[SrtCue] = []
    for block, raw in zip(blocks, raws, strict=True):
        cue = _checked(block, raw, order, warnings)
        if cue is None:
            warnings.append(f"cue {block.index} (line {block.line_no}) holds no telemetry; skipped")
        else:
            cues.append(cue)
    if not any(any(getattr(c, n) is not None for n in _TELEMETRY if n != "local_time") for c in cues):
        raise SrtParseError(
            f"{len(blocks)} cues found but none carries telemetry (position, altitude, attitude or camera "
            "settings); is this a DJI telemetry .SRT?"
        )
    backwards = [b.index for a, b in itertools.pairwise(cues) if b.start_s < a.start_s]
    if backwards:
        warnings.append(f"cue times go backwards at cue(s) {backwards[:_MAX_LISTED]}")
    jumps = find_clock_jumps(sorted(cues, key=lambda c: c.start_s))
    warnings.extend(jump.warning() for jump in jumps[:_MAX_LISTED])
    if len(jumps) > _MAX_LISTED:
        warnings.append(f"... and {len(jumps) - _MAX_LISTED} more drone clock jumps")
    warnings.extend(_missing_warnings(cues))
    return SrtParseResult(cues, warnings, order, reason, tuple(jumps))


def read_srt(path: Path | str, *, gps_order: GpsOrder | None = None) -> SrtParseResult:
    """``parse_srt`` on a file; an unreadable file raises ``SrtParseError``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SrtParseError(f"cannot read SRT file {path}: {exc.strerror}") from exc
    return parse_srt(data, gps_order=gps_order)


def _timecode(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _fields_line(cue: SrtCue) -> str:
    def group(*pairs: tuple[str, float | int | str | None]) -> str:
        present = [f"{key}: {value}" for key, value in pairs if value is not None]
        return f"[{' '.join(present)}] " if present else ""

    def fmt(value: float | None, digits: int) -> str | None:
        return None if value is None else f"{value:.{digits}f}"

    shutter = None if cue.shutter_s is None else f"1/{1.0 / cue.shutter_s:.1f}"
    return (
        group(("iso", cue.iso))
        + group(("shutter", shutter))
        + group(("fnum", None if cue.fnum is None else f"{cue.fnum:g}"))
        + group(("ev", None if cue.ev is None else f"{cue.ev:g}"))
        + group(("focal_len", fmt(cue.focal_len_mm, 2)))
        + group(("latitude", fmt(cue.lat, 7)))
        + group(("longitude", fmt(cue.lon, 7)))
        + group(("rel_alt", fmt(cue.rel_alt_m, 3)), ("abs_alt", fmt(cue.abs_alt_m, 3)))
        + group(
            ("drone_yaw", fmt(cue.aircraft_yaw_deg, 3)),
            ("drone_pitch", fmt(cue.aircraft_pitch_deg, 3)),
            ("drone_roll", fmt(cue.aircraft_roll_deg, 3)),
        )
        + group(
            ("gb_yaw", fmt(cue.gimbal_yaw_deg, 3)),
            ("gb_pitch", fmt(cue.gimbal_pitch_deg, 3)),
            ("gb_roll", fmt(cue.gimbal_roll_deg, 3)),
        )
    )


def format_srt(cues: Iterable[SrtCue]) -> str:
    """DJI Mini/Mavic 3 style text (``[latitude: ..] [gb_pitch: ..]``); home, satellites and distance are
    not written. ``parse_srt`` reads it back."""
    out: list[str] = []
    for n, cue in enumerate(cues, start=1):
        diff_ms = round((cue.end_s - cue.start_s) * 1000)
        lines = [str(n), f"{_timecode(cue.start_s)} --> {_timecode(cue.end_s)}"]
        lines.append(f'<font size="28">FrameCnt: {n}, DiffTime: {diff_ms}ms')
        if cue.local_time is not None:
            lines.append(cue.local_time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
        lines.append(f"{_fields_line(cue)}</font>")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def write_srt(cues: Iterable[SrtCue], path: Path | str) -> None:
    """Write cues as a DJI-style .SRT file (see ``format_srt``)."""
    Path(path).write_text(format_srt(cues), encoding="utf-8")
