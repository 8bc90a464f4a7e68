"""Helpers for tests and benchmarks that need label-shaped data without a teacher at hand."""
from __future__ import annotations

import numpy as np


def realistic_logits(rng: np.random.Generator, n: int, c: int, classes=None) -> np.ndarray:
    """Logits shaped like a trained teacher's: one or a few dominant classes over a noisy floor."""
    z = rng.normal(0.0, 1.5, size=(n, c)).astype(np.float32)
    target = rng.integers(0, c, size=n) if classes is None else np.asarray(classes) % c
    z[np.arange(n), target] += rng.uniform(4.0, 10.0, size=n).astype(np.float32)
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
