"""Full integrity check of a store: structure, every checksum, every chunk decodes, values in range.

Opening the store (:class:`LabelStore`) already enforces the structural rules of the spec
(sizes, counts, types, table ranges; §6-§8) and reading a chunk checks its decoded values; this
adds what only a full pass can: every chunk decodes, chunks tile their segments exactly, and the
per-step mix tables are consistent."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import CodecUnavailableError, LplabelError
from . import layout as L
from .reader import LabelStore


@dataclass
class VerifyReport:
    path: str
    problems: list = field(default_factory=list)
    chunks_checked: int = 0
    bytes_checked: int = 0
    #: columns whose chunks could only be CRC-checked, not decoded: column -> why (a missing
    #: optional dependency, e.g. numba for the ``rans`` codec)
    undecoded: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        """The verdict: ``ok``, ``damaged`` (problems found) or ``unchecked`` (no damage found, but a
        column could only be checksummed, not decoded, here)."""
        return "damaged" if self.problems else ("unchecked" if self.undecoded else "ok")

    @property
    def exit_status(self) -> int:
        """``lplabel verify``'s exit status for :attr:`status`: 0 ok, 1 damaged, 3 unchecked."""
        return {"ok": 0, "damaged": 1, "unchecked": 3}[self.status]

    def to_json(self) -> dict:
        """Every field, plus the verdict (``ok``, ``status``, ``exit_status``); problems as text
        (what ``lplabel verify --json`` prints)."""
        import dataclasses

        facts = dataclasses.asdict(self)
        facts.update(
            ok=bool(self.ok), status=self.status, exit_status=self.exit_status, problems=[str(p) for p in self.problems]
        )
        return facts


def _segment_tiling(store: LabelStore, name: str) -> list:
    """Chunks must tile each segment exactly: no gaps, no overlaps, nothing past the end."""
    out = []
    ch = store.chunks[name]
    for s, (_, seglen) in enumerate(store.segment_offsets[name]):
        rows = ch[ch[:, 0] == s]
        ends = np.concatenate([[0], rows[:, 1] + rows[:, 2]])
        if len(rows) == 0 or np.any(rows[:, 1] != ends[:-1]) or ends[-1] != seglen:
            out.append(f"column {name!r}: chunks do not tile segment {s} exactly")
    return out


def _mix_problems(store: LabelStore) -> list:
    """CutMix boxes (spec §1.2): coordinates inside the output image (0..output_size, half-open
    boxes), and (0, 0, 0, 0) for a step that is not mixed (λ NaN). The reader checks λ itself."""
    out = []
    h = store.header
    size = (h.get("augmentation") or {}).get("output_size")
    top = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 32767
    box = store.tables[L.STEP_MIX_BOX].astype(np.int64)
    lam = store.tables[L.STEP_MIX_LAMBDA]
    bad = np.flatnonzero(((box < 0) | (box > top)).any(axis=1))
    if len(bad):
        out.append(
            f"{store.path}: steps/mix_box of step {int(bad[0])} is {box[bad[0]].tolist()}, outside the "
            f"{top}x{top} output image ({len(bad)} step(s)) [at steps/mix_box]"
        )
    bad = np.flatnonzero(np.isnan(lam) & (box != 0).any(axis=1))
    if len(bad):
        out.append(
            f"{store.path}: step {int(bad[0])} is not mixed (mix_lambda NaN) but has CutMix box "
            f"{box[bad[0]].tolist()} ({len(bad)} step(s)) [at steps/mix_box]"
        )
    return out


def verify_store(path, *, progress=None) -> VerifyReport:
    """Check everything; never raises for a damaged file, returns the problems instead."""
    report = VerifyReport(str(path))
    try:
        store = LabelStore(path)
    except LplabelError as e:
        report.problems.append(str(e))
        return report
    with store:
        generator = (store.header.get("extensions") or {}).get("label_generator")
        if generator is not None:  # spec §12 (its CRC-32 was checked when the store opened): the weights decode
            from ..generator import decode

            try:
                decode(generator, store.num_classes)
            except LplabelError as e:
                report.problems.append(f"{path}: label generator: {e}")
        cs = store.tables[L.CHUNK_STEP_START]
        nchunks = len(cs) - 1
        for name in L.COLUMNS:
            report.problems += _segment_tiling(store, name)
        report.problems += _mix_problems(store)
        C, N = store.num_classes, store.num_images
        rs = store.record_start
        for c in range(nchunks):
            for name in L.COLUMNS:
                if name in report.undecoded:
                    try:
                        store.read_chunk_bytes(name, c)  # the checksum, at least
                    except LplabelError as e:
                        report.problems.append(str(e))
                    continue
                try:
                    block = store.decode_chunk(name, c)
                except CodecUnavailableError as e:
                    report.undecoded[name] = e.message
                    try:
                        store.read_chunk_bytes(name, c)
                    except LplabelError as e2:
                        report.problems.append(str(e2))
                    continue
                except LplabelError as e:
                    report.problems.append(str(e))
                    continue
                report.chunks_checked += 1
                report.bytes_checked += int(store.chunks[name][c, 2])
                part = store._part(name, c)
                if name == "image":
                    a = block["image"]
                    if a.size and (a.min() < 0 or a.max() >= N):
                        report.problems.append(f"{path}: image id outside [0, {N}) [at {part}]")
                elif name == "mix_partner":
                    a = block["mix_partner"].astype(np.int64)
                    sizes = np.diff(rs[cs[c] : cs[c + 1] + 1])
                    limit = np.repeat(sizes, sizes)
                    if a.size and (np.any(a < -1) or np.any(a >= limit)):
                        report.problems.append(f"{path}: mix partner outside its step [at {part}]")
                elif name == "label" and "indices" in block:
                    a = block["indices"]
                    if a.size and (a.astype(np.int64).min() < 0 or a.astype(np.int64).max() >= C):
                        report.problems.append(f"{path}: top-k class index outside [0, {C}) [at {part}]")
                elif name == "crop":
                    if not np.isfinite(block["crop"].astype(np.float32)).all():
                        report.problems.append(f"{path}: non-finite crop box [at {part}]")
            if progress is not None:
                progress(1)
    return report
