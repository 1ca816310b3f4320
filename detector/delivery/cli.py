"""`detector connectors status` and `detector connectors replay`: the delivery connectors as the store sees them,
and redelivery from the command's own process.

Both read the service's settings as `detector serve` does (``--config``, ``--set``) and open its store directly.
``status`` shows what the store knows: each connector's committed offset, its lag in events and in seconds (now
minus ``last_seen`` of the oldest matching event after the offset), and its dead letters; the last error is known
only to a running service. ``replay`` delivers events again with the connector built from the settings; it never
changes the connector's committed offset (the running service keeps its own position), so a peer sees the
replayed events again, with the same ``event_id`` (Idempotency-Key, Nats-Msg-Id).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm import tqdm

from detector.cli_help import add_settings_args
from detector.delivery.base import Connector, PermanentError, RetryableError, build_connector
from detector.delivery.runner import consumer_name
from detector.delivery.settings import DeliveryFilter, DeliverySettings, validate_connector
from detector.store.base import IncidentStore, open_store
from detector.store.model import DeadLetter
from detector.types import IncidentEvent

LAST_ERROR_NOTE = "only a running service knows (see streetwatch_delivery_* metrics)"
READ_BATCH = 1000


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    connectors = commands.add_parser(
        "connectors",
        help="delivery connectors: offsets, lag and dead letters; replay events",
        epilog="example:\n  detector connectors status --config service.yaml --dead-letters",
    )
    sub = connectors.add_subparsers(dest="connectors_command", required=True)
    status = sub.add_parser(
        "status",
        help="each connector's committed offset, lag and dead letters, from the store",
        description="Lag in events is the log's last sequence minus the committed offset; lag in seconds is now "
        "minus last_seen of the oldest event after the offset that the connector's filter wants (the same "
        "measure as the streetwatch_delivery_lag_seconds metric).",
        epilog="example:\n  detector connectors status --config service.yaml --dead-letters",
    )
    _config_args(status)
    status.add_argument("--dead-letters", action="store_true", help="list each dead letter, not only the count")
    status.add_argument("--json", action="store_true", help="print one JSON object per connector")
    replay = sub.add_parser(
        "replay",
        help="deliver a connector's events (or dead letters) again, from this process",
        description="Delivers the events from --from-sequence to --to-sequence that the connector's filter "
        "wants, in log order, with the connector built from the settings. The committed offset is not changed; "
        "the peer sees the events again with the same event_id. A retryable failure (the peer away) stops the "
        "replay; a refused event is counted as failed and the replay goes on.",
        epilog="example:\n  detector connectors replay city-hook --from-sequence 1200 --config service.yaml",
    )
    replay.add_argument("name", help="the connector's name (delivery.connectors[].name)")
    replay.add_argument(
        "--from-sequence", type=int, metavar="N", help="first sequence replayed (required without --dead-letters)"
    )
    replay.add_argument("--to-sequence", type=int, metavar="M", help="last sequence replayed (default: the log's end)")
    replay.add_argument(
        "--dead-letters",
        action="store_true",
        help="redeliver the connector's dead letters (within the range, if given); each one delivered is removed",
    )
    replay.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _config_args(replay)


def _config_args(p: argparse.ArgumentParser) -> None:
    add_settings_args(
        p,
        config_help="the service's YAML settings file, as for detector serve",
        set_help="override one setting, as for detector serve (repeatable)",
    )


class CommandError(Exception):
    """What the user must fix (exit 2)."""


@dataclass
class ConnectorReport:
    name: str
    kind: str
    offset: int
    log_end: int
    lag_events: int
    lag_s: float  # now minus last_seen of the oldest wanted event after the offset; 0 when there is none
    oldest_sequence: int | None  # that event's sequence
    dead_letter_count: int
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def as_dict(self, with_letters: bool) -> dict[str, Any]:
        data = asdict(self)
        data["dead_letters"] = [asdict(d) for d in self.dead_letters] if with_letters else None
        data["last_error"] = None
        data["last_error_note"] = LAST_ERROR_NOTE
        return {k: v for k, v in data.items() if v is not None or k == "last_error"}

    def text(self, with_letters: bool) -> str:
        lag = f"lag {self.lag_events} events"
        if self.oldest_sequence is not None:
            lag += f", {self.lag_s:.1f} s (oldest undelivered #{self.oldest_sequence})"
        lines = [
            f"{self.name} ({self.kind}): offset {self.offset} of {self.log_end}, {lag}",
            f"  dead letters: {self.dead_letter_count}",
        ]
        if with_letters:
            lines += [
                f"    #{d.event_sequence} {d.event_id} attempts {d.attempts}: {d.reason}" for d in self.dead_letters
            ]
        lines.append(f"  last error: {LAST_ERROR_NOTE}")
        return "\n".join(lines)


def connector_report(store: IncidentStore, entry: dict[str, Any], now: float) -> ConnectorReport:
    """What the store knows of one ``delivery.connectors[]`` entry."""
    settings = validate_connector(entry)
    consumer = consumer_name(settings.name)
    offset = store.get_offset(consumer)
    log_end = store.last_sequence()
    oldest = _first_wanted(store, settings.filter, offset, log_end)
    letters = store.dead_letters(consumer)
    return ConnectorReport(
        name=settings.name,
        kind=settings.kind,
        offset=offset,
        log_end=log_end,
        lag_events=max(0, log_end - offset),
        lag_s=0.0 if oldest is None else max(0.0, now - oldest.last_seen_ts),
        oldest_sequence=None if oldest is None else oldest.sequence,
        dead_letter_count=len(letters),
        dead_letters=letters,
    )


def _first_wanted(store: IncidentStore, wanted: DeliveryFilter, after: int, log_end: int) -> IncidentEvent | None:
    while after < log_end:
        batch = store.read_events(after, READ_BATCH)
        if not batch:
            return None
        for event in batch:
            if event.sequence > log_end:
                return None
            if wanted.matches(event):
                return event
        after = batch[-1].sequence
    return None


@dataclass
class ReplaySummary:
    delivered: int = 0
    skipped: int = 0  # not wanted by the connector's filter
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (sequence, event_id, reason), refused
    stopped: tuple[int, str] | None = None  # (sequence, reason): a retryable failure ended the replay
    missing: list[int] = field(default_factory=list)  # dead letters whose event is no longer in the log

    def text(self, name: str, what: str, again: str) -> str:
        lines = [
            f"replay {name}: {what}: delivered {self.delivered}, failed {len(self.failed)}, "
            f"skipped by filter {self.skipped}"
        ]
        lines += [f"  failed #{seq} {event_id}: {reason}" for seq, event_id, reason in self.failed]
        lines += [f"  dead letter #{seq}: the event is no longer in the log (kept)" for seq in self.missing]
        if self.stopped is not None:
            seq, reason = self.stopped
            lines.append(f"  stopped at #{seq}: {reason}; run again{again.format(seq=seq)} when the peer is back")
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None and not self.missing


async def replay_range(
    store: IncidentStore,
    connector: Connector,
    wanted: DeliveryFilter,
    first: int,
    last: int,
    progress: tqdm[Any] | None = None,
) -> ReplaySummary:
    """Deliver the wanted events ``first``..``last`` (inclusive) in log order, each tried once."""
    summary = ReplaySummary()
    after = first - 1
    while after < last:
        batch = await asyncio.to_thread(store.read_events, after, min(READ_BATCH, last - after))
        if not batch:
            break
        for event in batch:
            if progress is not None:
                progress.update()
            after = event.sequence
            if not wanted.matches(event):
                summary.skipped += 1
                continue
            await _send(connector, event, summary)
            if summary.stopped is not None:
                return summary
    return summary


async def replay_dead_letters(
    store: IncidentStore, connector: Connector, first: int, last: int, progress: tqdm[Any] | None = None
) -> ReplaySummary:
    """Redeliver the connector's dead letters within ``first``..``last``; remove each one delivered."""
    consumer = consumer_name(connector.name)
    summary = ReplaySummary()
    letters = [d for d in await asyncio.to_thread(store.dead_letters, consumer) if first <= d.event_sequence <= last]
    if progress is not None:
        progress.reset(total=len(letters))
    for letter in letters:
        found = await asyncio.to_thread(store.read_events, letter.event_sequence - 1, 1)
        if progress is not None:
            progress.update()
        if not found or found[0].sequence != letter.event_sequence:
            summary.missing.append(letter.event_sequence)
            continue
        if await _send(connector, found[0], summary):
            await asyncio.to_thread(store.remove_dead_letter, consumer, letter.event_sequence)
        if summary.stopped is not None:
            return summary
    return summary


async def _send(connector: Connector, event: IncidentEvent, summary: ReplaySummary) -> bool:
    """Try one event once; count it in ``summary`` (a retryable failure stops the replay). True when taken."""
    try:
        await connector.deliver(event)
    except RetryableError as exc:
        summary.stopped = (event.sequence, exc.reason)
        return False
    except PermanentError as exc:
        summary.failed.append((event.sequence, event.event_id, exc.reason))
        return False
    summary.delivered += 1
    return True


def run(args: argparse.Namespace) -> int:
    command = f"detector connectors {args.connectors_command}"
    try:
        delivery, store = _load(args)
        with store:
            if args.connectors_command == "status":
                return _status(args, delivery, store)
            return _replay(args, delivery, store)
    except CommandError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2


def _load(args: argparse.Namespace) -> tuple[DeliverySettings, IncidentStore]:
    """The delivery section and the store, read as `detector serve` reads them."""
    from detector.config import ConfigError, load_config

    try:
        config = load_config(args.config, overrides=args.overrides)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    if config.store.backend == "sqlite" and not config.store.data_dir.is_dir():
        raise CommandError(f"no store at {config.store.data_dir} (store.data_dir); pass the service's --config")
    return config.delivery, open_store(config.store)


def _status(args: argparse.Namespace, delivery: DeliverySettings, store: IncidentStore) -> int:
    entries = delivery.connectors
    if not entries:
        print("no delivery connectors configured (delivery.connectors)")
        return 0
    now = time.time()
    for entry in entries:
        report = connector_report(store, entry, now)
        with_letters = args.dead_letters
        print(json.dumps(report.as_dict(with_letters)) if args.json else report.text(with_letters))
    return 0


def _replay(args: argparse.Namespace, delivery: DeliverySettings, store: IncidentStore) -> int:
    entries = {str(entry.get("name")): entry for entry in delivery.connectors}
    entry = entries.get(args.name)
    if entry is None:
        known = ", ".join(sorted(entries)) or "none configured"
        raise CommandError(f"no connector named {args.name!r} in delivery.connectors (known: {known})")
    log_end = store.last_sequence()
    first = args.from_sequence
    if first is None:
        if not args.dead_letters:
            raise CommandError("--from-sequence N is required (or --dead-letters to redeliver the dead letters)")
        first = 1
    last = log_end if args.to_sequence is None else args.to_sequence
    if first < 1 or last < first or last > log_end:
        raise CommandError(f"the range #{first}..#{last} is not within the log #1..#{log_end}")
    connector = build_connector(entry)
    wanted = validate_connector(entry).filter
    with tqdm(total=last - first + 1, unit="event", disable=not args.progress, file=sys.stderr) as progress:
        summary = asyncio.run(_replay_with(store, connector, wanted, first, last, args.dead_letters, progress))
    what = "dead letters" if args.dead_letters else "events"
    again = "" if args.dead_letters else " with --from-sequence {seq}"
    print(summary.text(args.name, f"{what} #{first}..#{last}", again))
    return 0 if summary.ok else 1


async def _replay_with(
    store: IncidentStore,
    connector: Connector,
    wanted: DeliveryFilter,
    first: int,
    last: int,
    dead_letters: bool,
    progress: tqdm[Any],
) -> ReplaySummary:
    try:
        try:
            await connector.start()
        except RetryableError as exc:
            return ReplaySummary(stopped=(first, f"cannot start: {exc.reason}"))
        if dead_letters:
            return await replay_dead_letters(store, connector, first, last, progress)
        return await replay_range(store, connector, wanted, first, last, progress)
    finally:
        await connector.close()
