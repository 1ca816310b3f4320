"""Structured logging: one JSON object per line, with any ``extra={...}`` fields merged in.

With JSON on, every line the process writes should be JSON, so other writers are brought in:

- Python ``warnings`` go through logging (``py.warnings``);
- ultralytics' logger, which prints plain lines to stdout with a handler of its own, propagates to ours instead;
- onnxruntime's default logger reports errors only (its warnings are about graph optimisations);
- with ``native=True`` (``detector serve``), file descriptor 2 is a pipe read by a thread that turns each line
  written there (gRPC core, onnxruntime, libpng, OpenCV, anything in C/C++ or a stray ``print(file=sys.stderr)``)
  into a JSON entry of logger ``stderr``, and the handler writes to the original stderr.

What cannot be captured: lines written to stdout by native code (none seen in `detector serve`), and native
lines written after the capture ends at exit or when the process is killed by a signal such as SIGKILL or SIGSEGV
(the reader thread dies with it; ``faulthandler``'s dump is then lost, so run with ``logging.json_format: false``
to debug a crash).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str, json_format: bool, native: bool = False) -> None:
    """Log to stderr at ``level``; ``native`` (JSON only) also wraps lines that native code writes to stderr."""
    stream: TextIO = sys.stderr
    if json_format and native:
        stream = _capture_native_stderr()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter() if json_format else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    if json_format:
        for name in LIBRARY_LOGGERS:
            _adopt(name)
        _quiet_onnxruntime()


LIBRARY_LOGGERS = ("ultralytics",)


class _Adopted(logging.Logger):
    """A library logger that keeps propagating to ours, whatever handlers the library adds on import."""

    def addHandler(self, hdlr: logging.Handler) -> None:
        if not isinstance(hdlr, logging.StreamHandler):
            super().addHandler(hdlr)

    @property
    def propagate(self) -> bool:
        return True

    @propagate.setter
    def propagate(self, value: bool) -> None:
        pass


def _adopt(name: str) -> None:
    existing = logging.Logger.manager.loggerDict.get(name)
    if isinstance(existing, logging.Logger):  # already imported: take its handlers away
        existing.handlers[:] = [h for h in existing.handlers if not isinstance(h, logging.StreamHandler)]
        existing.propagate = True
        return
    previous = logging.getLoggerClass()
    logging.setLoggerClass(_Adopted)
    try:
        logging.getLogger(name)
    finally:
        logging.setLoggerClass(previous)


def _quiet_onnxruntime() -> None:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        return
    onnxruntime.set_default_logger_severity(3)  # errors and worse; warnings are about graph optimisations


_native_lock = threading.Lock()
_native_original: TextIO | None = None


def _capture_native_stderr() -> TextIO:
    """Point fd 2 at a pipe whose lines are logged as JSON; return a stream on the original stderr."""
    global _native_original
    with _native_lock:
        if _native_original is not None:
            return _native_original
        sys.stderr.flush()
        original_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        original = os.fdopen(original_fd, "w", buffering=1, encoding="utf-8", errors="replace")
        _native_original = original
    log = logging.getLogger("stderr")

    def pump() -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                text = line.rstrip("\r\n")
                if text.strip():
                    log.warning(text, extra={"native": True})

    reader = threading.Thread(target=pump, name="stderr-to-json", daemon=True)
    reader.start()

    def restore(*_: Any) -> None:
        """At exit: give fd 2 back (closing the pipe's last writer), then let the reader log what is left."""
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(original_fd, 2)
        reader.join(timeout=5)

    atexit.register(restore)
    return original
