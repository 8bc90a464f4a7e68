"""Helpers for tests and benchmarks that need label-shaped data without a teacher at hand."""

from __future__ import annotations

import numpy as np


def realistic_logits(
    rng: np.random.Generator, n: int, c: int, classes=None, *, spread: float = 1.5, margin=(4.0, 10.0)
) -> np.ndarray:
    """Logits shaped like a trained teacher's: one or a few dominant classes over a noisy floor.

    The one owner of synthetic teacher logits: ``n`` rows of ``c`` normal(0, ``spread``) logits, the
    row's class (random, or ``classes`` mod ``c``) raised by uniform(``margin``). The legacy-directory
    writers (:func:`lplabel.interop.synth.realistic_logits`) call it with their own spread and margin."""
    z = rng.normal(0.0, spread, size=(n, c)).astype(np.float32)
    target = rng.integers(0, c, size=n) if classes is None else np.asarray(classes) % c
    z[np.arange(n), target] += rng.uniform(*margin, size=n).astype(np.float32)
    return z


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for benchmark reports."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(device: str = "cpu") -> dict:
    """The facts about this machine that every benchmark and accuracy report states (the one owner;
    :func:`describe_machine` puts them in one line): CPU model and logical cores, OS, Python, numpy,
    zstd and -- when torch is installed -- torch, its thread count and the GPU; ``device`` is the
    device the measured work ran on. Keys that do not apply are absent (no ``gpu`` without one)."""
    import os
    import platform

    from ._version import __version__

    info = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "device": device,
        "lplabel": __version__,
    }
    try:
        import zstandard

        info["zstandard"], info["zstd"] = zstandard.__version__, ".".join(map(str, zstandard.ZSTD_VERSION))
    except ImportError:  # pragma: no cover - a core dependency
        pass
    try:
        info["load_average"] = tuple(round(x, 2) for x in os.getloadavg())
    except (AttributeError, OSError):  # pragma: no cover - not on POSIX
        pass
    try:
        import torch
    except ImportError:
        return info
    info["torch"], info["torch_threads"] = torch.__version__, torch.get_num_threads()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device) if device.startswith("cuda") else None)
    return info


def describe_machine(info: dict | None = None) -> str:
    """``machine_info()`` in one line, for the "Machine:" line of a benchmark report."""
    m = machine_info() if info is None else info
    parts = [
        f"{m['cpu']}, {m['cpu_count']} logical CPUs"
        + (f" (torch threads {m['torch_threads']})" if "torch_threads" in m else ""),
        m.get("gpu") or "no GPU",
        m["platform"],
        ", ".join(
            f"{name} {m[key]}"
            for name, key in (("Python", "python"), ("numpy", "numpy"), ("torch", "torch"), ("zstd", "zstd"))
            if key in m
        ),
    ]
    if "load_average" in m:
        parts.append("load average (1/5/15 min) " + "/".join(f"{x:.1f}" for x in m["load_average"]))
    return "; ".join(parts)
