"""`detector connectors status` and `detector connectors replay`, run as real processes against a real SQLite store
and a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from detector.cli import main
from detector.delivery.runner import consumer_name
from detector.store import SqliteStore
from tests.delivery.test_webhook_delivery import SECRET, Receiver, run
from tests.store.factories import make_event

REPO = Path(__file__).resolve().parents[2]
CONSUMER = consumer_name("city")


def flags(data_dir: Path, url: str, **hook: Any) -> list[str]:
    connector = {"name": "city", "kind": "webhook", "url": url, "secret": SECRET, "timeout_s": 2, **hook}
    return ["--set", f"store.data_dir={data_dir}", "--set", f"delivery={json.dumps({'connectors': [connector]})}"]


async def detector(*args: str) -> tuple[int, str, str]:
    """The real command, as its own process (the receiver keeps serving in this loop meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "detector.cli",
        *args,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def fill(data_dir: Path, count: int, skipped: frozenset[int] = frozenset(), **fields: Any) -> list[str]:
    """``count`` events; those numbered in ``skipped`` come from cam-2, which the filter below leaves out."""
    with SqliteStore(data_dir) as store:
        events = [
            make_event(incident_id=f"inc-{i}", source_id="cam-2" if i in skipped else "cam-1", **fields)
            for i in range(1, count + 1)
        ]
        return [e.event_id for e in store.append(events)]


ONLY_CAM_1 = {"filter": {"source_ids": ["cam-1"]}}


def test_status_shows_offset_lag_and_dead_letters_from_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    last_seen = time.time() - 1000.0
    ids = fill(data, 5, skipped=frozenset({3}), last_seen_ts=last_seen)
    with SqliteStore(data) as store:
        store.commit_offset(CONSUMER, 2)
        store.add_dead_letter(CONSUMER, 2, ids[1], "HTTP 400", 10)

    async def scenario() -> None:
        base = flags(data, "http://127.0.0.1:1/hook", **ONLY_CAM_1)
        code, out, _ = await detector("connectors", "status", *base, "--dead-letters")
        assert code == 0
        lines = out.splitlines()
        assert lines[0].startswith("city (webhook): offset 2 of 5, lag 3 events, ")
        assert lines[0].endswith("s (oldest undelivered #4)")  # #3 is cam-2: not wanted, not counted
        assert lines[1:] == [
            "  dead letters: 1",
            f"    #2 {ids[1]} attempts 10: HTTP 400",
            "  last error: only a running service knows (see streetwatch_delivery_* metrics)",
        ]
        code, out, _ = await detector("connectors", "status", *base, "--json")
        assert code == 0
        report = json.loads(out)
        assert {k: report[k] for k in ("name", "kind", "offset", "log_end", "lag_events", "oldest_sequence")} == {
            "name": "city",
            "kind": "webhook",
            "offset": 2,
            "log_end": 5,
            "lag_events": 3,
            "oldest_sequence": 4,
        }
        assert report["dead_letter_count"] == 1 and "dead_letters" not in report
        assert report["lag_s"] >= 1000.0  # measured from last_seen of #4, not from now
        assert report["last_error"] is None

    run(scenario)


def test_replay_delivers_the_wanted_range_in_order_and_leaves_the_offset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = fill(data, 6, skipped=frozenset({3}))
    with SqliteStore(data) as store:
        store.commit_offset(CONSUMER, 5)

    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        receiver.script = [200, 400, 200, 200]  # #1, #2 (refused), #4, #5; #3 is skipped by the filter
        try:
            args = ["connectors", "replay", "city", "--from-sequence", "1", "--to-sequence", "5"]
            code, out, err = await detector(*args, *flags(data, receiver.url, **ONLY_CAM_1))
        finally:
            await receiver.stop()
        assert code == 1, err  # one event was refused
        assert receiver.keys == [ids[0], ids[3], ids[4]]
        assert out.splitlines() == [
            "replay city: events #1..#5: delivered 3, failed 1, skipped by filter 1",
            f"  failed #2 {ids[1]}: HTTP 400",
        ]
        assert "event" in err  # the progress bar, on stderr

    run(scenario)
    with SqliteStore(data) as store:
        assert store.get_offset(CONSUMER) == 5  # not moved back to 1, nor on to 6
        assert store.dead_letters(CONSUMER) == []  # a replay records nothing


def test_replay_of_dead_letters_removes_each_one_delivered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = fill(data, 4)
    with SqliteStore(data) as store:
        store.commit_offset(CONSUMER, 4)
        for seq in (2, 4):
            store.add_dead_letter(CONSUMER, seq, ids[seq - 1], "HTTP 422", 10)

    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        try:
            args = ["connectors", "replay", "city", "--dead-letters", "--no-progress"]
            code, out, err = await detector(*args, *flags(data, receiver.url))
        finally:
            await receiver.stop()
        assert code == 0, err
        assert receiver.keys == [ids[1], ids[3]]
        assert out.strip() == "replay city: dead letters #1..#4: delivered 2, failed 0, skipped by filter 0"

    run(scenario)
    with SqliteStore(data) as store:
        assert store.dead_letters(CONSUMER) == []
        assert store.get_offset(CONSUMER) == 4


def test_replay_stops_at_the_first_event_the_peer_could_not_take(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, 3)

    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        receiver.script = [200, 503]
        try:
            args = ["connectors", "replay", "city", "--from-sequence", "1", "--no-progress"]
            code, out, _ = await detector(*args, *flags(data, receiver.url))
        finally:
            await receiver.stop()
        assert code == 1
        assert len(receiver.keys) == 1
        assert out.splitlines()[-1] == (
            "  stopped at #2: HTTP 503; run again with --from-sequence 2 when the peer is back"
        )

    run(scenario)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["replay", "nobody", "--from-sequence", "1"],
            "no connector named 'nobody' in delivery.connectors (known: city)",
        ),
        (["replay", "city"], "--from-sequence N is required"),
        (["replay", "city", "--from-sequence", "3", "--to-sequence", "9"], "#3..#9 is not within the log #1..#4"),
    ],
)
def test_replay_says_what_to_fix(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    fill(data, 4)
    assert main(["connectors", *args, *flags(data, "http://127.0.0.1:1/hook")]) == 2
    assert message in capsys.readouterr().err


def test_status_without_a_store_does_not_create_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connectors", "status", *flags(tmp_path / "none", "http://127.0.0.1:1/hook")]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
