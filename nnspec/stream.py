"""Data larger than memory: `train { stream }` reads the training examples from their
memory-mapped `.npy` file one window of mini-batches at a time.

`Rows` stands for some rows of such a file, in an order, without reading them: the split
(`Dataset.take`), the conversion to float32 and `standardize` only compose their indices
and transforms, and `read` fetches the rows asked for, then hands the file's pages back to
the operating system (`madvise(MADV_DONTNEED)`: the page cache keeps them, this process's
resident memory does not). So the training loop (trainer.py) holds a window of examples,
not the data set, and peak memory stays bounded by the window, whatever the file's size.

The examples a window holds are the ones the in-memory epoch would use at those steps (the
same shuffle of (seed, epoch), the same padded last batch), so a streamed run trains on
the same batches in the same order as an unstreamed one, and resumes the same way.
"""

from __future__ import annotations

import mmap
from typing import Any, Iterator

import numpy as np

# `stream` without a size: windows of about this many bytes of features
WINDOW_BYTES = 32 << 20
# what the data checks and `standardize`'s statistics read at a time (their float64
# temporaries are several times a piece), and the block a window is gathered by
PIECE_BYTES = 8 << 20


class Rows:
    """Rows `index` of `base` (an array shaped (examples, ...), usually an `np.memmap`),
    as `dtype`, scaled by `scale` (a data.Standardizer) when given. Array-like enough for
    the data checks (shape, dtype, slices, `astype`); `read` (or `np.asarray`) fetches."""

    def __init__(self, base: np.ndarray, index: np.ndarray | None = None, dtype: Any = None,
                 scale: Any = None) -> None:
        self.base = base
        self.index = index  # None: every row, in the file's order
        self.dtype = np.dtype(dtype if dtype is not None else base.dtype)
        self.scale = scale
        self.largest_read = 0  # the most rows one `read` has fetched (what a test bounds)
        self.rows_read = 0  # rows fetched in all (each process of a run over hosts reads its own)

    # -- what an array tells about itself
    def __len__(self) -> int:
        return len(self.base) if self.index is None else len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.base.shape[1:])

    @property
    def ndim(self) -> int:
        return self.base.ndim

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"Rows({self.shape}, {self.dtype}, of {type(self.base).__name__})"

    # -- views: nothing is read
    def _view(self, index: np.ndarray | None, dtype: Any = None, scale: Any = None) -> Rows:
        return Rows(self.base, index, self.dtype if dtype is None else dtype,
                    self.scale if scale is None else scale)

    def _rows(self, key: Any) -> np.ndarray:
        """The base's row numbers of `key` (a slice or integer array into this view)."""
        if self.index is None:
            return np.arange(len(self.base))[key]
        return self.index[key]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):  # an element, as a message quotes it: read its row only
            row = self.read(np.asarray([key[0]]))[0]
            return row[key[1:]]
        if isinstance(key, (int, np.integer)):
            return self.read(np.asarray([key]))[0]
        return self._view(self._rows(key))

    def astype(self, dtype: Any, copy: bool = True) -> Rows:
        return self._view(self.index, dtype=dtype)

    def scaled(self, scale: Any) -> Rows:
        """These rows as `scale.apply` maps them (on each read)."""
        assert self.scale is None, "standardized twice"
        return self._view(self.index, scale=scale)

    # -- reading
    def read(self, key: Any = None) -> np.ndarray:
        """The rows `key` of this view (all, by default) as an array in memory."""
        if key is None and self.index is None:
            rows = None
        else:
            rows = self._rows(slice(None) if key is None else key)
        if rows is None:
            got = np.array(self.base, dtype=self.dtype)
        elif rows.size and np.all(np.diff(rows) == 1):  # a run of rows: one slice
            got = np.array(self.base[int(rows[0]):int(rows[-1]) + 1], dtype=self.dtype)
        else:  # the file is read in its own order (sequential I/O), then put in ours, a block at a time
            order = np.argsort(rows, kind="stable")
            got = np.empty((len(rows), *self.base.shape[1:]), self.dtype)
            block = rows_per_piece(self.base)
            # scattered rows: without MADV_RANDOM each one maps its neighbours too (the
            # kernel's fault-around), 16 pages for every row read
            advise(self.base, "MADV_RANDOM")
            for s in range(0, len(rows), block):
                got[order[s:s + block]] = self.base[rows[order[s:s + block]]]
                release(self.base)
            advise(self.base, "MADV_NORMAL")
        release(self.base)
        self.largest_read = max(self.largest_read, len(got))
        self.rows_read += len(got)
        return got if self.scale is None else self.scale.apply(got)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        got = self.read()
        return got if dtype is None else got.astype(dtype)

    def pieces(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, the rows) of this view, `rows` at a time."""
        for start in range(0, len(self), rows):
            yield start, self.read(slice(start, start + rows))


def release(a: Any) -> None:
    """Hand the pages of `a`'s memory map back to the OS (a no-op for an array in memory,
    or where the platform lacks madvise). The file's data stays in the page cache."""
    advise(a, "MADV_DONTNEED")


def advise(a: Any, flag: str) -> None:
    """`madvise(flag)` over the whole memory map under `a`, where there is one and the
    platform knows the flag."""
    while a is not None and not isinstance(a, mmap.mmap):
        a = getattr(a, "base", None)
    if a is not None and hasattr(a, "madvise") and hasattr(mmap, flag):
        try:
            a.madvise(getattr(mmap, flag))
        except (OSError, ValueError):  # a closed map, or one the kernel refuses: nothing held
            pass


def rows_per_piece(a: Any, budget: int | None = None) -> int:
    """How many rows of `a` fit in `budget` bytes (default PIECE_BYTES, read when called);
    at least one."""
    per = max(1, int(np.prod(a.shape[1:])) * np.dtype(a.dtype).itemsize)
    return max(1, (PIECE_BYTES if budget is None else budget) // per)


def window(batch: int, steps: int, example_bytes: int, asked: int | None) -> int:
    """Mini-batches per window: `asked` examples (a multiple of the batch, checked), else
    as many as fit in WINDOW_BYTES; never more than the epoch has."""
    per = asked // batch if asked else max(1, WINDOW_BYTES // max(1, example_bytes * batch))
    return max(1, min(steps, per))


def is_lazy(a: Any) -> bool:
    return isinstance(a, Rows)
