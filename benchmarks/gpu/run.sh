#!/usr/bin/env bash
# The GPU throughput run (issue 18, part 5): torch fp16 vs TensorRT, 1/16/64 streams, 720p/1080p, tiling off and
# on, JPEG decode on the CPU and on the GPU (nvJPEG), the YOLO.predict loops, bound batch sizes 1/8/32/64; sized for
# under 8 minutes on one GPU (an estimate: it has not run yet). Run from anywhere; it works in the repository.
#
# It checks what it needs and says what it skips: nvidia-smi (recorded into the results), a Python >= 3.11 that
# can run the service (the repo's .venv; else a venv made from WHEELHOUSE=/path/to/wheels, offline; else a system
# python3 that already has the dependencies), and the tensorrt package (without it: torch only).
#
#   bash benchmarks/gpu/run.sh                     # the official short run
#   WHEELHOUSE=/data/wheels bash benchmarks/gpu/run.sh
#   DURATION=20 WARMUP=5 BOUND_TIME=3 bash benchmarks/gpu/run.sh   # a longer run (well over 8 minutes)
#
# Knobs (environment): DEVICE (cuda:0), DURATION (4 s per run), WARMUP (2 s), BOUND_TIME (1 s per batch size),
# STREAMS (1,16,64), RESOLUTIONS (720p,1080p), BATCHES (1,8,32,64), MAX_BATCH (64: batching.max_batch and the
# TensorRT engine's largest batch), TRT_BUILD_TIMEOUT (240 s for building the engine once; it is cached in
# .cache/bench/tensorrt/), BASELINE (1; 0 skips the per-stream YOLO.predict loops if the run is too long),
# OUT (results root, default benchmarks/results; the device tool's $OUT, when set, so that the results come back).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

DEVICE="${DEVICE:-cuda:0}"
DURATION="${DURATION:-4}"
WARMUP="${WARMUP:-2}"
BOUND_TIME="${BOUND_TIME:-1}"
STREAMS="${STREAMS:-1,16,64}"
RESOLUTIONS="${RESOLUTIONS:-720p,1080p}"
BATCHES="${BATCHES:-1,8,32,64}"
MAX_BATCH="${MAX_BATCH:-64}"
TRT_BUILD_TIMEOUT="${TRT_BUILD_TIMEOUT:-240}"
BASELINE="${BASELINE:-1}"
OUT="${OUT:-$REPO/benchmarks/results}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$OUT/gpu-run-$STAMP"  # this script's own records; the bench writes $OUT/<device>/<date>/
mkdir -p "$LOGS"
START_S=$SECONDS

say() { printf 'run.sh: %s\n' "$*" | tee -a "$LOGS/run.log" >&2; }
skip() { say "SKIPPED: $*"; }

# --- the GPU ------------------------------------------------------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi | tee "$LOGS/nvidia-smi.txt" >&2 || skip "nvidia-smi failed (recorded as far as it got)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv \
        >"$LOGS/nvidia-smi-query.csv" 2>&1 || true
else
    skip "nvidia-smi is not on PATH: no GPU record (the bench still records torch's view of the GPU)"
fi

# --- Python with the service's dependencies -----------------------------------------------------------------------
python_ok() {  # a Python >= 3.11 that imports what `detector bench throughput` needs
    "$1" - <<'PY' >/dev/null 2>&1
import sys
assert sys.version_info >= (3, 11)
import grpc, numpy, cv2, torch, torchvision, ultralytics, pydantic, yaml  # noqa: F401
PY
}

PY=""
if [[ -x "$REPO/.venv/bin/python" ]] && python_ok "$REPO/.venv/bin/python"; then
    PY="$REPO/.venv/bin/python"
    say "python: the repository's .venv ($PY)"
else
    [[ -e "$REPO/.venv" ]] && skip "the repository's .venv is there but cannot run the bench"
    SYS_PY=""
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            SYS_PY="$(command -v "$candidate")"
            break
        fi
    done
    if [[ -z "$SYS_PY" ]]; then
        say "ERROR: no Python >= 3.11 on this machine; nothing can run"
        exit 2
    fi
    if [[ -n "${WHEELHOUSE:-}" ]]; then
        [[ -d "$WHEELHOUSE" ]] || { say "ERROR: WHEELHOUSE=$WHEELHOUSE is not a folder"; exit 2; }
        VENV="$REPO/.cache/gpu-venv"
        say "python: making $VENV with $SYS_PY from the wheels in $WHEELHOUSE (offline)"
        "$SYS_PY" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --no-index --find-links "$WHEELHOUSE" --quiet -e "$REPO" \
            2>&1 | tee -a "$LOGS/pip.log" >&2
        if [[ -f "$REPO/requirements.lock" ]]; then
            "$VENV/bin/python" -m pip install --no-index --find-links "$WHEELHOUSE" --quiet -r "$REPO/requirements.lock" \
                2>&1 | tee -a "$LOGS/pip.log" >&2 || skip "some pins of requirements.lock are not in the wheelhouse"
        fi
        "$VENV/bin/python" -m pip install --no-index --find-links "$WHEELHOUSE" --quiet tensorrt \
            2>&1 | tee -a "$LOGS/pip.log" >&2 || skip "no tensorrt wheel in the wheelhouse"
        python_ok "$VENV/bin/python" || { say "ERROR: the venv from $WHEELHOUSE still cannot run the bench"; exit 2; }
        PY="$VENV/bin/python"
    elif python_ok "$SYS_PY"; then
        PY="$SYS_PY"
        export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
        say "python: $PY (no .venv, no WHEELHOUSE: the system's packages, the repository on PYTHONPATH)"
    else
        say "ERROR: no .venv, no WHEELHOUSE=..., and $SYS_PY lacks the dependencies (torch, ultralytics, grpc, ...);"
        say "       carry a wheelhouse and run WHEELHOUSE=/path/to/wheels bash benchmarks/gpu/run.sh"
        exit 2
    fi
fi
"$PY" - <<'PY' 2>&1 | tee "$LOGS/versions.txt" >&2
import platform, torch, ultralytics
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "ultralytics", ultralytics.__version__)
print("cuda available:", torch.cuda.is_available(),
      "gpu:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
PY
if ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    say "ERROR: torch sees no CUDA GPU; this is the GPU run, use \`detector bench throughput --device cpu\` instead"
    exit 2
fi

# --- TensorRT: built once, under its own time limit, so that the bench itself only loads it -----------------------
BACKENDS="torch"
if TRT_VERSION="$("$PY" -c 'import tensorrt; print(tensorrt.__version__)' 2>>"$LOGS/run.log")"; then
    say "tensorrt $TRT_VERSION: building the engine (once; cached in .cache/bench/tensorrt/, at most ${TRT_BUILD_TIMEOUT}s)"
    # The same weights, imgsz, largest batch and cache folder that the bench asks for, so that it finds this engine.
    if timeout "$TRT_BUILD_TIMEOUT" "$PY" - "$DEVICE" "$MAX_BATCH" "$BATCHES" <<'PY' 2>&1 | tee -a "$LOGS/run.log" >&2
import sys, time
import torch
from detector.bench.cli import DEFAULT_CACHE
from detector.config import DEFAULT_WEIGHTS
from detector.inference.engine import ModelSettings, resolve_imgsz
from detector.inference.tensorrt_export import tensorrt_weights

device, max_batch, batches = sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3].split(",")]
# The bench builds for max(--batch, batching.max_batch, model.max_batch): both --set to MAX_BATCH below.
largest = max(max_batch, *batches)
started = time.perf_counter()
path = tensorrt_weights(
    DEFAULT_WEIGHTS, resolve_imgsz(ModelSettings(weights=DEFAULT_WEIGHTS)), largest, DEFAULT_CACHE.resolve(),
    torch.device(device),
)
print(f"engine {path} ready in {time.perf_counter() - started:.0f} s")
PY
    then
        BACKENDS="torch,tensorrt"
    else
        skip "tensorrt: the engine build failed or took over ${TRT_BUILD_TIMEOUT}s (see $LOGS/run.log); torch only"
    fi
else
    skip "tensorrt: the Python package is not importable (pip install tensorrt-cu12 or -cu13, matching torch's CUDA); torch only"
fi

# --- the bench ----------------------------------------------------------------------------------------------------
CMD=(
    "$PY" -m detector.bench throughput
    --device "$DEVICE"
    --backends "$BACKENDS"
    --streams "$STREAMS"
    --resolutions "$RESOLUTIONS"
    --batch "$BATCHES"
    --duration "$DURATION" --warmup "$WARMUP" --bound-time "$BOUND_TIME"
    --set "batching.max_batch=$MAX_BATCH"
    --set "model.max_batch=$MAX_BATCH"
    --variant "tiled:tiling.default=auto"
    --variant "gpu-decode:ingest.decode_device=auto"
    --out "$OUT"
    --no-progress
)
[[ "$BASELINE" == "1" ]] || { CMD+=(--no-baseline); skip "the YOLO.predict baseline (BASELINE=1 runs it)"; }
printf 'run.sh: running:' | tee -a "$LOGS/run.log" >&2
printf ' %q' "${CMD[@]}" | tee -a "$LOGS/run.log" >&2
printf '\n' | tee -a "$LOGS/run.log" >&2
set +e
"${CMD[@]}" 2>&1 | tee "$LOGS/bench.log"
STATUS=${PIPESTATUS[0]}
set -e
say "bench exit status $STATUS after $((SECONDS - START_S)) s in all; results under $OUT/<device>/<date>/, this run's logs in $LOGS.tar.gz"
# One archive for the logs: the device tool brings back at most 8 files (the bench writes 5).
tar -czf "$LOGS.tar.gz" -C "$(dirname "$LOGS")" "$(basename "$LOGS")" && rm -rf "$LOGS"
exit "$STATUS"
