"""Checkpoints: one `.npz` file per save, written atomically, verified when read.

Why not Orbax: it is the JAX ecosystem's tool for sharded, multi-host, asynchronous
checkpoints of large models, and brings tensorstore and an async runtime with it. An
nnspec model is a small single-host pytree; one NumPy archive (a zip with a CRC per
array, readable by any NumPy) written to a temporary file and renamed into place is
simpler, faster, and cannot be left half-written. The pytree's structure is not stored:
it is rebuilt from the spec (a template state), and every leaf's shape is checked.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

FORMAT = "nnspec-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file and a rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(path: Path, trees: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Save named pytrees of arrays (leaves in flattening order) and JSON metadata."""
    import jax
    arrays: dict[str, np.ndarray] = {}
    for name, tree in trees.items():
        leaves = jax.tree_util.tree_leaves(tree)
        for i, leaf in enumerate(leaves):
            arrays[f"{name}/{i:06d}"] = np.asarray(leaf)
    header = {"format": FORMAT, "version": VERSION, "trees": {n: len(jax.tree_util.tree_leaves(t))
                                                              for n, t in trees.items()}, **meta}
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


def read_meta(path: Path) -> dict[str, Any]:
    """Only the metadata (cheap), validated as an nnspec checkpoint."""
    return _open(path)[1]


def load(path: Path, templates: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore each named pytree into the structure of its template (arrays, or just
    shapes and dtypes such as `jax.eval_shape` gives); returns (trees, meta)."""
    import jax
    arrays, meta = _open(path)
    out = {}
    for name, template in templates.items():
        leaves, treedef = jax.tree_util.tree_flatten(template)
        stored = meta["trees"].get(name)
        if stored != len(leaves):
            raise CheckpointError(f"`{path}` holds {stored} arrays for `{name}`, the spec needs {len(leaves)}",
                                  "it was written for a different model")
        restored = []
        for i, leaf in enumerate(leaves):
            arr = arrays[f"{name}/{i:06d}"]
            want = tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)
            if arr.shape != want:
                raise CheckpointError(f"`{path}`: array {name}/{i} has shape {arr.shape}, the spec needs {want}",
                                      "it was written for a different model")
            dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
            restored.append(jax.numpy.asarray(arr, dtype=dtype))
        out[name] = jax.tree_util.tree_unflatten(treedef, restored)
    return out, meta


def _open(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    bad = "delete it, or train again"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at `{path}`", "train first with `nnspec train SPEC --out DIR`")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as exc:  # a damaged zip fails in many ways (BadZipFile, NotImplementedError, ...)
        raise CheckpointError(f"`{path}` is corrupt or truncated ({type(exc).__name__}: {exc})", bad) from None
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"`{path}` is not an nnspec checkpoint (no readable metadata)", bad) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"`{path}` is not an nnspec checkpoint of version {VERSION}", bad)
    # Every array the table of contents lists, and no other: a damaged zip directory can
    # rename a member without failing its CRC.
    trees = meta.get("trees")
    if (not isinstance(trees, dict) or not all(isinstance(c, int) for c in trees.values())
            or set(arrays) != {f"{n}/{i:06d}" for n, c in trees.items() for i in range(c)}):
        raise CheckpointError(f"`{path}` is corrupt: its arrays do not match its table of contents", bad)
    return arrays, meta
