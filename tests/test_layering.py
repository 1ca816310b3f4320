"""The wire format stays in ``detector/api``: no other module of the service, and no benchmark, imports generated
proto code (``detector.api._gen``, any ``*_pb2`` / ``*_pb2_grpc`` module, e.g. grpc_health's) or protobuf itself.
They speak the internal types (``detector.types``, ``detector.store.model``) through the clients in
``detector/api`` (``IngestClient.send``, ``IncidentsClient``, ``HealthProbe``). Tests are exempt: they test the
wire API.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED = (REPO / "detector", REPO / "benchmarks")
EXEMPT = REPO / "detector" / "api"


def _is_wire(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return (
        module == "detector.api._gen"
        or module.startswith("detector.api._gen.")
        or module == "google.protobuf"
        or module.startswith("google.protobuf.")
        or last.endswith(("_pb2", "_pb2_grpc"))
    )


def imported_modules(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) for each module ``source`` imports, relative imports resolved against ``package``,
    ``from m import x`` giving both ``m`` and ``m.x`` (x may be a module)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _package_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1])


def _checked_files() -> list[Path]:
    return sorted(
        path for root in CHECKED for path in root.rglob("*.py") if EXEMPT not in path.parents and path != EXEMPT
    )


def test_no_module_outside_detector_api_imports_generated_proto_code() -> None:
    offenders = sorted(
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _checked_files()
        for line, module in imported_modules(path.read_text(encoding="utf-8"), _package_of(path))
        if _is_wire(module)
    )
    assert not offenders, "generated proto code outside detector/api:\n" + "\n".join(offenders)


def test_the_guard_walks_the_service_and_the_benchmarks_but_not_detector_api() -> None:
    files = {path.relative_to(REPO).as_posix() for path in _checked_files()}
    assert {"detector/cli.py", "detector/demo/run.py", "detector/bench/incident.py", "benchmarks/soak/run.py"} <= files
    assert not any(f.startswith("detector/api/") for f in files)


@pytest.mark.parametrize(
    ("source", "wire"),
    [
        ("import detector.api._gen.streetwatch.v1.ingest_pb2", True),
        ("from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb", True),
        ("from detector.api import _gen", True),
        ("from ..api._gen.streetwatch.v1 import ingest_pb2_grpc", True),
        ("from ..api import _gen", True),
        ("from grpc_health.v1 import health_pb2", True),
        ("from google.protobuf.json_format import MessageToDict", True),
        ("from google import protobuf", True),
        ("from detector.api.client import IngestClient", False),
        ("from ..api.incidents_client import IncidentsClient", False),
        ("import grpc", False),
    ],
)
def test_the_guard_catches_every_form_of_import(source: str, wire: bool) -> None:
    modules = [module for _, module in imported_modules(source, "detector.bench")]
    assert any(_is_wire(m) for m in modules) is wire, modules


def test_relative_imports_resolve_from_the_files_package() -> None:
    assert _package_of(REPO / "detector" / "bench" / "incident.py") == "detector.bench"
    assert [m for _, m in imported_modules("from . import stats", "detector.bench")] == [
        "detector.bench",
        "detector.bench.stats",
    ]
    assert [m for _, m in imported_modules("from ..api import client", "detector.bench")] == [
        "detector.api",
        "detector.api.client",
    ]
