"""`detector srt inspect`: cue counts, span, GPS order and first/last values of each fixture, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from detector.geo.srt_inspect import inspect_srt

from .test_srt import EARLY_PHANTOM, FIXTURE_CASES, FIXTURES, cue_text, needs_fixtures, one_hz_srt


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


def test_inspect_reports_a_clock_jump_first_and_in_the_warnings(tmp_path: Path) -> None:
    damaged = "".join(cue_text(10 + i, "GPS(149.0251,-20.2533,16) BAROMETER:1/0", 10 + i, 11 + i) for i in range(8))
    path = tmp_path / "two_segments.SRT"
    path.write_text(one_hz_srt([0, 1, 2, 131, 132, 133], [20.0, 21.0, 22.0, 80.0, 81.0, 82.0]) + damaged)
    summary = inspect_srt(path)
    assert summary.clock_jumps == 1 and summary.as_dict()["clock_jumps"] == 1
    lines = summary.text(max_warnings=2).splitlines()
    assert ", 1 drone clock jumps (new recording segments), " in lines[0], "said even when the list is cut"
    assert "more warnings" in lines[-1]
    assert any("drone clock jumps +129.0 s between cue 3 and cue 4" in w for w in summary.warnings)
    single = tmp_path / "one_segment.SRT"
    single.write_text(one_hz_srt([0, 1, 2, 3, 4, 5], [20.0, 21.0, 22.0, 80.0, 81.0, 82.0]))
    assert inspect_srt(single).clock_jumps == 0 and "clock jumps" not in inspect_srt(single).text()


def test_inspect_early_phantom_has_a_height(tmp_path: Path) -> None:
    path = tmp_path / "inspire1.SRT"
    path.write_text("".join(cue_text(i + 1, EARLY_PHANTOM, i, i + 1) for i in range(3)))
    summary = inspect_srt(path)
    assert summary.first["rel_alt_m"] == 1.9
    assert {"rel_alt_m", "shutter_s", "fnum"} <= set(summary.fields_present)
    assert "abs_alt_m" not in summary.fields_present


@needs_fixtures
def test_inspect_matrice_has_no_absolute_altitude() -> None:
    summary = inspect_srt(FIXTURES / "matrice_300.srt")
    assert "abs_alt_m" not in summary.fields_present and "abs_alt_m" not in summary.first
    assert summary.first["rel_alt_m"] == 0.3 and summary.warnings == []
