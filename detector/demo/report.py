"""The demo's HTML report: a map of incidents against ground truth, evidence, timelines and the scores.

Everything is inline (SVG and base64 JPEG thumbnails), so the file opens anywhere with no network: no map tiles
can be fetched, so the map is the simulated street drawn from its layout.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from detector.geo.enu import LocalTangentPlane
from detector.sim.truth import Truth
from detector.sim.world import Street
from detector.types import EventType, EvidenceKind, GeoPoint, IncidentEvent

CLASS_COLOURS = {
    "stall": "#d62728",
    "cart": "#ff7f0e",
    "goods": "#bcbd22",
    "garbage": "#8c564b",
    "garbage_bin": "#7f7f7f",
    "overflow": "#9467bd",
    "pothole": "#17becf",
}
MAP_PX = 900.0


@dataclass
class ScenarioReport:
    """One scenario's share of the report: the events the case system received for its source, and the evidence
    photos fetched for them (by sha256)."""

    name: str
    truth: Truth
    street: Street
    events: list[IncidentEvent]
    evidence: dict[str, bytes]
    matches: dict[str, int] = field(default_factory=dict)  # incident_id -> truth object id
    score_table: str = ""


def incidents_of(events: list[IncidentEvent]) -> dict[str, list[IncidentEvent]]:
    out: dict[str, list[IncidentEvent]] = {}
    for event in events:
        out.setdefault(event.incident_id, []).append(event)
    return out


def last_location(events: list[IncidentEvent]) -> GeoPoint | None:
    """The latest location an incident's events reported."""
    return next((e.location for e in reversed(events) if e.location is not None), None)


def thumbnail(jpeg: bytes, width: int = 320) -> str:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return ""
    scale = width / image.shape[1]
    small = cv2.resize(image, (width, max(1, int(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


class _MapFrame:
    """ENU metres -> SVG pixels, north up, fitted around the street and everything on it."""

    def __init__(self, points: np.ndarray, margin_m: float = 15.0) -> None:
        lo, hi = points.min(axis=0) - margin_m, points.max(axis=0) + margin_m
        self.lo, self.span = lo, np.maximum(hi - lo, 1.0)
        self.scale = MAP_PX / float(self.span.max())
        self.width, self.height = self.span * self.scale

    def xy(self, east: float, north: float) -> tuple[float, float]:
        return float((east - self.lo[0]) * self.scale), float((self.lo[1] + self.span[1] - north) * self.scale)


def _polygon(frame: _MapFrame, corners: np.ndarray, fill: str) -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (frame.xy(e, n) for e, n in corners))
    return f'<polygon points="{pts}" fill="{fill}" stroke="none"/>'


def _strip(street: Street, d0: float, d1: float) -> np.ndarray:
    return street.to_enu([0, street.length_m, street.length_m, 0], [d0, d0, d1, d1])


def map_svg(report: ScenarioReport) -> str:
    truth, street = report.truth, report.street
    plane = LocalTangentPlane(truth.anchor_lat, truth.anchor_lon)
    located = []
    for incident_id, events in incidents_of(report.events).items():
        loc = last_location(events)
        if loc is not None:
            east_arr, north_arr = plane.to_enu(loc.lat, loc.lon)
            position = float(np.ravel(east_arr)[0]), float(np.ravel(north_arr)[0])
            located.append((incident_id, *position, loc.accuracy_m, events[0]))
    right, left = street.kerbs
    b_right, b_left = street.building_lines
    corners = np.vstack([_strip(street, b_right, b_left)] + [np.array([[o.east_m, o.north_m]]) for o in truth.objects])
    frame = _MapFrame(corners)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{frame.width:.0f}" height="{frame.height:.0f}" '
        f'viewBox="0 0 {frame.width:.0f} {frame.height:.0f}" class="map">',
        '<rect width="100%" height="100%" fill="#e8e4d8"/>',
        _polygon(frame, _strip(street, b_right, right), "#d9d4c7"),
        _polygon(frame, _strip(street, left, b_left), "#d9d4c7"),
        _polygon(frame, _strip(street, right, left), "#6b6b6b"),
    ]
    by_id = {o.id: o for o in truth.objects}
    for incident_id, east, north, _, _ in located:
        target = report.matches.get(incident_id)
        if target in by_id:
            x1, y1 = frame.xy(east, north)
            x2, y2 = frame.xy(by_id[target].east_m, by_id[target].north_m)
            parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#000" '
                         'stroke-dasharray="3,2"/>')  # fmt: skip
    for o in truth.objects:
        x, y = frame.xy(o.east_m, o.north_m)
        colour = CLASS_COLOURS.get(o.cls, "#333")
        parts.append(
            f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{colour}" stroke="#fff">'
            f"<title>truth #{o.id} {html.escape(o.cls)} {o.appear_s}–{o.leave_s} s</title></rect>"
        )
    for incident_id, east, north, accuracy, first in located:
        x, y = frame.xy(east, north)
        radius = max(3.0, accuracy * frame.scale)
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="none" stroke="#0050ff" stroke-width="2">'
            f"<title>incident {incident_id[:8]} {html.escape(first.category)} ±{accuracy:.1f} m</title></circle>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#0050ff"/>'
        )
    scale_m = 10 ** math.floor(math.log10(max(frame.span.max() / 5, 1)))
    parts.append(
        f'<line x1="10" y1="{frame.height - 12:.0f}" x2="{10 + scale_m * frame.scale:.1f}" '
        f'y2="{frame.height - 12:.0f}" stroke="#000" stroke-width="3"/>'
        f'<text x="10" y="{frame.height - 18:.0f}" font-size="12">{scale_m:.0f} m</text>'
        f'<text x="{frame.width - 20:.0f}" y="20" font-size="14">N↑</text></svg>'
    )
    return "".join(parts)


def timeline_svg(report: ScenarioReport) -> str:
    """A row per incident: the matched object's presence (grey) and the incident's open span (coloured)."""
    truth = report.truth
    incidents = incidents_of(report.events)
    width, row, left = 900.0, 22, 150
    scale = (width - left - 10) / max(truth.duration_s, 1.0)
    height = row * (len(incidents) + 1) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" class="timeline">']
    for tick in range(0, int(truth.duration_s) + 1, 60):
        x = left + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#ddd"/>'
                     f'<text x="{x + 2:.1f}" y="{height - 2}" font-size="10">{tick // 60} min</text>')  # fmt: skip
    by_id = {o.id: o for o in truth.objects}
    for i, (incident_id, events) in enumerate(incidents.items()):
        y = i * row + 4
        label = f"{incident_id[:8]} {events[0].category[:14]}"
        parts.append(f'<text x="0" y="{y + 13}" font-size="11">{html.escape(label)}</text>')
        target = by_id.get(report.matches.get(incident_id, -1))
        if target is not None:
            a = target.appear_s or 0.0
            b = target.leave_s if target.leave_s is not None else truth.duration_s
            parts.append(f'<rect x="{left + a * scale:.1f}" y="{y}" width="{max(1.0, (b - a) * scale):.1f}" '
                         'height="6" fill="#aaa"><title>object present</title></rect>')  # fmt: skip
        opened = events[0].first_seen_ts - truth.start_ts
        opened_at = events[0].last_seen_ts - truth.start_ts
        cleared = next((e.last_seen_ts - truth.start_ts for e in events if e.type is EventType.CLEARED), None)
        end = cleared if cleared is not None else truth.duration_s
        colour = CLASS_COLOURS.get(_class_of(events[0].category), "#0050ff")
        parts.append(
            f'<rect x="{left + opened * scale:.1f}" y="{y + 7}" width="{max(1.0, (end - opened) * scale):.1f}" '
            f'height="9" fill="{colour}" opacity="0.4"><title>first seen</title></rect>'
            f'<rect x="{left + opened_at * scale:.1f}" y="{y + 7}" width="{max(1.0, (end - opened_at) * scale):.1f}"'
            f' height="9" fill="{colour}"><title>open</title></rect>'
        )
        for e in events:
            x = left + (e.last_seen_ts - truth.start_ts) * scale
            parts.append(f'<circle cx="{x:.1f}" cy="{y + 11}" r="2" fill="#000"><title>{e.type.value}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _class_of(category: str) -> str:
    return {"ROAD_OCCUPYING_STALL": "stall", "OUTSIDE_SHOP_TRADING": "goods", "EXPOSED_GARBAGE": "garbage",
            "OVERFLOWING_BIN": "overflow", "ROAD_DAMAGE": "pothole"}.get(category, "")  # fmt: skip


def incident_rows(report: ScenarioReport) -> str:
    rows = []
    start_ts = report.truth.start_ts
    for incident_id, events in incidents_of(report.events).items():
        first, last = events[0], events[-1]
        cleared = next((e for e in events if e.type is EventType.CLEARED), None)
        loc = last_location(events)
        where = "—"
        if loc is not None:
            where = f"{loc.lat:.6f}, {loc.lon:.6f} ±{loc.accuracy_m:.1f} m ({loc.method.value})"
        photos = [ev.sha256 for e in events for ev in e.evidence if ev.kind is EvidenceKind.FRAME_JPEG]
        img = thumbnail(report.evidence[photos[0]]) if photos and photos[0] in report.evidence else ""
        matched = report.matches.get(incident_id)
        cells = [
            f"<code>{incident_id[:8]}</code>",
            f"{html.escape(first.case_code)} {html.escape(first.label)}<br><small>{first.category}</small>",
            f"{first.last_seen_ts - start_ts:.0f} s",
            f"{cleared.last_seen_ts - start_ts:.0f} s" if cleared else "open",
            f"{last.duration_s:.0f} s",
            where,
            f"#{matched}" if matched is not None else "false alarm",
            " → ".join(e.type.value for e in events),
            f'<img src="{img}" width="240">' if img else "",
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(rows)


def render_html(reports: list[ScenarioReport], title: str, summary: str) -> str:
    sections = []
    for r in reports:
        sections.append(
            f"<section><h2>{html.escape(r.name)}</h2>"
            f"<p>{len(incidents_of(r.events))} incidents from {len(r.events)} events; "
            f"{len(r.truth.objects)} ground-truth objects. Squares: ground truth (by class); blue circles: incident "
            "locations with their accuracy radius; dashed lines: scorer matches.</p>"
            f"<div class='row'><div>{map_svg(r)}</div></div>"
            f"<h3>Timeline</h3>{timeline_svg(r)}"
            f"<h3>Scores</h3><pre>{html.escape(r.score_table)}</pre>"
            "<h3>Incidents</h3><table><tr><th>id</th><th>case</th><th>opened</th><th>cleared</th><th>duration</th>"
            f"<th>location</th><th>truth</th><th>events</th><th>evidence</th></tr>{incident_rows(r)}</table></section>"
        )
    legend = " ".join(f'<span style="color:{c}">■ {k}</span>' for k, c in CLASS_COLOURS.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:20px;max-width:1300px} table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top} pre{background:#f4f4f4;padding:8px}"
        "section{margin-bottom:40px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{legend}</p><pre>{html.escape(summary)}</pre>{''.join(sections)}"
        "</body></html>"
    )
