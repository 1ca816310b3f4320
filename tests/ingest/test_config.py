"""The ``ingest`` section's stream-health settings: defaults, per-source expectations, readable refusals."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from detector.ingest.config import IngestSettings


def test_defaults_watch_for_silence_but_expect_no_frame_rate() -> None:
    settings = IngestSettings()
    assert settings.stale_after_s == 30.0
    assert settings.stream("any-camera").expected_fps is None


def test_a_listed_stream_has_its_own_expectation_and_the_rest_the_default() -> None:
    settings = IngestSettings.model_validate(
        {"default_stream": {"expected_fps": 5}, "streams": {"cam-7": {"expected_fps": 10}}}
    )
    assert settings.stream("cam-7").expected_fps == 10 and settings.stream("cam-1").expected_fps == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"streams": {"cam-7": {"expected_fps": 10, "degraded_below_fraction": 0.6, "recovers_at_fraction": 0.5}}},
            "recovers_at_fraction 0.5 is below degraded_below_fraction 0.6",
        ),
        (
            {"fps_window_s": 2, "default_stream": {"expected_fps": 0.5}},
            "make fps_window_s at least 8 s",
        ),
        ({"sources": ["cam-1"], "streams": {"cam-7": {}}}, "ingest.streams names cam-7, not in ingest.sources"),
        ({"streams": {"cam-7": {"expected_fps": 10, "fps": 3}}}, "fps"),
        ({"stale_after_s": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_stream_health_settings_say_what_to_fix(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IngestSettings.model_validate(data)
