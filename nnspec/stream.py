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

A Parquet file cannot be memory-mapped as an array: its columns are compressed, in row
groups. `spool` writes the feature columns once, a bounded piece at a time (data.py reads
them with formats.parquet_pieces), as a float32 `.npy` file in the cache folder
(`$XDG_CACHE_HOME/nnspec/stream`, else `~/.cache/nnspec/stream`), and `Rows` maps that
file as it maps a `.npy` source. The spool's name is a hash of the file's absolute path,
the columns (in order), and the file's size, modification time and inode: a later run of
the same file reuses it, a changed file gets a new one (and the old one is removed).
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

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


def windows(batch: int, steps: int, example_bytes: int, asked: int | None) -> list[tuple[int, int]]:
    """The epoch's windows, as (first step, end step): at most `asked` examples each (a
    multiple of the batch, of three batches at least: checked, E328 and E332), else at
    most as many as fit in WINDOW_BYTES (three batches at least). Their lengths are evened
    out (they differ by one step at most), which with windows of three steps or more
    leaves none of a single step unless the epoch is one: XLA inlines a loop of one trip
    into the program around it, and the step then computed its weights differently in the
    last bits from the same step inside the loop of the epoch loaded whole."""
    most = asked // batch if asked else max(3, WINDOW_BYTES // max(1, example_bytes * batch))
    most = max(1, min(steps, most))
    count = -(-steps // most)
    base, extra = divmod(steps, count)  # `extra` windows of base + 1 steps, then base-step ones
    bounds, start = [], 0
    for j in range(count):
        end = start + base + (j < extra)
        bounds.append((start, end))
        start = end
    return bounds


def is_lazy(a: Any) -> bool:
    return isinstance(a, Rows)


# ---------------------------------------------------------------------------------------
# Spools: a Parquet file's feature columns, written once as a float32 `.npy` file

SPOOL_VERSION = 1  # part of every spool's name: a change to what a spool holds bumps it
STALE_SECONDS = 3600  # a temporary spool not written to for this long was left by a killed run


class SpoolError(Exception):
    """The spool cannot be written (data.py turns it into a located DataError)."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def spool_folder() -> Path:
    """Where spools are kept: `$XDG_CACHE_HOME/nnspec/stream`, else `~/.cache/nnspec/stream`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnspec" / "stream"


def spool_path(source: Path, columns: Sequence[str], st: os.stat_result | None = None) -> Path:
    """The spool of `columns` (in that order) of the file `source` as it is now (as `st`,
    its `os.stat`, says)."""
    st = st or source.stat()
    who = hashlib.sha256(repr((SPOOL_VERSION, str(source.resolve()), tuple(columns))).encode()).hexdigest()[:20]
    when = hashlib.sha256(repr((st.st_size, st.st_mtime_ns, st.st_ino)).encode()).hexdigest()[:12]
    return spool_folder() / f"{who}-{when}.npy"


def _open_spool(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The spool at `path`, memory-mapped, if it is one of `shape` (None: write it)."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != np.float32:
        return None
    return a


def spool(source: Path, columns: Sequence[str], shape: tuple[int, ...],
          fill: Callable[[np.ndarray], bool]) -> np.ndarray | None:
    """The spool of `columns` of `source` (`shape`: (rows, columns)), memory-mapped: the
    one a previous run wrote when the file is unchanged, else a new one that `fill(out)`
    writes (`out` a writable float32 memory map) and keeps only if it returns True (None
    then: `fill` found something wrong). Written under a temporary name and renamed into
    place, so a reader never maps half a spool; SpoolError if it cannot be written."""
    try:
        before = source.stat()
    except OSError as exc:
        raise SpoolError(f"cannot read the file ({exc.strerror or exc})") from None
    target = spool_path(source, columns, before)
    found = _open_spool(target, shape)
    if found is not None:
        return found
    folder = target.parent
    who = target.name.split("-")[0]
    tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    changed = False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder, who)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        _allocate(tmp)
        try:
            keep = fill(out)
            out.flush()
        finally:
            del out
        if keep:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
                # the pages its memory map wrote are evicted, clean: a window read later maps
                # what readahead brings in, as from any file, not the larger folios written
                # (measured: twice the peak memory of reading the same bytes from a copy)
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            after = source.stat()
            changed = (after.st_size, after.st_mtime_ns, after.st_ino) != (before.st_size, before.st_mtime_ns,
                                                                             before.st_ino)
            if not changed:
                os.replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        need = int(np.prod(shape)) * 4
        raise SpoolError(f"cannot write the stream spool `{tmp.name}` in `{folder}` "
                         f"({exc.strerror or exc}; it takes {need:,} bytes)",
                         help="`stream` writes a Parquet file's features there once; free some space, or point "
                              "XDG_CACHE_HOME at a disk with room") from None
    except BaseException:
        _discard(tmp)
        raise
    if changed:
        _discard(tmp)
        raise SpoolError("the file changed while its features were read", help="train again once it is written")
    if not keep:
        _discard(tmp)
        return None
    for old in folder.glob(f"{who}-*.npy"):  # the spools of this file as it was before
        if old != target:
            _discard(old)
    got = _open_spool(target, shape)
    if got is None:
        raise SpoolError(f"the stream spool `{target.name}` in `{folder}` was removed as soon as it was written "
                         "(by another run, of a changed file?)", help="train again")
    return got


def _remove_stale(folder: Path, who: str) -> None:
    """Remove this file's temporary spools that a killed run left (not written for an hour)."""
    now = time.time()
    for old in folder.glob(f".{who}-*.tmp"):
        try:
            if now - old.stat().st_mtime > STALE_SECONDS:
                old.unlink()
        except OSError:
            pass


def _allocate(path: Path) -> None:
    """Reserve the disk blocks of the (sparse) file at `path` now: a full disk is then an
    OSError here, not a SIGBUS when a page of its memory map is first written."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a file system that cannot
            raise
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a folder that never was (a file where it would be): nothing was written
        pass
