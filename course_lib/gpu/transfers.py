"""Host↔device copies: measured on a GPU, drawn from a model elsewhere."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from course_lib._render import Table, format_seconds
from course_lib.gpu.arrays import format_bytes
from course_lib.gpu.backends import current_backends
from course_lib.gpu.launch import as_count

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["TransferStudy", "transfer_study"]

# Typical figures, used only to draw the model where no GPU can be measured.
_MODEL_LINK = 25e9        # bytes/s: PCIe 4.0 x16, in practice
_MODEL_LINK_LATENCY = 10e-6
_MODEL_DEVICE = 1.5e12    # bytes/s: device memory of a recent data-centre GPU
_MODEL_DEVICE_LATENCY = 5e-6


@dataclass(repr=False)
class TransferStudy:
    """Seconds to copy host→device, device→device and device→host, per size in bytes."""

    sizes: list[int]
    host_to_device: list[float]
    on_device: list[float]
    device_to_host: list[float]
    measured: bool
    device: str

    def table(self) -> Table:
        rows = []
        for i, size in enumerate(self.sizes):
            rows.append([format_bytes(size), format_seconds(self.host_to_device[i]),
                         format_seconds(self.on_device[i]), format_seconds(self.device_to_host[i]),
                         f"{self.host_to_device[i] / max(self.on_device[i], 1e-12):.0f}x"])
        title = (f"copies measured on {self.device}" if self.measured else
                 "copies MODELLED (no GPU here): PCIe 4.0 x16 ~25 GB/s, device memory ~1.5 TB/s")
        return Table(headers=("size", "host → device", "on the device", "device → host",
                              "host→device / on-device"), rows=rows, title=title)

    def __str__(self) -> str:
        return self.table().text()

    def __repr__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()

    def plot(self, ax: Axes | None = None) -> Axes:
        """Log-log lines of copy time against size, one per direction."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        mib = [s / 2**20 for s in self.sizes]
        ax.loglog(mib, [t * 1e3 for t in self.host_to_device], "o-", label="host → device")
        ax.loglog(mib, [t * 1e3 for t in self.device_to_host], "s--", label="device → host")
        ax.loglog(mib, [t * 1e3 for t in self.on_device], "^:", label="copy on the device")
        ax.set_xlabel("size (MiB)")
        ax.set_ylabel("time (ms)")
        source = f"measured on {self.device}" if self.measured else "a model, not measured"
        ax.set_title(f"Crossing to the GPU costs far more than copying on it\n({source})")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        return ax


def transfer_study(sizes: Sequence[int] | None = None, *, repeat: int = 5) -> TransferStudy:
    """Time copies with Numba CUDA on a real GPU; elsewhere, draw them from a model.

    Call :func:`choose_backends` first. ``sizes`` are in bytes (default 64 KiB
    to 64 MiB). The simulator's copies are NumPy copies, so they are not timed.
    """
    chosen = list(sizes) if sizes is not None else [2**16, 2**19, 2**22, 2**26]
    for size in chosen:
        as_count(size, "size in bytes", 1)
    current = current_backends()
    if current is None or not current.gpu:
        return TransferStudy(
            sizes=chosen,
            host_to_device=[_MODEL_LINK_LATENCY + s / _MODEL_LINK for s in chosen],
            on_device=[_MODEL_DEVICE_LATENCY + 2 * s / _MODEL_DEVICE for s in chosen],
            device_to_host=[_MODEL_LINK_LATENCY + s / _MODEL_LINK for s in chosen],
            measured=False, device="a model")
    cuda: Any = importlib.import_module("numba.cuda")
    h2d: list[float] = []
    d2d: list[float] = []
    d2h: list[float] = []
    for size in chosen:
        host = np.ones(size // 4, dtype=np.float32)
        device = cuda.to_device(host)
        other = cuda.device_array_like(device)
        samples: list[list[float]] = [[], [], []]
        for _ in range(repeat):
            cuda.synchronize()
            start = time.perf_counter()
            cuda.to_device(host, to=device)
            cuda.synchronize()
            middle = time.perf_counter()
            other.copy_to_device(device)
            cuda.synchronize()
            late = time.perf_counter()
            other.copy_to_host(host)
            end = time.perf_counter()
            samples[0].append(middle - start)
            samples[1].append(late - middle)
            samples[2].append(end - late)
        h2d.append(float(np.median(samples[0])))
        d2d.append(float(np.median(samples[1])))
        d2h.append(float(np.median(samples[2])))
        del device, other
    name = current.device.name if current.device else "the GPU"
    return TransferStudy(chosen, h2d, d2d, d2h, measured=True, device=name)

