"""Timing and peak memory of the benchmarks.

Timings synchronise CUDA before reading the clock, so a measurement covers the kernels it
launched. Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the peak resident set
size of the process (``VmHWM``, Linux) on the CPU.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["device_label", "peak_memory_mb", "reset_peak_memory", "synchronize", "timed"]


def synchronize(device: torch.device) -> None:
    """Waits for the kernels queued on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds ``fn()`` takes on ``device``, its queued kernels included.

    Examples:
        >>> timed(lambda: torch.ones(3).sum(), torch.device("cpu")) >= 0
        True
    """
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def device_label(device: torch.device) -> str:
    """The GPU's name, or ``"CPU, <n> threads"``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_peak_memory(device: torch.device) -> float:
    """Resets the peak of :func:`peak_memory_mb` to the memory in use now; returns that, in MiB."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident set size (VmHWM) to the current one
    return _status_mib("VmRSS")


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB since the process started or :func:`reset_peak_memory`."""
    synchronize(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _status_mib("VmHWM")
