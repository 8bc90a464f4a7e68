"""Students trained side by side in worker processes (``lplabel bench accuracy --jobs N``).

Why: the harness's students are small (a ConvNet-3 at 32 px), and on a CPU a second intra-op
thread buys them little, while two students in two processes keep two cores busy: the ``cpu``
preset's 26 students take about half the wall time at ``--jobs 2``. Each worker is a *spawned*
process (not forked: torch's thread pools and onnxruntime sessions do not survive a fork) that
runs ``threads`` torch threads and trains one student at a time. The students are the same as a
sequential run's with the same thread count: each is seeded from its own seed and setting, and
the workers share nothing but the read-only store files.

Rows whose labels come from a live object (an online teacher's session, a generator's network:
:mod:`.online`) are not sent to workers; the caller trains them in its own process.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable

from .settings import BenchError


@dataclass
class StudentJob:
    """One student to train: everything :func:`~.student.train_student` needs, picklable."""

    name: str  # the setting's name (for messages)
    seed: int
    store: str  # the store file's path
    kwargs: dict = field(default_factory=dict)  # train_student's other arguments


def _train_in_worker(job: StudentJob, threads: int) -> tuple[str, object]:
    """Run in a worker: ``("ok", result)`` or ``("error", message)``. An exception is sent back
    as its text, because a library exception with keyword arguments need not unpickle in the
    parent, and a worker that dies on it would break the whole pool."""
    import torch

    from .student import train_student

    torch.set_num_threads(threads)
    try:
        return "ok", train_student(job.store, seed=job.seed, progress=False, **job.kwargs)
    except Exception as e:  # noqa: BLE001 - forwarded to the parent as a named error
        return "error", f"{type(e).__name__}: {e}"


def train_parallel(
    jobs: list[StudentJob],
    workers: int,
    threads: int,
    on_result: Callable[[StudentJob, dict], None],
) -> None:
    """Train ``jobs`` in ``workers`` spawned processes, at most ``workers`` at a time, calling
    ``on_result(job, result)`` in the caller's process as each student finishes (so that an
    interrupted run keeps every finished student). A failed student stops the run with a
    :class:`BenchError` naming it once the students already running have finished or been
    cancelled; Ctrl-C cancels the students not started yet."""
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=ctx)
    pending = {pool.submit(_train_in_worker, job, threads): job for job in jobs}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                try:
                    status, value = fut.result()
                except BrokenProcessPool as e:
                    raise BenchError(
                        f"the worker process training {job.name} seed {job.seed} died (killed, or out of memory?)",
                        hint="rerun: finished students are kept in --out; --jobs 1 trains them in this process",
                    ) from e
                if status != "ok":
                    raise BenchError(
                        f"student {job.name} seed {job.seed} failed in its worker process: {value}",
                        hint="rerun with --jobs 1 to see it in this process; finished students are kept in --out",
                    )
                on_result(job, value)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
