"""``python -m detector.bench throughput ...``: the same as ``detector bench throughput ...``."""

from __future__ import annotations

import argparse
import sys

from detector.bench.cli import add_commands, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m detector.bench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
