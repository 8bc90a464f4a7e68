"""Progress reporting on stderr: the one owner of how lplabel shows long work.

* On a terminal: a tqdm bar (rate, ETA), as before.
* Not on a terminal (a Slurm or nohup log, a pipe): no bar -- its carriage returns would fill the
  log with garbage -- but one plain line every ``interval`` seconds, e.g.::

      relabel: 12,800/100,000 views (12.8%), 598 views/s, elapsed 0:00:21, ETA 0:02:25

  so a job that runs for hours says how far it is. Work that ends before the first interval
  prints nothing (short commands in scripts stay quiet); when lines were printed, a last line
  says the work ended and how fast it went overall.
* ``enabled=False``: nothing at all.

The interval defaults to :data:`DEFAULT_INTERVAL` seconds; the environment variable
``LPLABEL_PROGRESS_INTERVAL`` (seconds, e.g. ``300`` for a quieter log or ``0`` for a line per
update) overrides it. Rates and ETAs are averages since the start, so a stall shows as a falling
rate rather than being hidden by the last fast interval.
"""

from __future__ import annotations

import os
import sys
import threading
import time

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL = 60.0
ENV_INTERVAL = "LPLABEL_PROGRESS_INTERVAL"


def _interval(interval: float | None) -> float:
    if interval is not None:
        return max(0.0, float(interval))
    raw = os.environ.get(ENV_INTERVAL)
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass  # a malformed value must not break a long job; the default applies
    return DEFAULT_INTERVAL


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream (pytest capture, click runner)
        return False


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``D days, H:MM:SS`` past a day); ``?`` for an unknown duration."""
    if seconds is None or not seconds == seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return "?"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} day{'s' if d != 1 else ''}, " if d else "") + f"{h}:{m:02d}:{s:02d}"


class Progress:
    """A progress reporter with tqdm's small interface (``update``, ``close``, ``total``,
    ``set_postfix_str``; usable as a context manager). See the module doc for what it prints.

    ``update`` may be called from any one thread at a time (the relabel writer thread does).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        unit: str = "step",
        enabled: bool | None = None,
        unit_scale: bool = False,
        leave: bool = False,
        interval: float | None = None,
        file=None,
        smoothing: float = 0.3,
    ):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.file = sys.stderr if file is None else file
        self.interval = _interval(interval)
        self._postfix = ""
        self._bar = None
        self._plain = False
        self._lines = 0
        self._closed = False
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._last = self._t0
        if enabled is False:
            return
        if _is_terminal(self.file):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=unit_scale,
                file=self.file,
                dynamic_ncols=True,
                leave=leave,
                smoothing=smoothing,
            )
        else:
            self._plain = True

    @property
    def mode(self) -> str:
        """``"bar"``, ``"lines"`` or ``"off"`` (what this reporter prints)."""
        return "bar" if self._bar is not None else "lines" if self._plain else "off"

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._plain:
            now = time.perf_counter()
            if now - self._last >= self.interval:
                with self._lock:
                    if now - self._last >= self.interval:
                        self._last = now
                        self._emit(now)

    def set_postfix_str(self, s: str) -> None:
        self._postfix = str(s)
        if self._bar is not None:
            self._bar.set_postfix_str(s)

    def set_postfix(self, **kw) -> None:
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in kw.items()))

    def line(self, now: float | None = None, final: bool = False) -> str:
        """The plain progress line for the current count."""
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self._t0, 1e-9)
        rate = self.n / elapsed
        if self.total:
            head = f"{self.n:,}/{self.total:,} {self.unit}s ({100.0 * self.n / self.total:.1f}%)"
        else:
            head = f"{self.n:,} {self.unit}s"
        parts = [
            f"{self.desc}: {head}",
            f"{rate:,.1f} {self.unit}s/s" if rate < 10 else f"{rate:,.0f} {self.unit}s/s",
            f"elapsed {format_duration(elapsed)}",
        ]
        if final:
            parts.append("done")
        elif self.total:
            parts.append(f"ETA {format_duration((self.total - self.n) / rate) if rate > 0 else '?'}")
        if self._postfix:
            parts.append(self._postfix)
        return ", ".join(parts)

    def _emit(self, now: float, final: bool = False) -> None:
        try:
            print(self.line(now, final), file=self.file, flush=True)
        except (OSError, ValueError):  # a closed log must not kill the work
            return
        self._lines += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._plain and self._lines:
            self._emit(time.perf_counter(), final=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_bar(
    total: int | None,
    desc: str,
    enabled: bool | None = None,
    unit: str = "step",
    *,
    unit_scale: bool = False,
    leave: bool = False,
    interval: float | None = None,
) -> Progress:
    """A :class:`Progress` on stderr: a bar on a terminal, periodic plain lines otherwise,
    nothing when ``enabled`` is False (``None`` and ``True`` both mean "the default")."""
    return Progress(total, desc, unit=unit, enabled=enabled, unit_scale=unit_scale, leave=leave, interval=interval)
