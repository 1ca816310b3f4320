"""What `detector` says when something is wrong, and what its help and logs look like (issue 20, part 8-10).

Real `detector serve` processes where the claim is about the command; the service in-process for metrics."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from detector import __version__
from detector.cli import build_parser
from detector.cli_help import HelpFormatter, walk
from detector.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def detector(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detector.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port with a listener on it for the whole test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("setting", ["server.port", "server.metrics_port"])
def test_a_port_in_use_is_one_line_naming_the_setting_and_exit_2_before_the_model_loads(
    setting: str, taken_port: int, tmp_path: Path
) -> None:
    grpc_port = taken_port if setting == "server.port" else 0
    proc = detector(
        "serve",
        "--port",
        str(grpc_port),
        "--set",
        f"server.metrics_port={taken_port if setting == 'server.metrics_port' else 0}",
        "--set",
        f"store.data_dir={tmp_path / 'data'}",
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"detector serve: {setting} {taken_port} on 127.0.0.1 is in use: "), lines[0]
    assert not (tmp_path / "data").exists(), "nothing was opened before the ports were checked"


def test_two_settings_on_one_port_are_reported() -> None:
    port = free_port()
    proc = detector("serve", "--port", str(port), "--set", f"server.metrics_port={port}")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"detector serve: server.metrics_port {port} on 127.0.0.1 is in use: server.port names the same port"
    ]


def test_version() -> None:
    proc = detector("--version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"detector {__version__}")


def test_every_command_help_shows_its_defaults_and_an_example() -> None:
    parsers = list(walk(build_parser()))
    assert len(parsers) > 20
    for parser in parsers:
        text = parser.format_help()
        assert "example" in text.lower() and "\n  detector " in text, f"{parser.prog} --help has no example"
        for action in parser._actions:
            if action.help is argparse.SUPPRESS or not action.option_strings or action.dest == "help":
                continue
            if action.default in (None, False, True, [], argparse.SUPPRESS):
                continue
            shown = HelpFormatter(parser.prog)._get_help_string(action) or ""
            assert "default" in shown.lower(), f"{parser.prog} {action.option_strings[0]}: default not shown"


def test_serve_help_from_the_command_line_shows_the_embedded_defaults() -> None:
    proc = detector("serve", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "(default: 127.0.0.1)" in text and "(default: 50051)" in text
    assert "example: detector serve" in text


def test_a_missing_sub_command_names_the_choices_not_an_internal_name() -> None:
    proc = detector("incidents")
    assert proc.returncode == 2
    assert "incidents_command" not in proc.stderr
    assert "{list,show" in proc.stderr


def test_the_scenario_folder_option_is_scenario_dir_and_the_old_spelling_still_works() -> None:
    parser = build_parser()
    new = parser.parse_args(["bench", "incident-latency", "--scenario-dir", "/tmp/s"])
    old = parser.parse_args(["bench", "incident-latency", "--scenario", "/tmp/s"])
    assert new.scenario == old.scenario == Path("/tmp/s")
    bench = next(p for p in walk(parser) if p.prog == "detector bench incident-latency")
    assert "--scenario-dir" in bench.format_help() and "--scenario " not in bench.format_help()


def test_a_mistyped_key_gets_did_you_mean_and_the_layer_it_came_from(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("server:\n  max_mesage_bytes: 2048\n")
    with pytest.raises(ConfigError) as from_file:
        load_config(config, environ={})
    assert "server.max_mesage_bytes: unknown setting; did you mean 'max_message_bytes'?" in str(from_file.value)
    assert f"[from config file {config}]" in str(from_file.value)
    with pytest.raises(ConfigError) as from_flag:
        load_config(None, environ={}, overrides=["servr.port=1"])
    assert "servr: unknown setting; did you mean 'server'? [from --set servr.port=...]" in str(from_flag.value)
    with pytest.raises(ConfigError) as bad_value:
        load_config(config, environ={"STREETWATCH__SERVER__PORT": "many"})
    assert "server.port: " in str(bad_value.value)
    assert "[from environment variable STREETWATCH__SERVER__PORT]" in str(bad_value.value)


def test_an_environment_typo_is_reported_as_coming_from_the_environment() -> None:
    proc = detector("serve", "--print-config", env={"STREETWATCH__BATCHING__MAX_BACH": "3"})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "detector serve: invalid settings:",
        "  batching.max_bach: unknown setting; did you mean 'max_batch'? "
        "[from environment variable STREETWATCH__BATCHING__MAX_BACH]",
    ]


def _lines(stream: IO[str], out: queue.Queue[tuple[str, str | None]], name: str) -> None:
    for line in stream:
        out.put((name, line))
    out.put((name, None))


def test_every_line_of_a_json_serve_run_is_json(tmp_path: Path) -> None:
    """The onnx backend starting (ultralytics and onnxruntime talk), metrics on, SIGTERM once serving."""
    metrics_port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "detector.cli",
            "serve",
            "--port",
            "0",
            "--device",
            "cpu",
            "--set",
            "model.backend=onnx",
            "--set",
            f"server.metrics_port={metrics_port}",
            "--set",
            f"store.data_dir={tmp_path / 'data'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(proc.stdout, lines, "stdout"), daemon=True),
        threading.Thread(target=_lines, args=(proc.stderr, lines, "stderr"), daemon=True),
    ]
    for reader in readers:
        reader.start()
    seen: list[tuple[str, str]] = []
    open_streams = 2
    try:
        while open_streams:
            name, line = lines.get(timeout=300)  # a guard against a hang, not a measurement
            if line is None:
                open_streams -= 1
                continue
            seen.append((name, line))
            if '"msg": "status serving"' in line:
                proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    entries = []
    for name, line in seen:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a {name} line is not JSON: {line!r}")
    messages = [entry["msg"] for entry in entries]
    assert "status serving" in messages and "stopped" in messages
    assert f"metrics at http://127.0.0.1:{metrics_port}/metrics" in messages
    assert any(entry["logger"] == "ultralytics" for entry in entries), "ultralytics' own lines came through as JSON"


NATIVE_WRITER = """
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc

from detector.logs import setup_logging

setup_logging("INFO", json_format=True, native=True)
server = grpc.server(ThreadPoolExecutor(1), options=[("grpc.so_reuseport", 0)])
try:
    server.add_insecure_port(sys.argv[1])  # gRPC's core writes its own line to fd 2 before raising
except RuntimeError as exc:
    print("plain print to sys.stderr:", exc, file=sys.stderr)
"""


def test_lines_native_code_writes_to_stderr_become_json(taken_port: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", NATIVE_WRITER, f"127.0.0.1:{taken_port}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    entries = [json.loads(line) for line in proc.stderr.splitlines()]
    native = [e["msg"] for e in entries if e["logger"] == "stderr"]
    assert any("Failed to add port" in msg for msg in native), native
    assert any(msg.startswith("plain print to sys.stderr: Failed to bind") for msg in native), native
