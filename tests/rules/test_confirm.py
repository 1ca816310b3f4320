from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.rules.confirm import KOfNSeconds


@pytest.mark.parametrize(
    ("k", "n_s", "sightings", "now", "due"),
    [
        (3, 5, [0.1, 1.1, 2.1], 2.1, True),
        (3, 5, [0.0, 0.1, 0.2, 0.3, 0.9], 0.9, False),  # many frames, one second
        (3, 5, [0.5, 2.5, 4.5], 4.5, True),
        (3, 5, [0.5, 2.5, 4.5], 5.0, False),  # second 0 left the window
        (1, 1, [7.2], 7.9, True),
        (1, 1, [7.2], 8.0, False),
    ],
)
def test_k_of_n_seconds(k: int, n_s: int, sightings: list[float], now: float, due: bool) -> None:
    rule = KOfNSeconds(k, n_s)
    for ts in sightings:
        rule.observe((0.0, 0.0), ts)
    assert rule.is_due(now) is due


@pytest.mark.parametrize(("k", "n_s"), [(0, 5), (6, 5)])
def test_bad_k_is_rejected(k: int, n_s: int) -> None:
    with pytest.raises(ValueError, match="1 <= k <= n_s"):
        KOfNSeconds(k, n_s)


@given(
    st.lists(st.floats(0, 60, allow_nan=False), min_size=1, max_size=80).map(sorted),
    st.integers(1, 10),
)
def test_matches_counting_distinct_seconds(times: list[float], n_s: int) -> None:
    rule = KOfNSeconds(1, n_s)
    for ts in times:
        rule.observe((0.0, 0.0), ts)
    now = times[-1]
    expected = {math.floor(t) for t in times if math.floor(t) > math.floor(now) - n_s}
    assert rule.seconds_seen(now) == len(expected)
