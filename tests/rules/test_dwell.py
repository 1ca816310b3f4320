from __future__ import annotations

import pytest

from detector.rules.dwell import DwellClock


@pytest.mark.parametrize(
    ("observations", "now", "due"),
    [
        ([((0.0, 0.0), 0.0)], 119.9, False),
        ([((0.0, 0.0), 0.0)], 120.0, True),
        ([((0.0, 0.0), 0.0)], 119.9999999, True),  # float noise on the boundary counts as reached
        ([((0.0, 0.0), 0.0), ((30.0, 0.0), 60.0)], 120.0, True),  # jitter within tolerance
        ([((0.0, 0.0), 0.0), ((50.0, 0.0), 60.0)], 120.0, False),  # moved: dwell restarts at 60 s
        ([((0.0, 0.0), 0.0), ((50.0, 0.0), 60.0)], 180.0, True),
        # Drift counts from where it came to rest, not from the last step: 42 px twice is a move.
        ([((0.0, 0.0), 10.0), ((30.0, 30.0), 20.0), ((60.0, 0.0), 125.0)], 130.0, False),
    ],
)
def test_dwell_clock(observations: list[tuple[tuple[float, float], float]], now: float, due: bool) -> None:
    clock = DwellClock(dwell_s=120.0, tolerance_px=45.0)
    for point, ts in observations:
        clock.observe(point, ts)
    assert clock.is_due(now) is due


def test_unobserved_clock_is_never_due() -> None:
    clock = DwellClock(dwell_s=1.0, tolerance_px=1.0)
    assert (clock.is_due(1e9), clock.elapsed_s(1e9), clock.name) == (False, 0.0, "dwell>=1s")
