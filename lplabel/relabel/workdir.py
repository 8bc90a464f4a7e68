"""The work directory of a resumable relabel run: a manifest plus one finished store per part.

Layout of ``OUT.lpl.partial/`` (the default work directory of ``OUT.lpl``)::

    manifest.json        what the run computes (config, plan, final codec chain); JSON
    part-000000.lpl      a complete label store holding the plan's steps of part 0
    part-000001.lpl      ...
    .part-000002.lpl.XXXX.tmp   a part being written (StoreWriter's temporary name)

A part file exists under its final name only once it is complete (StoreWriter writes a
temporary file and renames it), so after a kill every ``part-*.lpl`` is whole and a restart
computes only the missing parts. Temporary files of killed writers are removed on restart.
The manifest pins everything that decides the content; a restart with different settings is
refused instead of mixing labels from two runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..store.writer import publish, temp_path_for
from .errors import WorkDirError

MANIFEST = "manifest.json"
MANIFEST_KIND = "lplabel-relabel-workdir"
MANIFEST_VERSION = 1
_PART_RE = re.compile(r"^part-(\d{6,})\.lpl$")


def default_work_dir(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def part_name(part: int) -> str:
    return f"part-{int(part):06d}.lpl"


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _diff_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_keys(va, vb, f"{prefix}{k}.")
        elif _canon(va) != _canon(vb):
            out.append(prefix + k)
    return out


class WorkDir:
    """A relabel work directory (see the module doc)."""

    def __init__(self, path):
        self.path = Path(path)
        #: set by :meth:`prepare` when it replaced the directory of another run that held no part
        self.replaced = False

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict:
        try:
            m = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkDirError("no manifest.json: not a relabel work directory", path=self.path) from None
        except (OSError, ValueError) as e:
            raise WorkDirError(
                f"unreadable manifest ({e})", path=self.manifest_path, hint="delete the work directory to start over"
            ) from None
        if not isinstance(m, dict) or m.get("kind") != MANIFEST_KIND:
            raise WorkDirError("manifest.json is not a relabel manifest", path=self.manifest_path)
        if m.get("version") != MANIFEST_VERSION:
            raise WorkDirError(
                f"manifest version {m.get('version')!r}, this lplabel writes {MANIFEST_VERSION}",
                path=self.manifest_path,
                hint="finish it with the lplabel that started it, or delete it",
            )
        return m

    def write_manifest(self, manifest: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(self.manifest_path)
        try:
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
            publish(tmp, self.manifest_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def prepare(self, manifest: dict, *, fresh: bool = False) -> dict:
        """Create the directory with ``manifest``, or check that an existing one matches it.

        ``fresh``: discard an existing work directory first. A mismatch raises WorkDirError
        naming the differing settings -- unless the old run left no finished part and no part
        being written (it failed or was killed before its first part): then there is nothing to
        resume, and the directory is replaced (``self.replaced``) instead of blocking this run.
        """
        if fresh and self.path.exists():
            self.remove()
        if self.exists():
            old = self.read_manifest()
            diff = _diff_keys(
                {k: old.get(k) for k in ("config", "plan", "final")},
                {k: manifest.get(k) for k in ("config", "plan", "final")},
            )
            if diff and not self.finished_parts() and not self._temps():
                self.remove()
                self.replaced = True
                diff = None
            if diff:
                shown = ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
                raise WorkDirError(
                    f"the unfinished run in this work directory used different settings ({shown})",
                    path=self.path,
                    hint="re-run with the original settings to resume it, or pass --fresh to discard it and start over",
                )
            if diff is not None:
                return old
        if self.path.exists() and any(self.path.iterdir()):
            raise WorkDirError(
                "work directory exists but has no manifest.json",
                path=self.path,
                hint="remove it or choose another --work-dir",
            )
        self.write_manifest(manifest)
        return manifest

    def _temps(self) -> list[Path]:
        return [p for p in self.path.iterdir() if p.name.endswith(".tmp")] if self.path.is_dir() else []

    def part_path(self, part: int) -> Path:
        return self.path / part_name(part)

    def finished_parts(self) -> set[int]:
        if not self.path.is_dir():
            return set()
        out = set()
        for p in self.path.iterdir():
            m = _PART_RE.match(p.name)
            if m:
                out.add(int(m.group(1)))
        return out

    def clean_temps(self, parts) -> None:
        """Remove temporary files left by killed writers of ``parts`` (only those)."""
        if not self.path.is_dir():
            return
        prefixes = tuple(f".{part_name(j)}." for j in parts)
        for p in self.path.iterdir():
            if p.name.endswith(".tmp") and p.name.startswith(prefixes):
                p.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def lock(self):
        """An exclusive advisory lock on the directory (for the final merge); a context manager."""
        return _DirLock(self.path / ".merge.lock")


class _DirLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        return self

    def __exit__(self, *exc):
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except (ImportError, OSError):  # pragma: no cover
            pass
        os.close(self.fd)
        return False
