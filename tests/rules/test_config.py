from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from detector.rules import FixedCamera, MovingCamera, RulesConfig

from .helpers import ZONE

ZONE_DICT = ZONE.model_dump()
STALLS = {"classes": ["stall"], "case_code": "1", "label": "a", "severity": "low", "rule": "dwell"}


@pytest.mark.parametrize(
    ("cls", "category", "code", "label"),
    [
        ("stall", "ROAD_OCCUPYING_STALL", "200501", "无照经营游商"),
        ("cart", "ROAD_OCCUPYING_STALL", "200501", "无照经营游商"),
        ("goods", "OUTSIDE_SHOP_TRADING", "200504", "店外经营"),
        ("garbage", "EXPOSED_GARBAGE", "200102", "暴露垃圾"),
        ("overflow", "OVERFLOWING_BIN", "200103", "积存垃圾渣土"),
        ("pothole", "ROAD_DAMAGE", "200306", "道路破损"),
    ],
)
def test_default_categories_follow_the_architecture_table(cls: str, category: str, code: str, label: str) -> None:
    config = RulesConfig()
    assert config.category_of()[cls] == category
    assert (config.categories[category].case_code, config.categories[category].label) == (code, label)


def test_defaults() -> None:
    config = RulesConfig()
    assert "garbage_bin" not in config.category_of()
    rules = config.for_source("any-camera")
    assert (rules.camera, rules.dwell_s, rules.zones) == ("fixed", 120.0, [])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sources": {"cam": {"dwel_s": 10}}}, "dwel_s\n  Extra inputs are not permitted"),
        ({"sources": {"cam": {"dwell_s": 0}}}, "dwell_s\n  Input should be greater than 0"),
        (
            {"sources": {"cam": {"occlusion_s": 90, "clear_after_s": 60}}},
            "must be at least occlusion_s (90.0)",
        ),
        (
            {"sources": {"cam": {"heartbeat_s": 1, "min_update_interval_s": 5}}},
            "at least min_update_interval_s",
        ),
        (
            {"sources": {"cam": {"zones": [{**ZONE_DICT, "prohibited_classes": ["stal"]}]}}},
            "cam: zone 'no-vending' prohibits 'stal', which no category maps",
        ),
        (
            {"sources": {"cam": {"zones": [{**ZONE_DICT, "polygon_px": [[0, 0], [10, 10], [10, 0], [0, 10]]}]}}},
            "zone 'no-vending': polygon_px is not a simple polygon with area (Self-intersection",
        ),
        (
            {"sources": {"cam": {"zones": [{**ZONE_DICT, "polygon_px": [[0, 0], [10, 10]]}]}}},
            "polygon_px\n  List should have at least 3 items",
        ),
        (
            {"sources": {"cam": {"zones": [ZONE_DICT, ZONE_DICT]}}},
            "zone ids must be unique; repeated: no-vending",
        ),
        (
            {"sources": {"cam": {"camera": "moving", "zones": [ZONE_DICT]}}},
            "a moving camera cannot use pixel zones",
        ),
        ({"sources": {"cam": {"camera": "drone"}}}, "sources.cam\n  camera must be 'fixed' or 'moving'"),
        ({"sources": {"cam": {"confirm": {"garbage": {"k": 6, "n_s": 5}}}}}, "k (6) cannot exceed n_s (5)"),
        (
            {"sources": {"cam": {"confirm": {"garbage": {}, "overflow": {}}}}},
            "cam: classes 'pothole' open by confirmation (fixed camera) but have no entry in 'confirm'",
        ),
        (
            {"sources": {"drone": {"camera": "moving", "confirm": {"garbage": {}, "overflow": {}, "pothole": {}}}}},
            "drone: classes 'cart', 'goods', 'stall' open by confirmation (moving camera)",
        ),
        ({"categories": {"A": STALLS, "B": STALLS}}, "class 'stall' is in two categories: A and B"),
        (
            {"categories": {"A": {**STALLS, "severity": "urgent"}}},
            "severity\n  Input should be 'low', 'medium', 'high' or 'critical'",
        ),
        ({"sources": {"cam": {"zones_frame_size_px": [0, 1080]}}}, "Input should be greater than 0"),
    ],
)
def test_config_errors_say_what_to_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RulesConfig.model_validate(data)
    assert message in str(info.value)


def test_field_descriptions_explain_every_setting() -> None:
    for model in (RulesConfig, FixedCamera, MovingCamera):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
