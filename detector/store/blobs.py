"""Evidence files on disk, named by content hash: ``<data_dir>/evidence/ab/abcdef....jpg``.

Files are written atomically (temporary file, fsync, rename, fsync of the directory), so a crash leaves either
the whole file or none, never a torn one under its final name.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

from detector.store.errors import EvidenceCorrupt, EvidenceMissing, InvalidQuery, StoreFull
from detector.types import EvidenceKind

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_EXTENSIONS = {EvidenceKind.FRAME_JPEG: ".jpg", EvidenceKind.CROP_JPEG: ".jpg"}


def check_sha256(sha256: str) -> None:
    if not _SHA256_HEX.fullmatch(sha256):
        raise InvalidQuery(f"evidence hash must be 64 lower-case hex digits, got {sha256!r}")


def check_kind(kind: str) -> EvidenceKind:
    """The kind as an ``EvidenceKind``; ``InvalidQuery`` naming the known kinds when it is none of them."""
    try:
        return EvidenceKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in EvidenceKind)
        raise InvalidQuery(f"evidence kind must be one of {known}, got {kind!r}") from None


def evidence_uri(sha256: str, kind: EvidenceKind) -> str:
    """The reference put in events, the same for every backend: ``evidence/ab/abcdef....jpg`` (for SQLite
    also the file's path relative to the data directory)."""
    return f"evidence/{sha256[:2]}/{sha256}{_EXTENSIONS[kind]}"


def verified(sha256: str, data: bytes, size_bytes: int, where: str) -> io.BytesIO:
    """``data`` as a readable stream once it matches the size and hash it was stored with; else
    ``EvidenceCorrupt``, saying ``where`` the bytes were found ("on disk", "in the database")."""
    if len(data) != size_bytes:
        raise EvidenceCorrupt(f"evidence {sha256} has {len(data)} bytes {where}, {size_bytes} were stored")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EvidenceCorrupt(f"evidence {sha256} does not match its hash; its bytes {where} were altered")
    return io.BytesIO(data)


# A staged evidence file is published within milliseconds; one this old was left by a crash.
STAGED_MAX_AGE_S = 3600.0


class EvidenceFiles:
    """Content-addressed files under one root; the database keeps the index, this class only the bytes."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._root = data_dir / "evidence"
        self._root.mkdir(parents=True, exist_ok=True)

    def relative_path(self, sha256: str, kind: EvidenceKind) -> str:
        """Path relative to the data directory, with '/' separators; this is also the evidence URI."""
        return evidence_uri(sha256, kind)

    def stage(self, data: bytes) -> Path:
        """Write ``data`` to a synced temporary file in the evidence root; ``publish`` moves it into place."""
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self._root, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as tmp:
                    tmp.write(data)
                    tmp.flush()
                    os.fsync(tmp.fileno())
            except BaseException:
                os.unlink(tmp_name)
                raise
        except OSError as exc:
            raise _disk_error(exc, "writing evidence") from exc
        return Path(tmp_name)

    def publish(self, staged: Path, relative_path: str) -> None:
        target = self._data_dir / relative_path
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(staged, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise _disk_error(exc, "publishing evidence") from exc

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    def read_verified(self, sha256: str, relative_path: str, size_bytes: int) -> io.BytesIO:
        path = self._data_dir / relative_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise EvidenceMissing(f"evidence {sha256} is indexed but its file {relative_path} is gone") from None
        return verified(sha256, data, size_bytes, "on disk")

    def remove(self, relative_path: str) -> None:
        (self._data_dir / relative_path).unlink(missing_ok=True)

    def sweep_staged(self, older_than_s: float = STAGED_MAX_AGE_S) -> None:
        """Remove temporary files left by a crash between ``stage`` and ``publish``. Only those older than
        ``older_than_s``: another process opening the same store (``detector connectors status`` beside a running
        service) must not delete a file the service is writing right now."""
        cutoff = time.time() - older_than_s
        for leftover in self._root.glob(".tmp-*"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)
            except FileNotFoundError:
                continue


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_error(exc: OSError, action: str) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(f"disk full while {action}: {exc}")
    return exc
