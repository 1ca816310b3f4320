"""Damaged files under a real `detector serve` process: a truncated evidence file and a corrupt SQLite page.

What the service does (and what these tests hold it to):
- a truncated evidence file: GetEvidence answers DATA_LOSS naming the damage, other evidence is still served,
  the periodic integrity check logs it and counts it in streetwatch_store_integrity_problems; the event stands,
  so Incidents health stays SERVING;
- a corrupt database page: the start-up integrity check logs it, counts it, and marks Incidents NOT_SERVING (the
  log cannot be trusted until an operator restores or moves the file aside); the service still starts and
  answers every frame with its detections, and a subscriber reading through the damage gets DATA_LOSS rather
  than a silent gap.
"""

from __future__ import annotations

import signal
import sqlite3
import struct
from pathlib import Path

import grpc
import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from tests.api.scripted import scripted_overrides, write_spec
from tests.api.test_crash_safety import Server
from tests.api.test_serve_process import free_port
from tests.hardening.faults import NOT_SERVING, SERVING, audit, channel, health, metric, pile_frames, stream, wait_log

INCIDENTS, INGEST = "streetwatch.v1.Incidents", "streetwatch.v1.Ingest"


def _settings(tmp_path: Path, metrics_port: int, *extra: str) -> list[str]:
    spec = write_spec(tmp_path / "blobs.yaml")
    return [
        *scripted_overrides(spec, tmp_path / "data"),
        f"server.metrics_port={metrics_port}",
        "logging.json_format=false",
        *extra,
    ]


def _evidence(target: str, sha256: str) -> bytes:
    with channel(target) as ch:
        chunks = incidents_pb2_grpc.IncidentsStub(ch).GetEvidence(ipb.GetEvidenceRequest(sha256=sha256))
        return b"".join(c.data for c in chunks)


def _answered_with_detections(target: str, source_id: str, first_s: int, last_s: int) -> None:
    frames = pile_frames(source_id, first_s, last_s)
    answers = stream(target, frames)
    assert [a.seq for a in answers] == [f.seq for f in frames]
    assert all(not a.HasField("error") for a in answers)
    assert sum(len(a.detections) for a in answers) >= len(frames) // 2


def test_a_truncated_evidence_file_is_data_loss_for_that_file_and_is_found_by_the_integrity_check(tmp_path):
    metrics_port = free_port()
    settings = _settings(tmp_path, metrics_port, "store.maintenance_interval_s=1", "store.integrity_spot_checks=100000")
    log = tmp_path / "serve.log"
    server = Server(free_port(), settings, log)
    try:
        _answered_with_detections(server.target, "cam-1", 0, 40)
        evidence = [ev for e in audit(server.target) for ev in e.evidence]
        assert len(evidence) >= 2, "the openings carry photos"
        damaged, intact = evidence[0], evidence[-1]
        path = tmp_path / "data" / damaged.uri
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

        with pytest.raises(grpc.RpcError) as lost:
            _evidence(server.target, damaged.sha256)
        assert lost.value.code() == grpc.StatusCode.DATA_LOSS
        assert f"{len(data) // 2} bytes on disk" in lost.value.details()
        assert _evidence(server.target, intact.sha256), "other evidence is still served"

        line = wait_log(str(log), damaged.sha256, 30)
        assert "integrity check found" in line or "evidence damaged" in line
        assert damaged.sha256 in wait_log(str(log), "integrity check found", 30)
        assert metric(metrics_port, "streetwatch_store_integrity_problems") >= 1
        assert health(server.target, INCIDENTS) == SERVING, "the events stand; one photo is lost"
        _answered_with_detections(server.target, "cam-1", 40, 60)
    finally:
        server.close()


def _corrupt_a_page_of_the_event_log(db: Path) -> int:
    """Overwrite the first leaf page of the events table with garbage; returns its page number."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    conn.close()
    raw = bytearray(db.read_bytes())
    header = (root - 1) * page_size
    assert raw[header] == 0x05, "the events table spans several pages (its root is an interior page)"
    first_cell = struct.unpack(">H", raw[header + 12 : header + 14])[0]
    leaf = struct.unpack(">I", raw[(root - 1) * page_size + first_cell : (root - 1) * page_size + first_cell + 4])[0]
    start = (leaf - 1) * page_size
    raw[start : start + page_size] = bytes([0xA5]) * page_size
    db.write_bytes(bytes(raw))
    return int(leaf)


def test_a_corrupt_database_page_is_reported_at_start_up_and_the_service_still_answers_frames(tmp_path):
    metrics_port = free_port()
    settings = _settings(tmp_path, metrics_port)
    log = tmp_path / "serve.log"
    port = free_port()
    first = Server(port, settings, log)
    try:
        for source_id in ("cam-1", "cam-2", "cam-3"):
            _answered_with_detections(first.target, source_id, 0, 130)
        before = audit(first.target)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0
    finally:
        first.close()
    assert len(before) > 30
    _corrupt_a_page_of_the_event_log(tmp_path / "data" / "incidents.db")

    second = Server(port, settings, log)  # starts, and says SERVING for the service as a whole
    try:
        assert "database" in wait_log(str(log), "integrity check found", 10)
        assert metric(metrics_port, "streetwatch_store_integrity_problems") >= 1
        assert health(second.target, INCIDENTS) == NOT_SERVING, "the event log cannot be trusted: say so"
        assert health(second.target, INGEST) == SERVING
        _answered_with_detections(second.target, "cam-4", 0, 40)
        with pytest.raises(grpc.RpcError) as lost:
            audit(second.target)
        assert lost.value.code() == grpc.StatusCode.DATA_LOSS, "no silent gap for a subscriber"
        assert "damaged" in lost.value.details()
    finally:
        second.close()
