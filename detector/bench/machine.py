"""What a result was measured on: CPU, GPU and library versions, and the folder name the results go under."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("torch", "torchvision", "ultralytics", "onnxruntime", "opencv-python", "grpcio", "numpy")


@dataclass(frozen=True)
class MachineInfo:
    cpu_model: str
    cpu_cores: int
    memory_gb: float
    gpu: str | None  # name of the device the run used, None on the CPU
    gpu_memory_gb: float | None
    platform: str
    python: str
    versions: dict[str, str]
    load_average: tuple[float, float, float]  # at the start: tells a contended run from a clean one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def contended(self) -> bool:
        """Other work shared the machine: the load average at the start was half the core count or more."""
        return self.load_average[0] >= 0.5 * self.cpu_cores

    def contention_lines(self, consequence: str) -> list[str]:
        """The results file's warning line when ``contended`` (``consequence`` says what it means for the numbers,
        starting with its own punctuation); none otherwise."""
        if not self.contended:
            return []
        load, cores = self.load_average[0], self.cpu_cores
        return [f"- **Contended**: the load average was {load:.2f} on {cores} cores when the run started{consequence}"]

    def markdown_header(self, title: str, versions: dict[str, str], command: str) -> list[str]:
        """The first lines of a benchmark's results file: title, machine, versions and the command that ran."""
        return [
            f"# {title}",
            "",
            f"- Machine: {self.cpu_model}, {self.cpu_cores} cores, {self.memory_gb} GB; load average at start "
            f"{self.load_average[0]:.2f}",
            f"- Python {self.python}; " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            f"- Command: `{command}`",
        ]

    def device_slug(self, device: str) -> str:
        """Folder name for results: ``cpu-amd-epyc-2c`` or ``cuda-nvidia-h100-80gb-hbm3``."""
        if device.startswith("cuda") and self.gpu:
            return "cuda-" + _slug(self.gpu)
        return f"cpu-{_slug(self.cpu_model)}-{self.cpu_cores}c"


def machine_info(device: str) -> MachineInfo:
    gpu, gpu_memory_gb = _gpu(device)
    return MachineInfo(
        cpu_model=_cpu_model(),
        cpu_cores=os.cpu_count() or 1,
        memory_gb=round(_memory_bytes() / 1024**3, 1),
        gpu=gpu,
        gpu_memory_gb=gpu_memory_gb,
        platform=platform.platform(),
        python=platform.python_version(),
        versions={name: _version(name) for name in _PACKAGES},
        load_average=os.getloadavg(),
    )


def results_dir(root: Path, info: MachineInfo, device: str, day: dt.date | None = None) -> Path:
    """``<root>/<device-slug>/<YYYY-MM-DD>/``, created."""
    path = root / info.device_slug(device) / (day or dt.date.today()).isoformat()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0.0


def _gpu(device: str) -> tuple[str | None, float | None]:
    if not device.startswith(("cuda", "auto")):
        return None, None
    import torch

    if not torch.cuda.is_available():
        return None, None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    props = torch.cuda.get_device_properties(index)
    return str(props.name), round(props.total_memory / 1024**3, 1)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
