"""Generate the Python gRPC code for protos/ into detector/api/_gen (committed; a test checks it is current).

Run: ``python -m detector.api.codegen``. protoc writes imports as ``from streetwatch.v1 import x_pb2``; we
rewrite them to the package path so that the generated code needs no ``sys.path`` changes.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "protos"
GEN_DIR = Path(__file__).resolve().parent / "_gen"
PACKAGE = "detector.api._gen"

_IMPORT = re.compile(r"^from streetwatch\.v1 import ", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Write generated modules under ``out_dir`` and return them (sorted)."""
    from grpc_tools import protoc  # dev dependency only

    protos = sorted(PROTO_ROOT.glob("streetwatch/v1/*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed; see its message above")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        written = []
        for src in sorted(Path(tmp).rglob("*.py*")):
            dst = out_dir / src.relative_to(tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(_IMPORT.sub(f"from {PACKAGE}.streetwatch.v1 import ", src.read_text()))
            written.append(dst)
    for package in {out_dir, *(p.parent for p in written), out_dir / "streetwatch"}:
        init = package / "__init__.py"
        init.write_text("")
        written.append(init)
    return sorted(set(written))


def main() -> int:
    for path in generate(GEN_DIR):
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
