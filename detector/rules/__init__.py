"""Incident rules: zones, dwell, confirmation, association by place, and the incident lifecycle."""

from __future__ import annotations

from detector.rules.associate import Associator, PixelPlaceAssociator, Place, Sighting
from detector.rules.config import (
    CategoryConfig,
    ConfirmConfig,
    FixedCamera,
    MovingCamera,
    RulesConfig,
    SourceRules,
    ZoneConfig,
)
from detector.rules.engine import RulesEngine, RulesError
from detector.rules.geo_place import GroundPlaceAssociator

__all__ = [
    "Associator",
    "CategoryConfig",
    "ConfirmConfig",
    "FixedCamera",
    "GroundPlaceAssociator",
    "MovingCamera",
    "PixelPlaceAssociator",
    "Place",
    "RulesConfig",
    "RulesEngine",
    "RulesError",
    "Sighting",
    "SourceRules",
    "ZoneConfig",
]
