"""Every relative link in the README and docs/ points at a file that is in the repository, so the docs work in a
plain clone (no link into ../shared, the read-only data checkout beside the repo in development)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _tracked_or_present(path: Path) -> bool:
    """In the repository: committed, or new in this working tree and not ignored."""
    if not path.exists():
        return False
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO, check=False).returncode == 0
    return not ignored


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_to_files_in_the_repository(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto, an anchor on the same page
        resolved = (doc.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(REPO) or not _tracked_or_present(resolved):
            broken.append(target)
    assert not broken, f"{doc.name}: links that do not resolve inside the repository: {broken}"


def test_the_docs_the_readme_promises_are_there() -> None:
    for name in ("ARCHITECTURE.md", "EVENTS.md"):
        assert (REPO / "docs" / name).is_file()
