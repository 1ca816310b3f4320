"""How `detector --help` reads: every option's default, one example per command, no internal names.

``Parser`` is the parser class of the whole command tree (sub-commands inherit it, including those that
detector/sim, bench and gateway add), so each one formats its help with :class:`HelpFormatter`. After the tree is
built, :func:`finish` gives every command without an epilog its example from :data:`EXAMPLES` and names the
sub-command slots by their choices (``{list,show}``) instead of their ``dest`` in errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXAMPLES: dict[str, str] = {
    "detector": "detector serve --config service.yaml        # then: detector subscribe --json",
    "detector serve": "detector serve --config service.yaml --set server.metrics_port=9464",
    "detector replay": "detector replay clip.mp4 --source-id cam-7 --fps 5 --mode live --realtime",
    "detector srt": "detector srt inspect flight.SRT",
    "detector srt inspect": "detector srt inspect DJI_0001.SRT DJI_0002.SRT --json",
    "detector subscribe": "detector subscribe --consumer city-cases --ack --json",
    "detector incidents": "detector incidents list --state open",
    "detector incidents list": "detector incidents list --state open --target 127.0.0.1:50051",
    "detector incidents show": "detector incidents show 3f2b6c1e-0d4a-4c55-9e55-1f0c1a2b3c4d",
    "detector incidents evidence": "detector incidents evidence 3f2b6c1e-0d4a-4c55-9e55-1f0c1a2b3c4d",
    "detector incidents update-case": "detector incidents update-case 3f2b6c1e --state REJECTED --note 'parked cart'",
    "detector auth": "detector auth new-token --name gate-7 --role ingest --source cam-7",
    "detector auth new-token": "detector auth new-token --name city-cases --role subscribe",
    "detector train": "detector train --config weights/train.yaml",
    "detector eval": "detector eval --weights weights/streetwatch-v5.pt --data .cache/train-v5/dataset/data.yaml",
    "detector demo": "detector demo --out demo-data --minutes 4",
    "detector sim": "detector sim render --scenario market-street --out /tmp/ms",
    "detector sim render": "detector sim render --scenario drone-patrol --out /tmp/dp --seed 11",
    "detector sim score": "detector sim score --truth /tmp/ms/truth.json --events events.jsonl",
    "detector sim composites": "detector sim composites --out /tmp/comp --images 100",
    "detector sim export-yolo": "detector sim export-yolo --scenario-dir /tmp/ms --out /tmp/ms-yolo",
    "detector sim realism": "detector sim realism --scenario-dir /tmp/ms --every-s 2 --out /tmp/ms-realism",
    "detector sim sprites": "detector sim sprites --min-conf 0.4",
    "detector bench": "detector bench throughput --no-baseline",
    "detector bench throughput": "detector bench throughput --no-baseline --out /tmp/bench",
    "detector bench incident-latency": "detector bench incident-latency --scenario-dir /tmp/ms --speed 0",
    "detector bench accuracy": "detector bench accuracy --data .cache/train-v5/dataset/data.yaml",
    "detector bench all": "detector bench all --scenario-dir /tmp/ms",
    "detector gateway": "detector gateway --target 127.0.0.1:50051 --camera cam-7=rtsp://10.1.0.7:554/stream1",
    "detector store": "detector store migrate --config service.yaml",
    "detector store migrate": "detector store migrate --url postgresql://streetwatch@db.internal/streetwatch",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds ``(default: X)`` to each option whose help does not mention its default, and leaves out hidden
    aliases (option strings listed in ``action.hidden_aliases``, see :func:`hide_aliases`)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            action.help is argparse.SUPPRESS
            or "default" in text.lower()
            or not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default == []
        ):
            return action.help
        return f"{text} (default: %(default)s)".strip()

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "hidden_aliases", ())
        if not hidden:
            return super()._format_action_invocation(action)
        shown = argparse.Action(
            [s for s in action.option_strings if s not in hidden],
            action.dest,
            nargs=action.nargs,
            metavar=action.metavar,
        )
        return super()._format_action_invocation(shown)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def add_settings_args(parser: argparse.ArgumentParser, config_help: str, set_help: str) -> None:
    """The service's settings flags, the same for every command that reads them: ``--config FILE`` and repeatable
    ``--set SECTION.KEY=VALUE`` (into ``args.overrides``), as ``detector.config.load_config`` takes them."""
    parser.add_argument("--config", type=Path, help=config_help)
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE", help=set_help
    )


def hide_aliases(action: argparse.Action, *aliases: str) -> argparse.Action:
    """Keep old spellings of an option working without showing them in ``--help``."""
    action.hidden_aliases = frozenset(aliases)  # type: ignore[attr-defined]
    return action


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every sub-command's parser below it, each once (aliases share a parser)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for child in action.choices.values():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield from walk(child)


def finish(parser: argparse.ArgumentParser) -> None:
    for each in walk(parser):
        if each.epilog is None and each.prog in EXAMPLES:
            each.epilog = f"example:\n  {EXAMPLES[each.prog]}"
        for action in each._actions:
            if isinstance(action, argparse._SubParsersAction) and action.metavar is None:
                names = [name for name, child in action.choices.items() if child.prog.endswith(f" {name}")]
                action.metavar = "{" + ",".join(names) + "}"
