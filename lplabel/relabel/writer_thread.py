"""The writer thread: encodes labels and writes part stores while the device computes.

Only this thread touches the StoreWriter objects. The main thread hands it one item per step
through a bounded queue (so memory stays bounded when the disk is slower than the device); on
CUDA each item carries an event recorded after the device-to-host copy, and the thread waits on
it, so the main thread never blocks on the GPU.

It also keeps the numbers that say whether it kept up (:class:`WriterStats`): how long the main
thread (the teacher loop) waited for room in the queue -- time the teacher sat idle because
encoding and writing were slower than labelling -- and how long this thread was busy. The
relabel summary prints them, so a run shows whether the writer was ever the bottleneck.
"""

from __future__ import annotations

import errno
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import LplabelError
from .errors import RelabelWriteError, TeacherOutputError


@dataclass
class WriterStats:
    """What the writer thread did: ``wait_seconds`` the main thread spent blocked in ``submit``
    (the queue full: the teacher loop waited on encoding/writing), over ``waits`` of ``steps``
    submits; ``busy_seconds`` this thread spent encoding and writing steps; ``drain_seconds`` the
    main thread spent in ``finish`` (writing what was still queued when the loop ended)."""

    steps: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    busy_seconds: float = 0.0
    drain_seconds: float = 0.0

    def describe(self, loop_seconds: float) -> str:
        """One line for the relabel summary."""
        busy = (
            f"busy {self.busy_seconds:.1f} s ({100 * self.busy_seconds / loop_seconds:.0f}% of the loop)"
            if loop_seconds > 0
            else f"busy {self.busy_seconds:.1f} s"
        )
        busy += f", {self.drain_seconds:.2f} s to write the queue's last steps after the loop"
        if not self.waits:
            return f"writer: never waited on (the teacher loop never found its queue full); {busy}"
        return (
            f"writer: the teacher loop waited {self.wait_seconds:.2f} s on it ({self.waits:,} of "
            f"{self.steps:,} steps found the queue full: encoding and writing were slower than labelling); "
            f"{busy}"
        )


class WriterThread:
    """Consume ``(part, epoch, step, views, labels, event)`` items; one StoreWriter per part.

    ``open_part(part) -> StoreWriter``; ``part_sizes[part]``: steps in the part (the writer is
    closed, i.e. published atomically, when the last arrives); ``on_step(n_views)`` and
    ``on_part(part, path)`` are progress callbacks run in this thread.
    """

    def __init__(
        self,
        open_part: Callable,
        part_sizes: dict,
        *,
        label_input,
        maxsize: int = 8,
        on_step: Callable | None = None,
        on_part: Callable | None = None,
    ):
        self._open_part = open_part
        self._sizes = dict(part_sizes)
        self._label_input = label_input
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(maxsize)))
        self._on_step = on_step
        self._on_part = on_part
        self._abort = threading.Event()
        self.error: BaseException | None = None
        self.parts_done: list = []
        self._writer = None
        self._part = None
        self._count = 0
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name="lplabel-relabel-writer", daemon=True)
        self._thread.start()

    # -- main-thread side -------------------------------------------------------------------
    def submit(self, part, epoch, step, views, labels, event=None) -> None:
        item = (part, epoch, step, views, labels, event)
        self.stats.steps += 1
        if self.error is not None:
            raise self.error
        try:
            self._q.put_nowait(item)  # the common case when the writer keeps up: no wait at all
            return
        except queue.Full:
            pass
        self.stats.waits += 1
        t0 = time.perf_counter()
        try:
            self._wait_put(item)
        finally:
            self.stats.wait_seconds += time.perf_counter() - t0

    def _wait_put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                if not self._thread.is_alive() and self.error is None:  # pragma: no cover
                    raise RelabelWriteError("the writer thread stopped unexpectedly")

    def finish(self) -> None:
        """Wait for every submitted step to be written; re-raise the thread's error if any."""
        t0 = time.perf_counter()
        try:
            self._finish()
        finally:
            self.stats.drain_seconds += time.perf_counter() - t0

    def _finish(self) -> None:
        while self._thread.is_alive():
            try:
                self._q.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self._thread.join()
        if self.error is not None:
            raise self.error

    def drain(self) -> None:
        """After a failure in the main thread: write the steps already queued (finishing any
        part they complete), drop the unfinished part, and return without raising."""
        try:
            self.finish()
        except BaseException:  # noqa: BLE001 - the caller's exception is the one that matters
            pass

    def abort(self) -> None:
        """Stop now: drop queued steps and the part being written (its temporary file)."""
        self._abort.set()
        self._thread.join(timeout=60)

    # -- thread side ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._abort.is_set():
                try:
                    item = self._q.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    break
                t0 = time.perf_counter()
                self._write(*item)
                self.stats.busy_seconds += time.perf_counter() - t0
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = self._wrap(e)
        finally:
            if self._writer is not None:
                self._writer.abort()  # an unfinished part: remove its temporary file
                self._writer = None

    def _wrap(self, e: BaseException) -> BaseException:
        if isinstance(e, LplabelError):
            return e
        path = getattr(self._writer, "path", None)
        if isinstance(e, OSError):
            what = "disk full" if e.errno == errno.ENOSPC else "I/O error"
            return RelabelWriteError(
                f"{what} while writing labels: {e.strerror or e}",
                path=path,
                hint="fix it (free space) and re-run the same command: finished parts are kept and the run resumes",
            )
        return RelabelWriteError(
            f"writing labels failed: {type(e).__name__}: {e}",
            path=path,
            hint="finished parts are kept; re-run the same command to resume",
        )

    def _write(self, part, epoch, step, views, labels, event) -> None:
        if event is not None:
            event.synchronize()
        block = {k: v.numpy() for k, v in labels.items()}
        where = f"epoch {epoch}, step {step}"
        if self._label_input == "logits":
            z = block["logits"]
            if not np.isfinite(z).all():
                raise TeacherOutputError(
                    "the teacher produced NaN or infinite logits",
                    part=where,
                    hint="with --amp try --amp-dtype bfloat16 or no AMP; check the teacher",
                )
            kw = {"logits": z}
        else:
            idx, val = block["indices"], block["values"]
            if not np.isfinite(val).all():
                raise TeacherOutputError(
                    "the teacher produced NaN or infinite logits",
                    part=where,
                    hint="with --amp try --amp-dtype bfloat16 or no AMP; check the teacher",
                )
            kw = {"topk_indices": idx, "topk_values": val}  # ordered on the device (core._topk_canonical)
        if part != self._part:
            if self._writer is not None:  # pragma: no cover - parts arrive whole and in order
                raise RelabelWriteError(f"part {self._part} ended early")
            self._writer = self._open_part(part)
            self._part, self._count = part, 0
        self._writer.write_step(
            epoch,
            step,
            image=views.image,
            crop=views.crop,
            flip=views.flip,
            mix_partner=views.mix_partner,
            mix_lambda=views.mix_lambda,
            mix_box=views.mix_box,
            **kw,
        )
        self._count += 1
        if self._on_step is not None:
            self._on_step(len(views.image))
        if self._count == self._sizes[part]:
            w, self._writer, self._part = self._writer, None, None
            path = w.close()
            self.parts_done.append(part)
            if self._on_part is not None:
                self._on_part(part, path)
