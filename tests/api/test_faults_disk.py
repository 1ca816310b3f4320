"""A full disk under the data directory of a real `detector serve` process.

The data directory sits on a small tmpfs that the test fills to the last byte. While the store cannot append:
Incidents health is NOT_SERVING, streetwatch_store_writable is 0 and the log says so, every frame is still
answered with its detections, and every event accepted before is intact. Once space is freed, the waiting
events are appended in order, health returns to SERVING, and the log is gap-free.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from tests.api.scripted import scripted_overrides, write_spec
from tests.api.test_crash_safety import Server
from tests.api.test_serve_process import free_port
from tests.hardening.faults import (
    NOT_SERVING,
    SERVING,
    assert_sound_log,
    audit,
    health,
    metric,
    pile_frames,
    stream,
    wait_health,
    wait_log,
)

INCIDENTS, INGEST = "streetwatch.v1.Incidents", "streetwatch.v1.Ingest"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the disk has not one byte left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (256 * 1024, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


def _with_detections(answers: list[pb.FrameResult], frames: list[pb.Frame]) -> None:
    assert [a.seq for a in answers] == [f.seq for f in frames], "every frame is answered, in order"
    assert all(not a.HasField("error") for a in answers), [a.error for a in answers if a.HasField("error")]
    assert sum(len(a.detections) for a in answers) >= len(frames) // 2, "detections are still returned"


def test_a_full_disk_degrades_with_a_clear_status_loses_nothing_and_recovers_in_order(tmp_path, small_disk):
    spec = write_spec(tmp_path / "blobs.yaml")
    metrics_port = free_port()
    settings = [
        *scripted_overrides(spec, small_disk / "data"),
        f"server.metrics_port={metrics_port}",
        "store.retry_interval_s=0.5",
        "logging.json_format=false",
    ]
    log = tmp_path / "serve.log"
    server = Server(free_port(), settings, log)
    try:
        first = pile_frames("cam-1", 0, 40)
        _with_detections(stream(server.target, first), first)
        before = audit(server.target)
        assert before, "the first piles opened incidents"
        assert health(server.target, INCIDENTS) == SERVING

        filler = _fill(small_disk)
        # Frames keep being answered while the store cannot take their events (piles 3 to 6 open here).
        during = pile_frames("cam-1", 40, 100)
        _with_detections(stream(server.target, during), during)
        assert health(server.target, INCIDENTS) == NOT_SERVING, "the event log is not writable: say so"
        assert health(server.target, INGEST) == SERVING, "ingest still answers"
        assert metric(metrics_port, "streetwatch_store_writable") == 0
        assert metric(metrics_port, "streetwatch_store_backlog_events") > 0
        assert "disk full" in wait_log(str(log), "event log not writable", 10)
        # Everything accepted before the disk filled up is still there, unchanged.
        still = audit(server.target)
        assert [(e.sequence, e.event_id) for e in still] == [(e.sequence, e.event_id) for e in before]

        filler.unlink()
        assert wait_health(server.target, INCIDENTS, SERVING, 60), "health never came back after space was freed"
        assert metric(metrics_port, "streetwatch_store_writable") == 1
        assert metric(metrics_port, "streetwatch_store_backlog_events") == 0
        after = pile_frames("cam-1", 100, 130)
        _with_detections(stream(server.target, after), after)
        events = audit(server.target)
        assert metric(metrics_port, "streetwatch_events_lost") == 0
    finally:
        server.close()
    assert [(e.sequence, e.event_id) for e in events[: len(before)]] == [(e.sequence, e.event_id) for e in before]
    assert_sound_log(events)
    opened = [e for e in events if e.type == ipb.OPENED]
    # Piles 0-8 each opened one incident: 0-2 before, 3-6 while the disk was full, 7-8 after.
    assert len(opened) == 9, [(e.sequence, e.first_seen.ToSeconds()) for e in opened]
