"""Evidence files: content-addressed, atomic, verified on read."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from detector.store import EvidenceCorrupt, EvidenceMissing, IncidentStore, InvalidQuery, StoreFull
from detector.types import EvidenceKind


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
    assert evidence_file(tmp_path / "data", sha256, suffix).read_bytes() == data
    assert store.open_evidence(sha256).read() == data


def test_same_content_is_stored_once(store: IncidentStore, tmp_path: Path) -> None:
    first = store.put_evidence("crop_jpeg", b"jpeg bytes")
    second = store.put_evidence("crop_jpeg", b"jpeg bytes")
    assert first == second
    files = [p for p in (tmp_path / "data" / "evidence").rglob("*") if p.is_file()]
    assert len(files) == 1


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-10]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b"X" + p.read_bytes()[1:]), id="altered"),
        pytest.param(lambda p: p.write_bytes(b""), id="emptied"),
    ],
)
def test_damaged_evidence_is_detected(store: IncidentStore, tmp_path: Path, damage: object) -> None:
    evidence = store.put_evidence("crop_jpeg", os.urandom(2000))
    damage(evidence_file(tmp_path / "data", evidence.sha256))  # type: ignore[operator]

    with pytest.raises(EvidenceCorrupt):
        store.open_evidence(evidence.sha256)
    assert any(evidence.sha256 in problem for problem in store.integrity_check())


def test_missing_evidence(store: IncidentStore, tmp_path: Path) -> None:
    with pytest.raises(EvidenceMissing, match="never stored"):
        store.open_evidence("0" * 64)
    evidence = store.put_evidence("crop_jpeg", b"soon gone")
    evidence_file(tmp_path / "data", evidence.sha256).unlink()
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
    store: IncidentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreFull, match="disk full"):
        store.put_evidence("crop_jpeg", b"data")
    monkeypatch.undo()

    assert [p for p in (tmp_path / "data" / "evidence").rglob("*") if p.is_file()] == []
    assert store.integrity_check() == []
