"""Wake-ups from appends committed by other processes: LISTEN on the log's channel, on a thread of its own.

Each append sends ``NOTIFY <channel>, '<last sequence>'`` inside its transaction; PostgreSQL delivers it only
once the transaction is committed and visible, in commit order. The listener hands the sequence to the store's
``AppendNotifier``, so a follower in this process wakes for an event written anywhere. After a lost connection
it reconnects and publishes the log's end, so nothing committed meanwhile goes unnoticed.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from typing import Any

import psycopg
from psycopg import sql

from detector.store.notify import AppendNotifier
from detector.store.postgres_queries import READ_LOG_END

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5


class LogListener:
    """Feeds the commits of every writer of one log to ``notifier``; ``stop`` ends it at once."""

    def __init__(self, url: str, channel: str, notifier: AppendNotifier, retry_interval_s: float = 1.0) -> None:
        self._url = url
        self._channel = channel
        self._notifier = notifier
        self._retry_interval_s = retry_interval_s
        self._stopping = threading.Event()
        # A byte on this pipe wakes the thread from select() when the store closes.
        self._wake_r, self._wake_w = os.pipe()
        self._conn = self._connect()  # the first connection fails the store's opening, not a background thread
        self._thread = threading.Thread(target=self._run, name=f"listen {channel}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _connect(self) -> psycopg.Connection[Any]:
        # A bounded connect: stop() must not wait on a server that does not answer.
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = self._conn
        while not self._stopping.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                    row = conn.execute(READ_LOG_END).fetchone()  # commits missed while disconnected
                    self._publish(0 if row is None else int(row[0]))
                self._drain(conn)
            except psycopg.Error as exc:
                log.warning("lost the connection that listens for appends (%s); retrying", exc)
                if conn is not None:
                    conn.close()
                conn = None
                self._stopping.wait(self._retry_interval_s)
        if conn is not None:
            conn.close()

    def _drain(self, conn: psycopg.Connection[Any]) -> None:
        ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], 60.0)
        if conn.fileno() in ready:
            for notify in conn.notifies(timeout=0.0):
                if notify.payload.isdigit():
                    self._publish(int(notify.payload))

    def _publish(self, last_sequence: int) -> None:
        # This process's own appends were published by the writer already; callbacks run once per commit.
        if last_sequence > self._notifier.last_sequence:
            self._notifier.publish(last_sequence)
