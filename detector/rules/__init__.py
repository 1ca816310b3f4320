"""Incident rules: zones, dwell, confirmation, association by place, and the incident lifecycle."""

from __future__ import annotations

from detector.rules.associate import Associator, PixelPlaceAssociator, Place, Sighting
from detector.rules.config import CategoryConfig, ConfirmConfig, RulesConfig, SourceRules, ZoneConfig
from detector.rules.engine import Locate, RulesEngine, RulesError

__all__ = [
    "Associator",
    "CategoryConfig",
    "ConfirmConfig",
    "Locate",
    "PixelPlaceAssociator",
    "Place",
    "RulesConfig",
    "RulesEngine",
    "RulesError",
    "Sighting",
    "SourceRules",
    "ZoneConfig",
]
