"""Ctrl-C on a `detector gateway` process: it drains, prints its summary (saying it was stopped by SIGINT) and
exits 0, the normal way to stop a gateway, with no traceback."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from detector.config import ServiceConfig
from tests.gateway.conftest import gateway_process


def test_sigint_stops_the_gateway_process_with_a_summary_and_no_traceback(
    clip: Path, blob_service_config: Callable[[int], ServiceConfig]
) -> None:
    argv = ["gateway", "--camera", f"cam-int={clip}", "--json"]
    log: list[str] = []
    with gateway_process(blob_service_config(0), argv, "INFO") as (_, proc):
        assert proc.stderr is not None
        for line in proc.stderr:  # JSON log lines; the gateway logs its first answer
            log.append(line)
            if '"msg": "service answering"' in line:
                break
        else:
            raise AssertionError(f"the gateway ended before an answer: {''.join(log)}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    err = "".join(log) + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["stopped_by"] == "SIGINT" and data["error"] is None and data["balanced"] is True
    assert data["totals"]["answered_ok"] >= 1
    assert '"msg": "gateway stopped"' in err
