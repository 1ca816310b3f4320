"""Incident rules: zones, dwell, confirmation, association by place, and the incident lifecycle."""

from __future__ import annotations

from detector.rules.associate import Associator, PixelPlaceAssociator, Place, Sighting
from detector.rules.config import CategoryConfig, ConfirmConfig, RulesConfig, SourceRules, ZoneConfig
from detector.rules.engine import RulesEngine, RulesError
from detector.rules.geo_place import GroundPlaceAssociator
from detector.rules.locate import GroundFixes, Locate, SourceLocator

__all__ = [
    "Associator",
    "CategoryConfig",
    "ConfirmConfig",
    "GroundFixes",
    "GroundPlaceAssociator",
    "Locate",
    "PixelPlaceAssociator",
    "Place",
    "RulesConfig",
    "RulesEngine",
    "RulesError",
    "Sighting",
    "SourceLocator",
    "SourceRules",
    "ZoneConfig",
]
