"""Domain errors of the geo package; the API edge turns them into gRPC statuses."""

from __future__ import annotations


class GeoError(Exception):
    """Base class for every geo error."""


class SrtParseError(GeoError):
    """A DJI .SRT file holds no usable telemetry."""


class CalibrationError(GeoError):
    """A fixed-camera ground calibration cannot be fitted or used."""


class ZoneError(GeoError):
    """A geographic zone definition is not a valid lat/lon polygon."""
