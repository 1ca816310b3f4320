"""The service's thread budget: how its cores are shared between decoding, the model and the event loop.

Three kinds of work run at once in ``detector serve``:

- the **event loop** (one thread): gRPC calls, tracking, incident rules and store writes;
- **decode** threads: JPEG/PNG to pixels (libjpeg releases the GIL), one frame each;
- the **inference workers**: threads that each take the next batch and run it, with the model's own intra-op
  threads (onnxruntime's or torch's) inside each forward pass.

Left alone, each library sizes itself to the whole machine: onnxruntime and torch each start a thread per core,
OpenCV another pool for resizing, and onnxruntime's and OpenMP's (torch's) idle threads spin-wait for work. On a
small CPU they then take turns on the same cores, and an intra-op parallel region waits for its slowest thread,
so a decode or a gRPC call that takes one core stalls the whole forward pass. Measured on 2 cores (streetwatch-v4,
416 px, 720p frames, letterbox + forward + NMS, issue 18's note): one worker with 2 intra-op threads 29.7 frames/s,
one with 1 thread 27.9, two workers with 1 thread each 50.5 (43.9 beside a decoding thread). So on the CPU the
budget runs one inference worker per core, each single-threaded, on independent batches (onnxruntime sessions and
torch modules take concurrent calls; the stages after the model put frames back in order), sizes decoding from the
cores (a quarter of them, at least one), keeps OpenCV to one thread per caller, and has idle threads sleep instead
of spinning (onnxruntime sessions built so; ``detector serve`` makes torch's OpenMP pool passive before torch
loads: :func:`prepare_process_env`). On CUDA one worker feeds the GPU with 2 CPU threads and decoding gets the
rest of the cores. Every number can be set in the ``threads`` section; ``detector serve`` logs the budget it runs
with.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from detector.inference.engine import InferenceThreads


class ThreadSettings(BaseModel):
    """Section ``threads``: every value None is derived from the cores (see detector/threads.py)."""

    model_config = ConfigDict(extra="forbid")

    cores: int | None = Field(
        None, ge=1, le=1024, description="Cores to plan for; None: the cores this process may run on (its affinity)."
    )
    decode: int | None = Field(
        None, ge=1, le=256, description="Threads decoding JPEG/PNG frames; None: a quarter of the cores, at least 1 "
        "(on CUDA: the cores less two)."
    )  # fmt: skip
    inference_workers: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Inference workers running batches side by side; None: one per core on the CPU, 1 on CUDA.",
    )
    inference: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Intra-op threads of each forward pass (onnxruntime, torch); None: 1 on the CPU (the workers "
        "use the cores), 2 on CUDA.",
    )
    inference_inter_op: int = Field(
        1, ge=1, le=64, description="Inter-op threads of the model (one batch's operators run in sequence)."
    )
    spin: bool = Field(
        False,
        description="Let the model's idle intra-op threads (onnxruntime's; torch's OpenMP pool when `detector "
        "serve` starts it) spin-wait for work: a little faster on an otherwise idle machine, but they burn the "
        "cores that decoding and gRPC need.",
    )
    opencv: int = Field(1, ge=0, le=1024, description="OpenCV's own threads (resizing); 0: OpenCV's default.")


@dataclass(frozen=True)
class ThreadBudget:
    """Resolved thread counts; ``why`` says where each came from."""

    cores: int
    decode: int
    inference_workers: int
    inference: int
    inference_inter_op: int
    spin: bool
    opencv: int
    why: str

    def model_threads(self) -> InferenceThreads:
        """What the engine is built with: each forward pass's intra- and inter-op threads, and spinning."""
        return InferenceThreads(self.inference, self.inference_inter_op, self.spin)

    def as_log(self) -> dict[str, object]:
        return {
            "cores": self.cores,
            "decode_threads": self.decode,
            "inference_workers": self.inference_workers,
            "inference_threads": self.inference,
            "inference_inter_op": self.inference_inter_op,
            "onnxruntime_spin": self.spin,
            "opencv_threads": self.opencv,
            "event_loop_threads": 1,
            "why": self.why,
        }


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS has one, else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def plan_threads(settings: ThreadSettings, device: str) -> ThreadBudget:
    """The budget for a model running on ``device`` ("cpu", "cuda:N" or "auto")."""
    cores = settings.cores or available_cores()
    cuda = device.startswith("cuda") or (device == "auto" and _cuda_available())
    if cuda:
        workers, inference, decode = 1, 2, max(1, cores - 2)
        why = "cuda: the GPU runs the model, so one worker's CPU threads only launch work; decoding gets the rest"
    else:
        workers, inference, decode = cores, 1, max(1, cores // 4)
        why = (
            "cpu: the forward pass is the largest cost: one single-threaded worker per core on independent batches "
            "(no intra-op barrier for a decode to stall); decoding a quarter of the cores; idle threads sleep"
        )
    given = [
        name for name in ("cores", "decode", "inference_workers", "inference") if getattr(settings, name) is not None
    ]
    if given:
        why += f"; set in threads: {', '.join(given)}"
    return ThreadBudget(
        cores=cores,
        decode=settings.decode or decode,
        inference_workers=settings.inference_workers or workers,
        inference=settings.inference or inference,
        inference_inter_op=settings.inference_inter_op,
        spin=settings.spin,
        opencv=settings.opencv,
        why=why,
    )


def prepare_process_env(settings: ThreadSettings) -> bool:
    """Before torch is imported: make OpenMP's idle threads (torch's intra-op pool) sleep instead of spinning,
    unless ``spin`` is set or the environment already chose (``OMP_WAIT_POLICY``). True when it took effect;
    False when torch was imported already (the policy is read once, when its OpenMP runtime starts)."""
    import sys

    if settings.spin or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "torch" not in sys.modules


def apply_process_threads(budget: ThreadBudget) -> None:
    """Size the process-wide pools: torch's intra- and inter-op threads and OpenCV's. onnxruntime's are per
    session (the engine's :class:`InferenceThreads`)."""
    import cv2
    import torch

    torch.set_num_threads(budget.inference)
    # Settable once per process, before any inter-op work: a second service in one process keeps the first's.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(budget.inference_inter_op)
    if budget.opencv:
        cv2.setNumThreads(budget.opencv)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
