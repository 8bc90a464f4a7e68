"""How many torch threads each process of lplabel uses on the CPU: the one owner of that choice.

Oversubscription is what makes CPU runs slow on a shared machine: torch's default of one
intra-op thread per core, times the worker processes, times everybody else's jobs. Measured on a
2-core VM at load 4-6 (issue 19): a relabel ran 103 views/s with torch's default threads and 598
with one thread (the teacher's pure forward: 557); on the same machine when quiet, two threads
were twice as fast as one. So the choice depends on the load, and lplabel makes it per process:

* a DataLoader-style **worker** process gets 1 thread (:data:`WORKER_THREADS`): workers run in
  parallel with each other, more threads each would only fight;
* the **main** process gets the cores the workers leave, shared among the processes of this job on
  the node (``LOCAL_WORLD_SIZE`` under torchrun), and no more than the cores other processes leave
  idle right now (``cores - busy``, rounded, at least 1), where ``busy`` is the number of other
  runnable tasks now (:func:`busy_cpus`: ``/proc/loadavg``'s running count, sampled for 0.1 s). The
  1-minute load average is not used for the choice: it lags by a minute both ways (it still
  remembers a job that just ended and has not yet seen one that just started).

The user decides over all of this: ``--threads N`` (``threads=N``), or ``OMP_NUM_THREADS`` in the
environment (what Slurm and HPC users set), which lplabel then leaves as it is.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

#: torch threads of a worker process.
WORKER_THREADS = 1


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a Slurm/cgroup allocation)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def busy_cpus(samples: int = 10, interval: float = 0.01) -> float | None:
    """Runnable tasks other than this one, now: the mean over ``samples`` readings of the running
    count in ``/proc/loadavg`` minus this process's reading thread. Falls back to the 1-minute load
    average where there is no ``/proc`` (None where there is neither)."""
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return load_average()
        counts.append(max(0, running - 1))
        if i + 1 < samples:
            time.sleep(interval)
    return sum(counts) / len(counts)


@dataclass(frozen=True)
class ThreadPlan:
    """The chosen thread counts and why (``reason`` is printed in run summaries)."""

    main: int
    worker: int
    cores: int
    load: float | None
    reason: str

    def describe(self) -> str:
        return f"{self.main} torch thread{'s' if self.main != 1 else ''} ({self.reason})"


def plan_threads(
    requested: int | str | None = "auto",
    *,
    workers: int = 0,
    processes: int | None = None,
    cores: int | None = None,
    load: float | None = None,
    environ=None,
) -> ThreadPlan:
    """Choose the main process's torch threads (see the module doc).

    ``requested``: an int (the user's choice, used as given), ``"auto"``, or None (keep torch's
    current setting). ``workers``: worker processes this process starts (1 thread each).
    ``processes``: processes of this job on the node (default: ``LOCAL_WORLD_SIZE`` or 1).
    ``load``: other runnable tasks (default :func:`busy_cpus`). ``cores``/``load``/``environ``
    default to this machine's (given in tests).
    """
    import torch

    env = os.environ if environ is None else environ
    cores = available_cores() if cores is None else int(cores)
    if load is None and environ is None:
        load = busy_cpus()
    if isinstance(requested, int) and not isinstance(requested, bool):
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        return ThreadPlan(requested, WORKER_THREADS, cores, load, "as requested")
    if requested is None:
        return ThreadPlan(torch.get_num_threads(), WORKER_THREADS, cores, load, "torch's current setting")
    if requested != "auto":
        raise ValueError(f"threads must be an int, 'auto' or None, got {requested!r}")
    if env.get("OMP_NUM_THREADS"):
        return ThreadPlan(
            torch.get_num_threads(), WORKER_THREADS, cores, load, f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}"
        )
    if processes is None:
        try:
            processes = max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
        except ValueError:
            processes = 1
    share = max(1, cores // max(1, processes) - max(0, int(workers)) * WORKER_THREADS)
    why = f"{cores} core{'s' if cores != 1 else ''}"
    if processes > 1:
        why += f" / {processes} processes"
    if workers:
        why += f", {workers} worker{'s' if workers != 1 else ''} with {WORKER_THREADS} each"
    main = share
    if load is not None:
        idle = int(round(cores - load))
        why += f", {load:.1f} busy"
        if idle < main:
            main = max(1, idle)
    return ThreadPlan(main, WORKER_THREADS, cores, load, why)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``torch.set_num_threads(n)``; the previous count is restored after."""
    import torch

    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def set_worker_threads(_worker_id: int | None = None) -> None:
    """``worker_init_fn`` for DataLoader-style workers: :data:`WORKER_THREADS` torch threads."""
    import torch

    torch.set_num_threads(WORKER_THREADS)
