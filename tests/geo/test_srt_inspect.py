"""`detector srt inspect`: cue counts, span, GPS order and first/last values of each fixture, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from detector.geo.srt_inspect import inspect_srt

from .test_srt import FIXTURE_CASES, FIXTURES, needs_fixtures


@needs_fixtures
def test_inspect_counts_every_fixture_like_the_parser() -> None:
    for name, count, order, first, last in FIXTURE_CASES:
        summary = inspect_srt(FIXTURES / name)
        assert (summary.cues, summary.gps_order or None, summary.error) == (count, order, "")
        assert summary.first.get("lat") == first[0] and summary.last.get("lat") == last[0]


@needs_fixtures
def test_cli_prints_one_json_object_per_file_and_fails_on_an_unusable_one(tmp_path: Path) -> None:
    junk = tmp_path / "junk.srt"
    junk.write_text("hello")
    files = [str(FIXTURES / "matrice_300.srt"), str(FIXTURES / "mavic_pro.SRT"), str(junk)]
    done = subprocess.run(
        [sys.executable, "-m", "detector.cli", "srt", "inspect", *files, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, "an unusable file is an error"
    matrice, mavic, bad = (json.loads(line) for line in done.stdout.splitlines())
    assert (matrice["cues"], matrice["gps_order"], matrice["rate_hz"]) == (381, "latlon", 1.0)
    assert (mavic["cues"], mavic["gps_order"], mavic["first"]["lon"]) == (468, "lonlat", 149.0251)
    assert bad["cues"] == 0 and "no subtitle cues found" in bad["error"]
    text = subprocess.run(
        [sys.executable, "-m", "detector.cli", "srt", "inspect", files[0]], capture_output=True, text=True, timeout=60
    )
    assert text.returncode == 0 and text.stdout.startswith(
        f"{files[0]}: 381 cues, 0.000-380.000 s (1.0 Hz), GPS latlon"
    )
