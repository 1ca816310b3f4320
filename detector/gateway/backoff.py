"""Exponential backoff with jitter, for reconnecting to a camera or to the service."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BackoffSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    initial_s: float = Field(0.5, gt=0, description="Wait before the first retry, in seconds.")
    max_s: float = Field(30.0, gt=0, description="Longest wait between retries, in seconds.")
    multiplier: float = Field(2.0, ge=1, le=10, description="Each failed try multiplies the wait by this.")
    jitter: float = Field(
        0.5, ge=0, le=1, description="Each wait is scaled by a random factor in [1 - jitter, 1] (0 = none)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> BackoffSettings:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be at least initial_s ({self.initial_s})")
        return self


class Backoff:
    """The waits between tries: ``initial_s * multiplier**n``, capped at ``max_s``, each scaled down by a random
    jitter factor so that many gateways (or cameras) that lost the same peer do not retry in step.
    ``reset()`` after a success starts again from ``initial_s``."""

    def __init__(self, settings: BackoffSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failed tries since the last ``reset()``."""
        return self._failures

    def next_delay(self) -> float:
        """Count one more failed try and return how long to wait before the next one, in seconds."""
        s = self._settings
        base = min(s.max_s, s.initial_s * s.multiplier ** min(self._failures, 64))
        self._failures += 1
        return base * (1.0 - s.jitter * self._rng.random())

    def reset(self) -> None:
        self._failures = 0
