"""The sampler JSON files of LPLD/LPQLD, read and written without holding them in memory.

``sampler_indices_epoch.json`` (LPLD) maps ``"<epoch>"`` to the image indices of that epoch in
sampler order; ``sampler_indices_batch.json`` (LPQLD) maps ``"<global batch>"`` to the B
indices of one batch. Both are written by ``json.dump(dict, f)``. For ImageNet-1K IPC200 with
301 epochs the LPLD file holds 60 M integers: ``json.load`` would build a few GB of Python
ints, so :class:`JsonIntLists` scans the file once for the byte range of every list and parses
one list at a time into numpy. :class:`JsonIntListsWriter` streams lists out in exactly the
bytes ``json.dump`` produces (``{"0": [1, 2], "1": [3]}``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import LegacyFormatError

_SCAN = 1 << 22
_ALLOWED = b"0123456789-, \t\r\n"


class JsonIntLists:
    """Index of a JSON object whose values are lists of integers (the legacy sampler files)."""

    def __init__(self, path):
        self.path = Path(path)
        self.spans: dict = {}  # key -> (start, end) byte offsets of the text between '[' and ']'
        self.keys: list = []
        self._separators: list = []  # the bytes between tokens, to tell canonical json.dump output
        self._scan()

    def _fail(self, msg: str):
        raise LegacyFormatError(
            msg,
            path=self.path,
            hint="the sampler JSON is damaged; regenerate it with the legacy generator or pass the order explicitly",
        )

    def _scan(self) -> None:
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise LegacyFormatError(f"cannot read ({e.strerror})", path=self.path) from None
        with f:
            data = f.read(_SCAN)
            pos = 0  # absolute offset of data[0]
            i = 0  # index into data
            state = "start"
            key = None
            sep = bytearray()

            def more():
                nonlocal data, pos, i
                chunk = f.read(_SCAN)
                if not chunk:
                    return False
                data = data[i:] + chunk
                pos += i
                i = 0
                return True

            while True:
                if i >= len(data) and not more():
                    break
                c = data[i : i + 1]
                if state == "start":
                    if c.isspace():
                        i += 1
                        continue
                    if c != b"{":
                        self._fail("not a JSON object (expected '{')")
                    state, i = "key", i + 1
                elif state in ("key", "next"):
                    if c.isspace() or (state == "next" and c == b","):
                        sep += c
                        i += 1
                        continue
                    if c == b"}":
                        self._separators.append(bytes(sep))
                        state = "end"
                        i += 1
                        continue
                    if c != b'"':
                        self._fail(f"unexpected {c!r} at byte {pos + i} (expected a quoted key)")
                    while True:
                        j = data.find(b'"', i + 1)
                        if j >= 0:
                            break
                        if not more():
                            self._fail("unterminated key")
                    key = data[i + 1 : j].decode("utf-8", "replace")
                    if key in self.spans:
                        self._fail(f"key {key!r} appears twice")
                    self._separators.append(bytes(sep))
                    sep = bytearray()
                    i = j + 1
                    state = "colon"
                elif state == "colon":
                    if c.isspace() or c == b":":
                        sep += c
                        i += 1
                        continue
                    if c != b"[":
                        self._fail(f"the value of key {key!r} is not a list of integers")
                    self._separators.append(bytes(sep))
                    sep = bytearray()
                    start = pos + i + 1
                    while True:
                        j = data.find(b"]", i + 1)
                        k = data.find(b"[", i + 1)
                        if 0 <= k < (j if j >= 0 else len(data)):
                            self._fail(f"the value of key {key!r} is a nested list")
                        if j >= 0:
                            break
                        if not more():
                            self._fail(f"the list of key {key!r} is not closed")
                    self.spans[key] = (start, pos + j)
                    self.keys.append(key)
                    i = j + 1
                    state = "next"
                else:  # end
                    if not c.isspace():
                        self._fail("trailing data after the JSON object")
                    i += 1
        if state != "end":
            self._fail("the file ends before the JSON object is closed")

    def __contains__(self, key) -> bool:
        return str(key) in self.spans

    def __len__(self) -> int:
        return len(self.keys)

    def raw(self, key) -> bytes:
        start, end = self.spans[str(key)]
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def get(self, key) -> np.ndarray:
        """The list of ``key`` as int64 (validated: integers separated by commas only)."""
        text = self.raw(key)
        if text.strip() == b"":
            return np.zeros(0, dtype=np.int64)
        if text.translate(None, _ALLOWED):
            self._fail(f"the list of key {key!r} holds something other than integers")
        parts = text.split(b",")
        try:
            arr = (
                np.array([int(p) for p in parts], dtype=np.int64)
                if len(parts) < 64
                else np.array(parts, dtype=np.bytes_).astype(np.int64)
            )
        except ValueError:
            self._fail(f"the list of key {key!r} holds something other than integers")
        return arr

    def is_canonical_list(self, key, values: np.ndarray) -> bool:
        """True when the list's text is exactly what ``json.dump`` writes for ``values``."""
        return self.raw(key) == format_int_list(values).encode("ascii")

    @property
    def canonical_separators(self) -> bool:
        """True when every separator is the one ``json.dump`` uses (', ' and ': ')."""
        seps = self._separators
        if not seps:
            return False
        expected = [b""] + [b": " if n % 2 == 0 else b", " for n in range(len(seps) - 2)] + [b""]
        return seps == expected


def format_int_list(values) -> str:
    return ", ".join(map(str, np.asarray(values).tolist()))


class JsonIntListsWriter:
    """Write ``{"key": [ints], ...}`` incrementally, byte-identical to ``json.dump(dict, f)``."""

    def __init__(self, path):
        self.path = Path(path)
        self._f = open(self.path, "w", encoding="ascii", newline="")
        self._f.write("{")
        self._n = 0
        self._open = False
        self._items = 0

    def begin(self, key) -> None:
        if self._open:
            self.end()
        if self._n:
            self._f.write(", ")
        self._f.write(f'"{key}": [')
        self._n += 1
        self._open = True
        self._items = 0

    def extend(self, values) -> None:
        vals = np.asarray(values)
        if not vals.size:
            return
        if self._items:
            self._f.write(", ")
        self._f.write(format_int_list(vals))
        self._items += vals.size

    def end(self) -> None:
        if self._open:
            self._f.write("]")
            self._open = False

    def close(self) -> None:
        if self._f.closed:
            return
        self.end()
        self._f.write("}")
        self._f.close()

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
