"""Field extraction from the text of one DJI .SRT cue, for every known DJI layout.

The layouts seen in the wild (one cue shown for each):

- Phantom 3/4, Mavic Pro, Inspire 1: ``HOME(lon,lat) 2017.08.05 14:11:51`` /
  ``GPS(lon,lat,satellites) BAROMETER:1.9`` / ``ISO:100 Shutter:60 EV: Fnum:2.2``
- Early Phantom 3 / Inspire 1 firmware: ``GPS(lon,lat,satellites) Hb:1.9 Hs:1.9`` /
  ``ISO:100 TV:60 EV: 0 IR:F2.8`` (``Hb`` barometric height, ``TV`` shutter denominator, ``IR`` aperture)
- Matrice 200/300: ``2022.06.21 16:06:17`` / ``GPS(lat,lon,altM) BAROMETER:0.3M``
- Mavic Mini, Phantom 4 (RTK): ``F/2.8, SS 206.14, ISO 150, EV 0, GPS (lon, lat, satellites), D 2.80m,
  H 0.00m, H.S 0.00m/s, V.S 0.00m/s, F.PRY (pitch°, roll°, yaw°), G.PRY (pitch°, roll°, yaw°)``
- Mavic 2, Air 2S, Phantom 4 Pro: ``[fnum : 280] [focal_len : 240] [latitude: x] [longtitude: y]
  [altitude: z]`` with fnum x100 and focal_len x10
- Mini 2-5, Air 2/3, Mavic 3, Neo, enterprise models: ``[fnum: 2.8] [focal_len: 24.00] [latitude: x]
  [longitude: y] [rel_alt: a abs_alt: b] [drone_yaw: .. drone_pitch: .. drone_roll: ..]
  [gb_yaw: .. gb_pitch: .. gb_roll: ..]``
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_START = r"(?<![A-Za-z0-9_.])"
_TAG = re.compile(r"<[^<>]*>")
_KEY_VALUE = re.compile(rf"{_START}([A-Za-z_]+)\s*:\s*F?({_NUM}(?:/{_NUM})?)", re.ASCII)
_TUPLE = re.compile(rf"{_START}(GPS|HOME|RTK|F\.PRY|G\.PRY)\s*\(([^()]*)\)", re.ASCII | re.IGNORECASE)
_PLAIN = {
    # ``F/2.8`` (Mavic Mini, P4 RTK) or ``IR:F2.8`` (early Phantom 3 / Inspire 1); IR is read only with its F,
    # so a bare ``IR:`` number, whose meaning we have not seen documented, never becomes an aperture.
    "fnum": re.compile(rf"{_START}(?:F/|IR\s*:\s*F)({_NUM})", re.ASCII),
    "shutter": re.compile(rf"{_START}SS\s+({_NUM}(?:/{_NUM})?)", re.ASCII),
    "iso": re.compile(rf"{_START}ISO\s+(\d+)", re.ASCII),
    "ev": re.compile(rf"{_START}EV\s+({_NUM}(?:/{_NUM})?)", re.ASCII),
    "h": re.compile(rf"{_START}H\s+({_NUM})\s*m(?![/A-Za-z])", re.ASCII),
    "d": re.compile(rf"{_START}D\s+({_NUM})\s*m(?![/A-Za-z])", re.ASCII),
}
_DATE = re.compile(
    r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})[ T]+(\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d{1,3}))?(?:[.,](\d{1,3}))?",
    re.ASCII,
)
# DJI key (lower case) -> our name; when a cue names one field twice, the first value in the text wins.
_KEYS = {
    "latitude": "lat",
    "longitude": "lon",
    "longtitude": "lon",
    "rel_alt": "rel_alt_m",
    "barometer": "rel_alt_m",
    # Early Phantom 3 / Inspire 1: ``Hb`` is the barometric height above the take-off point, the same quantity
    # as BAROMETER. ``Hs`` beside it is deliberately not read: it is most likely the ultrasonic (vision
    # positioning) height above whatever is straight below, which these aircraft measure only within a few
    # metres of the ground (the two agree near take-off, ``Hb:1.9 Hs:1.9``). It is not a height above take-off,
    # so it is never used as one, nor as a fallback for a missing ``Hb``: that would invent a height.
    "hb": "rel_alt_m",
    "abs_alt": "abs_alt_m",
    "altitude": "abs_alt_m",
    "gb_yaw": "gimbal_yaw_deg",
    "gb_pitch": "gimbal_pitch_deg",
    "gb_roll": "gimbal_roll_deg",
    "drone_yaw": "aircraft_yaw_deg",
    "drone_pitch": "aircraft_pitch_deg",
    "drone_roll": "aircraft_roll_deg",
    "iso": "iso",
    "ev": "ev",
    "fnum": "fnum",
    "focal_len": "focal_len_mm",
    "shutter": "shutter_s",
    "tv": "shutter_s",  # early Phantom 3 / Inspire 1: TV:60 is 1/60 s
}
_PRY_NAMES = {
    "F.PRY": ("aircraft_pitch_deg", "aircraft_roll_deg", "aircraft_yaw_deg"),
    "G.PRY": ("gimbal_pitch_deg", "gimbal_roll_deg", "gimbal_yaw_deg"),
}


@dataclass
class RawCue:
    """What one cue's text says, before the file-level decisions (GPS order)."""

    values: dict[str, float] = field(default_factory=dict)
    gps: tuple[float, float] | None = None  # as written, order not yet known
    gps_third: str | None = None  # altitude with unit "M" on Matrice, satellite count elsewhere
    home: tuple[float, float] | None = None
    local_time: datetime | None = None
    problems: list[str] = field(default_factory=list)


def number(token: str) -> float | None:
    """A finite float from ``12.5`` or ``-1/3``; None for anything else."""
    try:
        if "/" in token:
            num, den = token.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(token)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _scaled(name: str, token: str, value: float) -> float | None:
    """Undo the integer scaling of older models and turn shutter denominators into seconds."""
    if name == "fnum" and value >= 30.0:  # no DJI lens closes to f/30; 280 means f/2.8
        return value / 100.0
    if name == "focal_len_mm" and value >= 100.0 and "." not in token:  # 240 means 24.0 mm
        return value / 10.0
    if name == "shutter_s":
        denominator = number(token.split("/", 1)[1]) if "/" in token else value
        return 1.0 / denominator if denominator is not None and denominator > 0.0 else None
    return value


def _set(raw: RawCue, name: str, token: str) -> None:
    value = number(token)
    if value is None:
        raw.problems.append(f"unreadable {name} value {token!r}")
        return
    scaled = _scaled(name, token, value)
    if scaled is not None:
        raw.values.setdefault(name, scaled)


def _tuple(raw: RawCue, kind: str, body: str) -> None:
    parts = body.split(",")
    values = [number(match.group(0)) for part in parts if (match := re.search(_NUM, part, re.ASCII))]
    if len(values) < 2 or None in values[:3]:
        raw.problems.append(f"unreadable {kind}({body})")
        return
    floats = [v for v in values if v is not None]
    if kind in _PRY_NAMES and len(floats) >= 3:
        for name, value in zip(_PRY_NAMES[kind], floats, strict=False):
            raw.values.setdefault(name, value)
    elif kind == "HOME":
        raw.home = (floats[0], floats[1])
    elif kind in ("GPS", "RTK") and (raw.gps is None or kind == "RTK"):
        raw.gps = (floats[0], floats[1])
        raw.gps_third = parts[2].strip() if len(parts) > 2 else None


def _date(raw: RawCue, text: str) -> None:
    match = _DATE.search(text)
    if match is None:
        return
    y, mo, d, h, mi, s = (int(g) for g in match.groups()[:6])
    ms, us = match.group(7), match.group(8)
    micro = (int(ms.ljust(3, "0")) * 1000 if ms else 0) + (int(us.ljust(3, "0")) if us else 0)
    try:
        raw.local_time = datetime(y, mo, d, h, mi, s, micro)
    except ValueError:
        raw.problems.append(f"impossible date {match.group(0)!r}")


def extract(lines: list[str]) -> RawCue:
    """Every value the text of one cue holds, by our field names (see ``SrtCue``)."""
    text = _TAG.sub(" ", "\n".join(lines))
    raw = RawCue()
    for match in _TUPLE.finditer(text):
        _tuple(raw, match.group(1).upper(), match.group(2))
    for match in _KEY_VALUE.finditer(text):
        name = _KEYS.get(match.group(1).lower())
        if name is not None:
            _set(raw, name, match.group(2))
    for key, pattern in _PLAIN.items():
        plain = pattern.search(text)
        if plain is not None:
            name = {"h": "rel_alt_m", "d": "home_distance_m"}.get(key, _KEYS.get(key, key))
            _set(raw, name, plain.group(1))
    _date(raw, text)
    return raw
