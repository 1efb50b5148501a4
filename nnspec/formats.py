"""Data file formats: bytes on disk -> rows of cells or NumPy arrays, with located errors.

data.py turns what these readers give into a `Dataset`; this module only reads.
`open_binary` undoes gzip, bzip2 or xz compression, chosen by the file's suffix.
`fast_csv` reads a clean numeric CSV in bulk with `numpy.loadtxt` and gives up (None)
at the first thing it is unsure of, so that data.py's row-by-row reader can report the
problem at its line and column. `jsonl_rows` reads JSON lines as CSV-like rows;
`read_npy` and `read_idx` give arrays (memory-mapped where the file allows);
`read_parquet` needs pyarrow, imported only here. NumPy only; no JAX.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import math
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, cast

import numpy as np

# compressed CSV, TSV, JSON lines and IDX files are read through these, by suffix
COMPRESSIONS: dict[str, tuple[str, Callable[[Path], BinaryIO]]] = {
    # each reads as a binary file, though typeshed does not call its class a BinaryIO
    ".gz": ("gzip", lambda p: cast(BinaryIO, gzip.open(p, "rb"))),
    ".bz2": ("bzip2", lambda p: cast(BinaryIO, bz2.open(p, "rb"))),
    ".xz": ("xz", lambda p: cast(BinaryIO, lzma.open(p, "rb"))),
}

# What reading a damaged compressed file raises (a truncated gzip stream is an EOFError).
READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)


class FormatError(Exception):
    """A problem in a file, located: data.py turns it into a `DataError`."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None,
                 help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row
        self.column = column
        self.help = help


def compression(path: str | Path) -> str | None:
    """`gzip`, `bzip2` or `xz` for a file whose name ends in `.gz`, `.bz2` or `.xz`."""
    entry = COMPRESSIONS.get(Path(path).suffix.lower())
    return entry[0] if entry else None


def open_binary(full: Path) -> BinaryIO:
    """The file's bytes, decompressed as its suffix says (OSError if it cannot be opened)."""
    entry = COMPRESSIONS.get(full.suffix.lower())
    return entry[1](full) if entry else open(full, "rb")


def read_error(exc: BaseException, full: Path) -> str:
    """What went wrong reading `full`, in words: a damaged compressed file, or the OS's error."""
    kind = compression(full)
    if kind is not None and not (isinstance(exc, OSError) and exc.errno is not None):
        if isinstance(exc, EOFError):
            return f"the {kind} file is truncated: it ends in the middle of its compressed data"
        return f"cannot decompress the file as {kind} ({exc})"
    return f"cannot read the file ({getattr(exc, 'strerror', None) or exc})"


def read_help(exc: BaseException, full: Path) -> str | None:
    """How to fix what `read_error` says, where there is something to say."""
    kind = compression(full)
    if kind is None or (isinstance(exc, OSError) and exc.errno is not None):
        return None
    if isinstance(exc, EOFError):
        return "the file was cut short (an interrupted download or copy?): fetch or compress it again"
    return (f"the name ends in `{full.suffix}`, so it is read as {kind}; if the file is not compressed, "
            f"name it without `{full.suffix}`")


def read_bulk(full: Path, read: Callable[[BinaryIO], Any]) -> Any:
    """`read(f)` of the (decompressed) file, or None where it cannot be read: the caller's
    row-by-row reader then reports what is wrong, located."""
    try:
        with open_binary(full) as f:
            return read(f)
    except READ_ERRORS:
        return None


# ---------------------------------------------------------------------------------------
# CSV in bulk

LINE_CAP = 1 << 20  # the longest line the bulk reader completes a block with


def fast_csv(f: BinaryIO, *, delimiter: str, skip: int, width: int, text_column: int | None = None,
             ignore: tuple[int, ...] = (), limit: int = 1 << 62, block: int = 1 << 20,
             ) -> tuple[np.ndarray, np.ndarray, list[str] | None] | None:
    """`(values, lines, labels)` of a clean CSV's data rows, or None to read it row by row.

    Reads `f` (the file's bytes) `block` bytes at a time, each with `numpy.loadtxt`, so a
    problem early in a large file is given up on (and then reported by the row-by-row
    reader) without reading the rest. `values` is float64 (rows, width); the data starts
    after the first `skip` lines (the header). Columns in `ignore` are not read (they are
    0). With `text_column`, that column may instead hold class names: its values are then
    codes into `labels`, in the order each name first appears. None wherever the
    row-by-row reader could see the file differently (quotes, blank lines between rows, a
    space as the delimiter, bytes that are not UTF-8, a cell that is no number), and past
    `limit` bytes."""
    if len(delimiter) != 1 or delimiter in "\" \r\n":
        return None
    for _ in range(skip):
        if not f.readline():
            return None
    skipped = {i: _zero for i in ignore}
    codes: dict[str, int] = {}
    text_mode: bool | None = None  # decided by the first block: numbers, or class names in `text_column`

    def code(cell: str) -> float:
        label = cell.strip()
        if not label:
            raise ValueError("missing value")
        return codes.setdefault(label, len(codes))

    parts: list[np.ndarray] = []
    starts: list[tuple[int, int]] = []  # (first line, rows) of each block
    line, total = skip, 0
    while True:
        data = f.read(block)
        if not data:
            break
        if not data.endswith(b"\n"):
            cap = max(block, LINE_CAP)
            rest = f.readline(cap)  # whole lines only; a longer line is left to the row-by-row reader
            if len(rest) == cap and not rest.endswith(b"\n"):
                return None
            data += rest
        total += len(data)
        if total > limit or b'"' in data:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if line == 0:
            text = text.lstrip("\ufeff")
        body = text.rstrip("\r\n")  # blank lines at a block's end shift nothing after them
        first_line = line + 1
        line += text.count("\n") + (0 if text.endswith("\n") else 1)
        if not body:
            continue
        if "\r" in body.replace("\r\n", ""):  # a lone carriage return ends a line for csv, not loadtxt
            return None
        rows = body.count("\n") + 1
        values = None if text_mode else _loadtxt(body, delimiter, skipped or None)
        if values is None and text_mode is None and text_column is not None:
            cells = body[:body.find("\n")].split(delimiter) if "\n" in body else body.split(delimiter)
            if len(cells) != width or _is_number(cells[text_column]):
                return None  # a numeric first target: every target must be a number (row by row says where not)
            text_mode = True
        if text_mode:
            values = _loadtxt(body, delimiter, {**skipped, text_column: code})
        text_mode = bool(text_mode)
        # loadtxt drops blank lines, which would shift every later row's line number
        if values is None or values.shape != (rows, width):
            return None
        parts.append(values)
        starts.append((first_line, rows))
    if not parts:
        return None
    values = parts[0] if len(parts) == 1 else np.concatenate(parts)
    lines = np.concatenate([np.arange(first, first + rows, dtype=np.int64) for first, rows in starts])
    return values, lines, list(codes) if text_mode else None


def _zero(cell: str) -> float:
    return 0.0


def _loadtxt(body: str, delimiter: str, converters: dict | None) -> np.ndarray | None:
    try:
        return np.loadtxt(io.StringIO(body), delimiter=delimiter, comments=None, dtype=np.float64,
                          ndmin=2, converters=converters, encoding=None)
    except (ValueError, TypeError, IndexError):
        return None


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip())
    except ValueError:
        return False
    return "_" not in cell


# ---------------------------------------------------------------------------------------
# JSON lines: one object a line, its keys the columns

def jsonl_rows(lines: Iterator[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) of each non-blank line; FormatError at a line that is not an object."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            column = getattr(exc, "colno", None)
            where = f" at character {column}" if column else ""
            raise FormatError(f"cannot read the line as JSON{where} ({getattr(exc, 'msg', exc)})", row=number,
                              help="each line must hold one JSON object, as in `{\"x1\": 0.5, \"label\": \"yes\"}`"
                              ) from None
        if not isinstance(obj, dict):
            raise FormatError(f"expected a JSON object, found {_json_kind(obj)}", row=number,
                              help="each line must hold one JSON object, as in `{\"x1\": 0.5, \"label\": \"yes\"}`")
        yield number, obj


def json_cell(value: Any, *, row: int, column: str) -> str:
    """One JSON value as a CSV cell: numbers and strings as written, `null` empty (a
    missing value), `true`/`false` as 1/0; a list or object is refused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    raise FormatError(f"expected a number or a string, found {_json_kind(value)}", row=row, column=column,
                      help="each key holds one value; save arrays as `.npy` files instead")


def _json_kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "`true` or `false`",
            type(None): "`null`"}.get(type(v), "a number")


# ---------------------------------------------------------------------------------------
# NumPy `.npy`: one array, memory-mapped

def read_npy(full: Path) -> np.ndarray:
    """The array in a `.npy` file, memory-mapped (read-only) when uncompressed."""
    try:
        with open(full, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise FormatError(f"cannot read the file ({exc.strerror or exc})") from None
        raise FormatError("cannot read the file as a NumPy `.npy` array",
                          help="write it with `numpy.save(path, array)`") from None
    if dtype.hasobject:
        raise FormatError("the array holds Python objects, not numbers",
                          help="convert it with `numpy.asarray(a, dtype=float)` before saving")
    need = math.prod(shape) * dtype.itemsize
    have = full.stat().st_size - offset
    if have < need:
        raise FormatError(f"the header declares shape {_shape(shape)} of `{dtype}` ({need:,} bytes), "
                          f"but the file holds {have:,} bytes after it",
                          help="the file is truncated or damaged: write it again with `numpy.save`")
    if need == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(full, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# ---------------------------------------------------------------------------------------
# IDX, the format of MNIST and Fashion-MNIST: 0, 0, a type byte, the number of
# dimensions, each dimension as a big-endian uint32, then the values, big-endian.

IDX_TYPES: dict[int, np.dtype] = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(full: Path, limit: int) -> np.ndarray:
    """The array in an IDX file (gzipped if its name ends in `.gz`, and so on); an
    uncompressed file is memory-mapped. FormatError if the header does not fit the file."""
    kind = compression(full)
    try:
        with open_binary(full) as f:
            head = f.read(4)
            if len(head) == 4 and head[:2] == b"\0\0" and head[3] > 0:
                dims_raw = f.read(4 * head[3])
            else:
                dims_raw = b""
            header = 4 + len(dims_raw)
            if len(head) < 4 or head[:2] != b"\0\0":
                hint = ("the file is gzip-compressed: name it with a `.gz` suffix"
                        if head[:2] == b"\x1f\x8b" and kind is None else
                        "IDX files start with two zero bytes, a type byte and the number of dimensions")
                raise FormatError("not an IDX file: the first bytes are not an IDX header", help=hint)
            if head[2] not in IDX_TYPES:
                raise FormatError(f"unknown IDX value type 0x{head[2]:02X}",
                                  help="the types are 0x08 (unsigned byte), 0x09 (signed byte), 0x0B (short), "
                                       "0x0C (int), 0x0D (float) and 0x0E (double)")
            if head[3] == 0 or len(dims_raw) < 4 * head[3]:
                raise FormatError(f"the IDX header is cut short: it declares {head[3]} dimension(s)")
            shape = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            dtype = IDX_TYPES[head[2]]
            need = math.prod(shape) * dtype.itemsize
            if need > limit:
                raise FormatError(f"the header declares shape {_shape(shape)} ({need:,} bytes), more than "
                                  f"the {limit:,} bytes allowed (half of this machine's memory)",
                                  help="use fewer examples, or a machine with more memory")
            if kind is None:
                have = full.stat().st_size - header
                if have != need:
                    raise FormatError(_idx_size(shape, dtype, need, have))
                if need == 0:  # nothing to map: data.py says the file holds no examples
                    return np.zeros(shape, dtype=dtype)
                return np.memmap(full, dtype=dtype, mode="r", offset=header, shape=shape)
            data = f.read(need + 1)
    except FormatError:
        raise
    except READ_ERRORS as exc:
        raise FormatError(read_error(exc, full), help=read_help(exc, full)) from None
    if len(data) != need:
        raise FormatError(_idx_size(shape, dtype, need, len(data)))
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _idx_size(shape: tuple[int, ...], dtype: np.dtype, need: int, have: int) -> str:
    return (f"the header declares shape {_shape(shape)} of {dtype.itemsize}-byte values ({need:,} bytes), "
            f"but the file holds {have:,} bytes after the header")


# ---------------------------------------------------------------------------------------
# Parquet (pyarrow, an optional extra)

def _pyarrow() -> Any:
    """pyarrow.parquet, or a FormatError saying how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise FormatError("reading Parquet files needs pyarrow, which is not installed",
                          help="install it with `pip install 'nnspec[parquet]'`") from None
    return pq


def _unreadable(exc: BaseException) -> FormatError:
    return FormatError(f"cannot read the file as Parquet ({str(exc).splitlines()[0][:200] if str(exc) else exc!r})",
                       help="write it with `pandas.DataFrame.to_parquet` or `pyarrow.parquet.write_table`")


def _column_array(col: Any, name: str) -> np.ndarray:
    """One Parquet column (a whole one, or a piece of one) as `read_parquet` gives it."""
    import pyarrow as pa
    t = col.type
    if (pa.types.is_integer(t) or pa.types.is_boolean(t)) and col.null_count == 0:
        return col.cast(pa.int64()).to_numpy(zero_copy_only=False)  # class indices stay whole
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return np.asarray(col.cast(pa.string()).to_pylist(), dtype=object)
    raise FormatError(f"has type `{t}`; nnspec reads numbers and text", column=name)


def read_parquet(full: Path, columns: list[str] | None) -> tuple[list[str], dict[str, np.ndarray]]:
    """The file's column names, and the `columns` asked for (all by default) as NumPy
    arrays: whole numbers as int64 (float64 with NaN where some are null), other numbers
    as float64 with NaN for nulls, text as an object array with None for nulls."""
    pq = _pyarrow()
    import pyarrow as pa
    try:
        schema = pq.read_schema(full)
        names = list(schema.names)
        wanted = names if columns is None else [c for c in columns if c in names]
        table = pq.read_table(full, columns=wanted)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(exc) from None
    return names, {name: _column_array(table.column(name), name) for name in wanted}


def parquet_kinds(full: Path, columns: list[str]) -> tuple[int, dict[str, str]]:
    """(the file's rows, `number` or `text` for each of `columns`), from its metadata
    alone; FormatError for a column `read_parquet` could not read, the first in `columns`."""
    pq = _pyarrow()
    import pyarrow as pa
    try:
        meta = pq.ParquetFile(full)
        schema, rows = meta.schema_arrow, int(meta.metadata.num_rows)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(exc) from None
    kinds: dict[str, str] = {}
    for name in columns:
        t = schema.field(name).type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            kinds[name] = "number"
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            kinds[name] = "text"
        else:
            raise FormatError(f"has type `{t}`; nnspec reads numbers and text", column=name)
    return rows, kinds


PARQUET_BUFFER = 8 << 20  # what `parquet_pieces` reads ahead of its columns' chunks, in all


def parquet_pieces(full: Path, columns: list[str], rows: int) -> Iterator[dict[str, np.ndarray]]:
    """The `columns` of a Parquet file, at most `rows` rows at a time (pyarrow's
    `iter_batches`), each as `read_parquet` converts it. Each column chunk is read through
    a buffer (PARQUET_BUFFER bytes shared among the columns, 64 KiB each at least), not
    pre-buffered: the memory held is a piece and a page of each column, not a row group
    (which a writer may make as large as the file)."""
    pq = _pyarrow()
    import pyarrow as pa
    try:
        buffer = min(1 << 20, max(64 << 10, PARQUET_BUFFER // max(1, len(columns))))
        f = pq.ParquetFile(full, buffer_size=buffer, pre_buffer=False)
        batches = f.iter_batches(batch_size=max(1, rows), columns=columns, use_threads=False)
        for batch in batches:
            yield {name: _column_array(batch.column(name), name) for name in columns}
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable(exc) from None
    finally:  # the pages and buffers go back to the OS, not to pyarrow's pool for later
        pa.default_memory_pool().release_unused()
