from __future__ import annotations

import subprocess
import sys


def test_rules_never_import_torch_ultralytics_or_grpc() -> None:
    code = (
        "import sys, detector.rules; "
        "bad = {'torch', 'ultralytics', 'grpc'} & set(sys.modules); assert not bad, f'rules imported {bad}'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
