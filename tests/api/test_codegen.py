"""The committed gRPC code must match protos/: regenerate into a temp dir and compare byte for byte."""

from __future__ import annotations

from pathlib import Path

from detector.api.codegen import GEN_DIR, generate


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in generate(tmp_path / "_gen")}
    fresh = {Path(*p.parts[1:]): data for p, data in fresh.items()}
    committed = {p.relative_to(GEN_DIR): p.read_bytes() for p in GEN_DIR.rglob("*") if p.is_file()}
    committed = {p: d for p, d in committed.items() if "__pycache__" not in p.parts}
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make proto`"
    stale = [str(p) for p in fresh if fresh[p] != committed[p]]
    assert not stale, f"generated code is stale for {stale}: run `make proto` and commit"
