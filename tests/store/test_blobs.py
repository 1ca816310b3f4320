"""Evidence: content-addressed, verified on read; SQLite keeps it in atomic files, PostgreSQL in the database."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.store import EvidenceCorrupt, EvidenceMissing, IncidentStore, InvalidQuery, SqliteStore, StoreFull
from detector.store.blobs import STAGED_MAX_AGE_S
from detector.types import EvidenceKind
from tests.store.factories import EVIDENCE_DAMAGERS


def evidence_file(store_dir: Path, sha256: str, suffix: str = ".jpg") -> Path:
    return store_dir / "evidence" / sha256[:2] / f"{sha256}{suffix}"


@pytest.mark.parametrize(("kind", "suffix"), [("crop_jpeg", ".jpg"), ("frame_jpeg", ".jpg")])
def test_evidence_round_trips_under_its_hash(store: IncidentStore, tmp_path: Path, kind: str, suffix: str) -> None:
    data = os.urandom(5000)
    evidence = store.put_evidence(kind, data)

    sha256 = hashlib.sha256(data).hexdigest()
    assert (evidence.kind, evidence.sha256) == (EvidenceKind(kind), sha256)
    assert type(evidence.kind) is EvidenceKind
    assert evidence.uri == f"evidence/{sha256[:2]}/{sha256}{suffix}"
    assert store.open_evidence(sha256).read() == data


def test_same_content_is_stored_once(store: IncidentStore) -> None:
    first = store.put_evidence("crop_jpeg", b"jpeg bytes")
    second = store.put_evidence("crop_jpeg", b"jpeg bytes")
    assert first == second
    assert store.apply_retention(max_age_s=None, max_bytes=None).evidence_bytes_kept == len(b"jpeg bytes")


def test_sqlite_keeps_each_evidence_once_in_a_file_named_by_its_uri(tmp_path: Path) -> None:
    with SqliteStore(tmp_path) as store:
        evidence = store.put_evidence("crop_jpeg", b"jpeg bytes")
        store.put_evidence("crop_jpeg", b"jpeg bytes")
    assert (tmp_path / evidence.uri).read_bytes() == b"jpeg bytes"
    assert [p for p in (tmp_path / "evidence").rglob("*") if p.is_file()] == [tmp_path / evidence.uri]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-10], id="truncated"),
        pytest.param(lambda data: b"X" + data[1:], id="altered"),
        pytest.param(lambda data: b"", id="emptied"),
    ],
)
def test_damaged_evidence_is_detected(
    store: IncidentStore, backend: str, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    evidence = store.put_evidence("crop_jpeg", os.urandom(2000))
    EVIDENCE_DAMAGERS[backend](tmp_path / "data", evidence.sha256, damage)

    with pytest.raises(EvidenceCorrupt):
        store.open_evidence(evidence.sha256)
    assert any(evidence.sha256 in problem for problem in store.integrity_check())


def test_missing_evidence(store: IncidentStore) -> None:
    with pytest.raises(EvidenceMissing, match="never stored"):
        store.open_evidence("0" * 64)


def test_sqlite_evidence_whose_file_is_gone_is_missing(tmp_path: Path) -> None:
    with SqliteStore(tmp_path) as store:
        evidence = store.put_evidence("crop_jpeg", b"soon gone")
        evidence_file(tmp_path, evidence.sha256).unlink()
        with pytest.raises(EvidenceMissing, match=r"file .* is gone"):
            store.open_evidence(evidence.sha256)


@pytest.mark.parametrize("sha256", ["", "abc", "G" * 64, "../" + "a" * 61])
def test_malformed_hash_is_rejected(store: IncidentStore, sha256: str) -> None:
    with pytest.raises(InvalidQuery, match="64 lower-case hex"):
        store.open_evidence(sha256)


@pytest.mark.parametrize("kind", ["", "../x", "JPEG", "crop jpeg", "telemetry"])
def test_malformed_kind_is_rejected(store: IncidentStore, kind: str) -> None:
    with pytest.raises(InvalidQuery, match="evidence kind"):
        store.put_evidence(kind, b"data")


def test_full_disk_while_writing_evidence_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with SqliteStore(tmp_path) as store:
        monkeypatch.setattr(os, "fsync", no_space)
        with pytest.raises(StoreFull, match="disk full"):
            store.put_evidence("crop_jpeg", b"data")
        monkeypatch.undo()

        assert [p for p in (tmp_path / "evidence").rglob("*") if p.is_file()] == []
        assert store.integrity_check() == []


def test_opening_the_store_removes_old_staged_files_but_not_one_being_written(tmp_path: Path) -> None:
    """A second process opening a running service's store (``detector connectors status``) must not delete the
    evidence file the service is writing; a file left by a crash an hour ago goes."""
    with SqliteStore(tmp_path):
        pass
    evidence = tmp_path / "evidence"
    fresh, crashed = evidence / ".tmp-being-written", evidence / ".tmp-left-by-a-crash"
    fresh.write_bytes(b"half a jpeg")
    crashed.write_bytes(b"half a jpeg")
    old = time.time() - STAGED_MAX_AGE_S - 1
    os.utime(crashed, (old, old))
    with SqliteStore(tmp_path):
        assert fresh.exists() and not crashed.exists()
