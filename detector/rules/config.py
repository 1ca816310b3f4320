"""Rules settings: the city's category table and each source's zones, clocks and tolerances.

Categories are city-wide (every city has its own case-code table); everything else is per source, with
``default_source`` for sources that are not listed. Example::

    RulesConfig.model_validate({
        "sources": {"cam-7": {"zones": [{"id": "no-vending", "polygon_px": [[0, 600], [1920, 600],
                                                                            [1920, 1080], [0, 1080]],
                                         "prohibited_classes": ["stall", "cart", "goods"]}]}},
    })
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

import shapely
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PositiveInt, Tag, model_validator

from detector.geo.config import GeoZoneConfig, SourceGeo
from detector.types import Severity

RuleKind = Literal["dwell", "confirm"]
NoZones = Literal["whole_view", "off"]
WHOLE_VIEW_ZONE_ID = "whole-view"
"""The zone id of a fixed camera's whole view, when it has no zones of its own (``no_zones: whole_view``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryConfig(_Strict):
    """One incident category of the case system and the detection classes that raise it."""

    classes: list[str] = Field(min_length=1, description="Detection class names that raise this category.")
    case_code: str = Field(min_length=1, description="The case system's event code, e.g. '200501'.")
    label: str = Field(min_length=1, description="Human-readable label sent with the code, e.g. '无照经营游商'.")
    severity: Severity = Field(description="Severity of incidents in this category.")
    rule: RuleKind = Field(
        description="'dwell': opens after staying dwell_s in a prohibited zone (fixed cameras); "
        "'confirm': opens after k-of-n seconds of confident sightings."
    )


def _category(classes: list[str], code: str, label: str, severity: Severity, rule: RuleKind) -> CategoryConfig:
    return CategoryConfig(classes=classes, case_code=code, label=label, severity=severity, rule=rule)


def default_categories() -> dict[str, CategoryConfig]:
    """The defaults of docs/ARCHITECTURE.md (digital urban-management codes). ILLEGAL_STACKING has no class yet."""
    return {
        "ROAD_OCCUPYING_STALL": _category(["stall", "cart"], "200501", "无照经营游商", Severity.MEDIUM, "dwell"),
        "OUTSIDE_SHOP_TRADING": _category(["goods"], "200504", "店外经营", Severity.LOW, "dwell"),
        "EXPOSED_GARBAGE": _category(["garbage"], "200102", "暴露垃圾", Severity.MEDIUM, "confirm"),
        "OVERFLOWING_BIN": _category(["overflow"], "200103", "积存垃圾渣土", Severity.MEDIUM, "confirm"),
        "ROAD_DAMAGE": _category(["pothole"], "200306", "道路破损", Severity.HIGH, "confirm"),
    }


class ConfirmConfig(_Strict):
    """Seen with confidence >= min_confidence in at least k distinct seconds of the last n_s seconds."""

    k: int = Field(default=3, ge=1, description="Distinct one-second bins with a confident sighting needed.")
    n_s: int = Field(default=5, ge=1, description="Window length in seconds (bins) that k is counted over.")
    min_confidence: float = Field(
        default=0.4, ge=0.0, le=1.0, description="A sighting counts only at or above this confidence."
    )

    @model_validator(mode="after")
    def _verify(self) -> Self:
        if self.k > self.n_s:
            raise ValueError(f"k ({self.k}) cannot exceed n_s ({self.n_s}): k seconds must fit in the window")
        return self


def default_confirm() -> dict[str, ConfirmConfig]:
    """Hazard thresholds; the stall classes' entries serve moving cameras, where dwell cannot be seen."""
    hazard = ConfirmConfig(k=3, n_s=5, min_confidence=0.4)
    passing = ConfirmConfig(k=2, n_s=3, min_confidence=0.5)
    return {
        "garbage": hazard,
        "overflow": hazard,
        "pothole": hazard,
        "stall": passing,
        "cart": passing,
        "goods": passing,
    }


class ZoneConfig(_Strict):
    """A polygon in image pixels and the classes that may not stay in it."""

    id: str = Field(min_length=1, description="Zone id, reported as zone_id on events.")
    polygon_px: list[tuple[float, float]] = Field(
        min_length=3, description="Vertices [x, y] in the source's pixels (see zones_frame_size_px)."
    )
    prohibited_classes: list[str] = Field(
        min_length=1, description="Detection classes whose bottom-centre may not dwell inside the polygon."
    )

    @model_validator(mode="after")
    def _verify(self) -> Self:
        polygon = shapely.Polygon(self.polygon_px)
        if not polygon.is_valid or polygon.area <= 0.0:
            reason = shapely.is_valid_reason(polygon)
            raise ValueError(f"zone {self.id!r}: polygon_px is not a simple polygon with area ({reason})")
        return self


class _SourceRulesBase(_Strict):
    """Rules every kind of source shares; a source is a :class:`FixedCamera` or a :class:`MovingCamera`."""

    dwell_s: float = Field(default=120.0, gt=0, description="Seconds a dwell-class object must stay in a zone.")
    dwell_min_confidence: float = Field(
        default=0.35, ge=0.0, le=1.0, description="Dwell-class detections below this confidence are ignored."
    )
    stationary_tolerance_px: float = Field(
        default=40.0,
        gt=0,
        description="A dwelling object that moves its bottom-centre farther than this from where it came to "
        "rest starts its dwell again.",
    )
    confirm: dict[str, ConfirmConfig] = Field(
        default_factory=default_confirm, description="k-of-n-seconds confirmation per detection class."
    )
    match_iou: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="A detection belongs to a candidate or incident of its category when their boxes overlap "
        "at least this much (IoU); a shared track id breaks ties. Also the duplicate threshold in a frame.",
    )
    occlusion_s: float = Field(
        default=30.0,
        ge=0,
        description="A not-yet-open candidate survives an absence this long (dwell continues).",
    )
    clear_after_s: float = Field(
        default=60.0,
        gt=0,
        description="An open incident clears after its object has been absent this long (moving cameras: "
        "geo.clear_after_in_view_s of looking at its place instead).",
    )
    reopen_after_s: float = Field(
        default=300.0,
        ge=0,
        description="The same object at the same place within this long after clearing reopens the same "
        "incident (it must satisfy its rule again).",
    )
    heartbeat_s: float = Field(default=60.0, gt=0, description="An open, visible incident is UPDATED this often.")
    min_update_interval_s: float = Field(
        default=5.0, ge=0, description="No two events of one incident closer than this, except CLEARED."
    )
    confidence_step: float = Field(
        default=0.1, gt=0, le=1.0, description="UPDATED when the incident confidence moved this much."
    )
    confidence_smoothing_s: float = Field(
        default=5.0, ge=0, description="Time constant of the confidence moving average (0: latest sighting)."
    )
    box_move_tolerance_px: float = Field(
        default=40.0,
        gt=0,
        description="UPDATED when a box corner moved farther than this since the last event (fixed cameras; a "
        "moving camera's incident is UPDATED when its location moved farther than its accuracy_m).",
    )
    geo: SourceGeo = Field(
        default_factory=SourceGeo,
        description="Geotagging: ground calibration or position (fixed cameras), camera profile and ground "
        "dedup (drones), and zones in lat/lon.",
    )


class FixedCamera(_SourceRulesBase):
    """A camera that stays put (a pole camera): dwell in pixel zones, association by box, and a ground position
    from its calibration or its position."""

    camera: Literal["fixed"] = Field(default="fixed", description="'fixed' (the default) or 'moving' (drones).")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Prohibited zones in image pixels.")
    zones_frame_size_px: tuple[PositiveInt, PositiveInt] | None = Field(
        default=None,
        description="(width, height) the zone polygons were drawn on; zones are scaled to the stream's size. "
        "None: polygons are in the stream's own pixels.",
    )
    no_zones: NoZones = Field(
        default="whole_view",
        description="A fixed camera with neither zones nor geo.zones: 'whole_view' (the default) makes its whole "
        f"frame one prohibited zone (id '{WHOLE_VIEW_ZONE_ID}') for every dwell-rule class, so a stall that stays "
        "dwell_s anywhere in view opens an incident; 'off' opens none (dwell classes need a zone). A city that "
        "points cameras at streets where vending is banned gets incidents out of the box; draw zones to narrow it.",
    )

    @model_validator(mode="after")
    def _verify(self) -> Self:
        verify_clocks(self)
        verify_zones(self)
        verify_fixed_geo(self)
        return self


class MovingCamera(_SourceRulesBase):
    """A camera that moves (a drone): every category opens by confirmation (k of n seconds, or seen on
    geo.confirm_passes passes), only geo.zones apply, and sightings are associated by ground distance
    (geo.dedup_radius_m) and category rather than by box or track id."""

    camera: Literal["moving"] = Field(description="'moving': a drone or any camera whose view moves.")

    @model_validator(mode="before")
    @classmethod
    def _no_pixel_zones(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("zones") or data.get("zones_frame_size_px")):
            raise ValueError("a moving camera cannot use pixel zones (they move with it); remove 'zones'")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("zones", "zones_frame_size_px")}
        return data

    @model_validator(mode="after")
    def _verify(self) -> Self:
        verify_clocks(self)
        verify_moving_geo(self)
        return self


def _camera_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("camera", "fixed")
        return kind if isinstance(kind, str) else ""
    return str(getattr(value, "camera", ""))


SourceRules = Annotated[
    Annotated[FixedCamera, Tag("fixed")] | Annotated[MovingCamera, Tag("moving")],
    Discriminator(
        _camera_kind,
        custom_error_type="camera_kind",
        custom_error_message="camera must be 'fixed' or 'moving'",
    ),
]
"""One source's rules: its kind (``camera: fixed`` by default, or ``moving``) is chosen once, by its class."""


def verify_clocks(rules: _SourceRulesBase) -> None:
    if rules.clear_after_s < rules.occlusion_s:
        raise ValueError(
            f"clear_after_s ({rules.clear_after_s}) must be at least occlusion_s ({rules.occlusion_s}), "
            "or an occlusion that a candidate survives would clear an open incident"
        )
    if rules.heartbeat_s < rules.min_update_interval_s:
        raise ValueError(
            f"heartbeat_s ({rules.heartbeat_s}) must be at least min_update_interval_s ({rules.min_update_interval_s})"
        )


def verify_zones(rules: FixedCamera) -> None:
    ids = [zone.id for zone in rules.zones]
    duplicated = sorted({zone_id for zone_id in ids if ids.count(zone_id) > 1})
    if duplicated:
        raise ValueError(f"zone ids must be unique; repeated: {', '.join(duplicated)}")
    clashing = sorted({zone.id for zone in rules.zones} & {zone.id for zone in rules.geo.zones})
    if clashing:
        raise ValueError(f"zone ids must be unique across zones and geo.zones; repeated: {', '.join(clashing)}")


def verify_moving_geo(rules: MovingCamera) -> None:
    geo = rules.geo
    fixed_only = [name for name in ("calibration", "position") if getattr(geo, name) is not None]
    if fixed_only:
        raise ValueError(
            f"a moving camera cannot use geo.{' or geo.'.join(fixed_only)} (they hold for a camera that "
            "stays put); a drone is located from its telemetry and geo.camera_profile"
        )
    if geo.confirm_passes is not None and rules.occlusion_s < geo.pass_gap_s:
        raise ValueError(
            f"occlusion_s ({rules.occlusion_s}) must be at least geo.pass_gap_s ({geo.pass_gap_s}) when "
            "geo.confirm_passes is set: a candidate forgotten before its next pass cannot add passes up"
        )


def verify_fixed_geo(rules: FixedCamera) -> None:
    geo = rules.geo
    if geo.camera_profile is not None:
        raise ValueError("geo.camera_profile is for moving cameras (drones); set camera: moving, or remove it")
    if geo.zones and geo.calibration is None:
        raise ValueError(
            "geo.zones need a geo.calibration on a fixed camera: without one, no detection has a ground point "
            "of its own to test against the zone"
        )


class RulesConfig(_Strict):
    """The city's categories plus per-source rules."""

    categories: dict[str, CategoryConfig] = Field(
        default_factory=default_categories,
        description="Incident category name -> classes, case code, label, severity and rule. Classes in no "
        "category (e.g. garbage_bin) never raise incidents.",
    )
    default_source: SourceRules = Field(
        default_factory=FixedCamera, description="Rules for sources not listed in 'sources'."
    )
    sources: dict[str, SourceRules] = Field(default_factory=dict, description="Rules per source_id.")
    rejected_suppress_s: float = Field(
        default=86400.0,
        ge=0,
        description="After the case system REJECTED an incident (a false alarm), no new incident of its category "
        "opens at its place for this long, in wall-clock seconds from the verdict (0: no suppression).",
    )
    rejected_suppress_iou: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="Fixed cameras: a sighting on the rejected incident's source whose box overlaps the rejected "
        "box at least this much (IoU) is at its place.",
    )
    rejected_suppress_radius_m: float = Field(
        default=15.0,
        gt=0,
        description="Moving cameras: a located sighting (any source) within this ground distance of the rejected "
        "incident's location is at its place.",
    )

    @model_validator(mode="after")
    def _verify(self) -> Self:
        verify_class_in_one_category(self)
        verify_default_source_is_not_placed(self.default_source)
        for name, rules in [("default_source", self.default_source), *self.sources.items()]:
            verify_zone_classes_mapped(self, name, rules)
            verify_confirm_classes_covered(self, name, rules)
        return self

    def for_source(self, source_id: str) -> SourceRules:
        return self.sources.get(source_id, self.default_source)

    def category_of(self) -> dict[str, str]:
        """Detection class name -> category name."""
        return {cls: name for name, category in self.categories.items() for cls in category.classes}


def verify_class_in_one_category(config: RulesConfig) -> None:
    seen: dict[str, str] = {}
    for name, category in config.categories.items():
        for cls in category.classes:
            if cls in seen:
                raise ValueError(f"class {cls!r} is in two categories: {seen[cls]} and {name}")
            seen[cls] = name


def verify_default_source_is_not_placed(rules: SourceRules) -> None:
    placed = [name for name in ("calibration", "position") if getattr(rules.geo, name) is not None]
    if placed:
        raise ValueError(
            f"default_source cannot have geo.{' or geo.'.join(placed)}: every camera stands somewhere else; "
            "give it under sources.<source_id>.geo"
        )


def verify_zone_classes_mapped(config: RulesConfig, source: str, rules: SourceRules) -> None:
    category_of = config.category_of()
    pixel_zones = rules.zones if isinstance(rules, FixedCamera) else []
    zones: list[ZoneConfig | GeoZoneConfig] = [*pixel_zones, *rules.geo.zones]
    for zone in zones:
        unknown = [cls for cls in zone.prohibited_classes if cls not in category_of]
        if unknown:
            raise ValueError(
                f"{source}: zone {zone.id!r} prohibits {', '.join(map(repr, unknown))}, which no category "
                f"maps; known classes: {', '.join(sorted(category_of))}"
            )


def verify_confirm_classes_covered(config: RulesConfig, source: str, rules: SourceRules) -> None:
    needed = sorted(
        cls
        for category in config.categories.values()
        if category.rule == "confirm" or isinstance(rules, MovingCamera)
        for cls in category.classes
    )
    missing = [cls for cls in needed if cls not in rules.confirm]
    if missing:
        raise ValueError(
            f"{source}: classes {', '.join(map(repr, missing))} open by confirmation ({rules.camera} camera) "
            "but have no entry in 'confirm' (k, n_s, min_confidence)"
        )
