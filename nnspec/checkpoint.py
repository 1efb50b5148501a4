"""Checkpoints: one `.npz` file per save, written atomically, verified when read.

Why not Orbax: it is the JAX ecosystem's tool for sharded, multi-host, asynchronous
checkpoints of large models, and brings tensorstore and an async runtime with it. An
nnspec model is a small single-host pytree; one NumPy archive (a zip with a CRC per
array, readable by any NumPy) written to a temporary file and renamed into place is
simpler, faster, and cannot be left half-written. The pytree's structure is not stored:
it is rebuilt from the spec (a template state), and every leaf's shape is checked. Each
array is stored under its path (`final_params/dense_1.w`), so the weights of a run can
also be read without the spec, by any NumPy.

A checkpoint is read as untrusted input: whatever the file holds, reading it gives the
validated values below or a `CheckpointError` with one short line (the trainer turns it
into E405); nothing of the file is echoed but a short, escaped excerpt.

- arrays: exactly those the table of contents lists, each of the template's shape and
  dtype, and finite (a NaN or infinite weight is refused, never loaded silently);
- metadata, a JSON object nested at most `MAX_DEPTH` deep, whose known keys are
  (`None` allowed where marked `?`):

  ==================  ======================================================
  format, version     `"nnspec-checkpoint"`, 1
  trees               {tree name: number of arrays (int >= 0)}
  names ?             {tree name: [str]}: each array's path in its tree (`dense_1.w`), in
                      flattening order; the arrays are stored as `TREE/NAME`. Without it
                      (checkpoints before names), as `TREE/000003`, by position
  spec_fingerprint    str (the spec that trained it: resume checks it)
  model_fingerprint   str (the model and loss: eval and predict check it)
  epoch               int >= 0, the number of `history` rows
  seed                int
  history             [{str: number?}], one row per finished epoch
  rng                 {"seed": int, "epoch_key": [int >= 0]?}: the base key of the epochs
                      (older checkpoints: "next_epoch_key"; informational, never read)
  stopper ?           {"best": number, "best_epoch": int >= 0, "wait": int >= 0}
  standardizer ?      {"mean": numbers, "std": numbers > 0}: finite, same shape
  classes ?           [str], the class names of a classifier's targets (several outputs:
                      {output: [str] or null})
  feature_names ?     [str], as many as the standardizer's features (with `columns`: the
                      raw feature columns, which encode to the standardizer's features)
  columns ?           {"columns": [{"name", "kind": "number"|"category", "fill", "drop",
                      "vocab"?, "unknown"?}], "dropped": int}: the `categorical`/`missing`
                      encoding fitted on the training split (columns.Encoder.to_dict)
  target_names ?      [str]
  sweep               bool (a sweep's best model)
  best_setting ?      {axis: str | number | bool}
  ensemble            int >= 0: members stacked in the `members` tree
  initial_loss ?      number, the loss of the initial weights (divergence is relative to it)
  stopped ?           {"reason": str, "epoch": int >= 0, ...}: how training ended
  sweep_progress      a sweep in progress: its stacks of models, the results of those
                      trained and the state of the one in training (`sweep_progress_ok`)
  run                 {"seed": int, "epochs": int, "overrides": {"seed": int, "epochs": int}?,
                      "data": {"kind": str, "params": {}, "path": str, "bytes": int,
                      "sha256": str, "files": {param: {"path", "bytes", "sha256"}}}?, ...}:
                      where the data was (one file, or `files` for several), what the command line set
  ==================  ======================================================

  Keys of a record not listed here, and other top-level keys, pass through unchecked
  (within the depth limit), so a newer writer's additions do not make a checkpoint unreadable.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nnspec.files import write_atomic as write_bytes_atomic  # the one writer, by the name callers use
from nnspec.show import excerpt as _short

FORMAT = "nnspec-checkpoint"
VERSION = 1
MAX_DEPTH = 32  # nesting of the metadata; nnspec writes at most a few levels


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def save(path: Path, trees: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Save named pytrees of arrays and JSON metadata. Each array is stored under its
    tree and path, `final_params/dense_1.w`, so any NumPy reads a checkpoint without the
    spec; `names` lists them in flattening order (the order `load` restores)."""
    arrays: dict[str, np.ndarray] = {}
    names: dict[str, list[str]] = {}
    for name, tree in trees.items():
        paths, leaves = leaf_names(tree)
        names[name] = paths
        for path_name, leaf in zip(paths, leaves):
            arrays[f"{name}/{path_name}"] = np.asarray(leaf)
    header = {"format": FORMAT, "version": VERSION, "trees": {n: len(p) for n, p in names.items()},
              **meta, "names": names}  # (a `names` read from an older checkpoint must not win)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # mypy checks **arrays against savez's allow_pickle: bool too
    write_bytes_atomic(path, buf.getvalue())


def leaf_names(tree: Any) -> tuple[list[str], list[Any]]:
    """(each leaf's path joined by dots, `dense_1.w` or `inner.0.mu.dense_1.w`; the
    leaves), in flattening order. Where two paths would read the same, every leaf is
    named by its index instead (`000003`), as checkpoints before names were."""
    import jax
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    paths = [".".join(_key(k) for k in path) or "value" for path, _ in flat]
    if len(set(paths)) != len(paths) or any(p == "__meta__" for p in paths):
        paths = [f"{i:06d}" for i in range(len(flat))]
    return paths, [leaf for _, leaf in flat]


def _key(entry: Any) -> str:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey / FlattenedIndexKey
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


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
        labels = (meta.get("names") or {}).get(name) or [str(i) for i in range(len(leaves))]
        for i, leaf in enumerate(leaves):
            arr, label = arrays[f"{name}/{i:06d}"], f"{name}/{labels[i]}"
            want = tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)
            if arr.shape != want:
                raise CheckpointError(f"`{path}`: array {label} has shape {arr.shape}, the spec needs {want}",
                                      "it was written for a different model")
            dtype = np.dtype(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype)
            if arr.dtype != dtype:
                raise CheckpointError(f"`{path}`: array {label} holds {_short(str(arr.dtype))}, the spec needs {dtype}",
                                      "it was written for a different model")
            if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                raise CheckpointError(f"`{path}`: array {label} holds NaN or infinite values",
                                      "train again; a run that diverges stops before saving such weights")
            restored.append(jax.numpy.asarray(arr, dtype=dtype))
        out[name] = jax.tree_util.tree_unflatten(treedef, restored)
    return out, meta


def load_by_name(path: Path, name: str, template: Any) -> tuple[Any, list[str], list[str]]:
    """The tree `name` of a checkpoint, array by array path (`dense_1.w`), into `template`
    (arrays): every path both hold is read (its shape and dtype must be the template's,
    its values finite); the template keeps the rest. Returns (tree, the paths the template
    kept, the stored paths it has no place for)."""
    import jax
    arrays, meta = _open(path)
    if name not in meta["trees"]:
        raise CheckpointError(f"`{path}` holds no `{name}`", "train the run to its end first")
    stored = dict(zip((meta.get("names") or {}).get(name) or [], range(meta["trees"][name])))
    paths, leaves = leaf_names(template)
    _, treedef = jax.tree_util.tree_flatten(template)
    out, kept = [], []
    for p, leaf in zip(paths, leaves):
        if p not in stored:
            kept.append(p)
            out.append(leaf)
            continue
        arr = arrays[f"{name}/{stored[p]:06d}"]
        want, dtype = tuple(np.shape(leaf)), np.dtype(leaf.dtype)
        if arr.shape != want or arr.dtype != dtype:
            raise CheckpointError(f"`{path}`: array {p} is {arr.dtype}{list(arr.shape)}, this model's is "
                                  f"{dtype}{list(want)}", "give the layer another name to start it afresh")
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise CheckpointError(f"`{path}`: array {p} holds NaN or infinite values", "start from another run")
        out.append(jax.numpy.asarray(arr, dtype=dtype))
    extra = [p for p in stored if p not in set(paths)]
    return jax.tree_util.tree_unflatten(treedef, out), kept, extra


def _open(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    bad = "delete it, or train again"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at `{path}`", "train first with `nnspec train SPEC --out DIR`")
    # Read first, parse after: a file that cannot be read (a directory, a failing disk)
    # says so, and is not called corrupt with advice to delete it.
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read `{path}`: {_short(exc.strerror or str(exc))}") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except Exception as exc:  # a damaged zip fails in many ways (BadZipFile, NotImplementedError, ...)
        raise CheckpointError(f"`{path}` is corrupt or truncated ({type(exc).__name__}: {_short(str(exc))})",
                              bad) from None
    raw = arrays.pop("__meta__", None)
    try:
        if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError
        meta = json.loads(raw.tobytes().decode())
    except ValueError:
        raise CheckpointError(f"`{path}` is not an nnspec checkpoint (no readable metadata)", bad) from None
    except RecursionError:  # brackets nested thousands deep
        raise CheckpointError(f"`{path}` is corrupt: its metadata is nested more than {MAX_DEPTH} levels deep",
                              bad) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"`{path}` is not an nnspec checkpoint of version {VERSION}", bad)
    problem = _depth_problem(meta) or _meta_problem(meta)
    if problem is not None:
        raise CheckpointError(f"`{path}` is corrupt: its metadata {problem}", bad)
    # Every array the table of contents lists, and no other: a damaged zip directory can
    # rename a member without failing its CRC. The sum first: a forged count of 10^12
    # must not build 10^12 names.
    trees = meta["trees"]
    names = meta.get("names") or {n: [f"{i:06d}" for i in range(c)] for n, c in trees.items()}
    if (sum(trees.values()) != len(arrays) or set(names) != set(trees)
            or any(len(names[n]) != c for n, c in trees.items())
            or set(arrays) != {f"{n}/{x}" for n, listed in names.items() for x in listed}):
        raise CheckpointError(f"`{path}` is corrupt: its arrays do not match its table of contents", bad)
    # from here on, by position in each tree (the order `load` restores in)
    arrays = {f"{n}/{i:06d}": arrays[f"{n}/{x}"] for n, listed in names.items() for i, x in enumerate(listed)}
    k = meta.get("ensemble")
    if k and not (trees.get("members") and all(arrays[f"members/{i:06d}"].shape[:1] == (k,)
                                                for i in range(trees["members"]))):
        raise CheckpointError(f"`{path}` is corrupt: its metadata `ensemble` does not match its arrays", bad)
    return arrays, meta


# ------------------------------------------------------------------ metadata schema

def _depth_problem(meta: Any) -> str | None:
    stack = [(meta, 1)]  # iteratively: the point is not to recurse 10^5 deep
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


def _is_int(v: Any, low: int | None = None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_list(v: Any, item) -> bool:
    return isinstance(v, list) and all(item(x) for x in v)


def _is_names(v: Any) -> bool:
    return _is_list(v, lambda x: isinstance(x, str))


def _is_record(v: Any, fields: Mapping[str, Any]) -> bool:
    return isinstance(v, dict) and all(k in v and ok(v[k]) for k, ok in fields.items())


def _numbers(v: Any) -> np.ndarray | None:
    """A (nested) list of finite numbers as a float64 array, else None."""
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):  # ragged, or not numbers
        return None
    ok = arr.ndim >= 1 and np.isfinite(arr).all() and not _has_bool(v)
    return arr if ok else None


def _has_bool(v: Any) -> bool:
    return isinstance(v, bool) or (isinstance(v, list) and any(_has_bool(x) for x in v))


def _has(v: Any, fields: Mapping[str, Any]) -> bool:
    """A dict whose listed keys, where present, pass their tests (others pass through)."""
    return isinstance(v, dict) and all(k not in v or ok(v[k]) for k, ok in fields.items())


def _run_ok(v: Any) -> bool:
    return _has(v, {
        "seed": _is_int, "epochs": lambda x: _is_int(x, 0), "standardize": lambda x: isinstance(x, bool),
        "split": lambda x: x is None or isinstance(x, dict),
        "overrides": lambda x: x is None or _has(x, {"seed": lambda s: _is_int(s, 0), "epochs": lambda e: _is_int(e, 1)}),
        "data": lambda x: x is None or _has(x, {"kind": lambda k: isinstance(k, str), "params": lambda q: isinstance(q, dict),
                                                 "path": lambda q: isinstance(q, str), "bytes": lambda b: _is_int(b, 0),
                                                 "sha256": lambda h: isinstance(h, str),
                                                 "files": lambda f: isinstance(f, dict) and all(
                                                     _has(one, {"path": lambda q: isinstance(q, str),
                                                                "bytes": lambda b: _is_int(b, 0),
                                                                "sha256": lambda h: isinstance(h, str)})
                                                     for one in f.values())})})


def _standardizer_ok(v: Any) -> bool:
    if not isinstance(v, dict) or "mean" not in v or "std" not in v:
        return False
    mean, std = _numbers(v["mean"]), _numbers(v["std"])
    return mean is not None and std is not None and mean.shape == std.shape and bool((std > 0).all())


def sweep_progress_ok(v: Any, models: int) -> bool:
    """Whether `v` is a sweep's saved progress (`sweep_progress`) for a sweep of `models` models."""
    index = lambda i: _is_int(i, 0) and i < models  # noqa: E731
    history = SCHEMA["history"][1]
    member = lambda r: _is_record(r, {  # noqa: E731
        "history": history, "best_epoch": lambda x: x is None or _is_int(x, 0), "best_value": _is_number,
        "kept_value": _is_number, "diverged": lambda x: x is None or _is_list(x, lambda y: _is_int(y, 0)),
        "how": lambda x: isinstance(x, str), "stopped_early": lambda x: isinstance(x, bool),
        "start_loss": _is_number})
    track = lambda r: _is_record(r, {  # noqa: E731
        "history": history, "stopper": SCHEMA["stopper"][1], "stopped": SCHEMA["stopped"][1],
        "diverged": lambda x: x is None or (isinstance(x, list) and len(x) == 4 and _is_int(x[0], 1)
                                            and _is_int(x[1], 1) and isinstance(x[2], str) and _is_number(x[3]))})
    return _is_record(v, {
        "chunks": lambda x: _is_list(x, lambda c: isinstance(c, list) and len(c) == 2 and _is_int(c[0], 0)
                                     and _is_list(c[1], index) and len(c[1]) > 0),
        "chunk": lambda x: _is_int(x, 0), "epochs": lambda x: x is None or _is_int(x, 1),
        "seed": lambda x: x is None or _is_int(x, 0),
        "base_dir": lambda x: isinstance(x, str), "data": lambda x: isinstance(x, dict),
        "done": lambda x: isinstance(x, dict) and all(k.isdigit() and index(int(k)) and member(r) for k, r in x.items()),
        "current": lambda x: x is None or _is_record(x, {
            "epoch": lambda e: _is_int(e, 0), "start_loss": lambda ls: _is_list(ls, _is_number),
            "tracks": lambda ts: _is_list(ts, track)})})


# key -> (what it must be, as the message says it; the test). None is allowed where the
# text ends in "or null".
SCHEMA: dict[str, tuple[str, Any]] = {
    "trees": ("a table of array counts", lambda v: isinstance(v, dict) and all(_is_int(c, 0) for c in v.values())),
    "names": ("a table of array names", lambda v: isinstance(v, dict) and all(
        _is_names(x) and len(set(x)) == len(x) for x in v.values())),
    "spec_fingerprint": ("a string", lambda v: isinstance(v, str)),
    "model_fingerprint": ("a string", lambda v: isinstance(v, str)),
    "epoch": ("a count of epochs", lambda v: _is_int(v, 0)),
    "seed": ("an integer", _is_int),
    "history": ("a list of per-epoch records of numbers", lambda v: _is_list(
        v, lambda row: isinstance(row, dict) and all(x is None or _is_number(x) for x in row.values()))),
    "rng": ("a seed and a key", lambda v: _is_record(v, {"seed": _is_int}) and _has(
        v, {"epoch_key": lambda k: _is_list(k, lambda x: _is_int(x, 0)),
            "next_epoch_key": lambda k: _is_list(k, lambda x: _is_int(x, 0))})),
    "stopper": ("an early-stopping record or null", lambda v: v is None or _is_record(
        v, {"best": _is_number, "best_epoch": lambda x: _is_int(x, 0), "wait": lambda x: _is_int(x, 0)})),
    "standardizer": ("finite means and positive deviations of one shape, or null",
                     lambda v: v is None or _standardizer_ok(v)),
    "classes": ("a list of names, an object of them by output, or null",
                lambda v: v is None or _is_names(v) or (isinstance(v, dict) and all(
                    isinstance(k, str) and (c is None or _is_names(c)) for k, c in v.items()))),
    "feature_names": ("a list of names or null", lambda v: v is None or _is_names(v)),
    "target_names": ("a list of names or null", lambda v: v is None or _is_names(v)),
    "sweep": ("true or false", lambda v: isinstance(v, bool)),
    "best_setting": ("a table of settings or null", lambda v: v is None or (isinstance(v, dict) and all(
        x is None or isinstance(x, (str, int, float)) for x in v.values()))),
    "ensemble": ("a count of models", lambda v: _is_int(v, 0)),
    "initial_loss": ("a number or null", lambda v: v is None or _is_number(v)),
    "stopped": ("a record of why training stopped, or null", lambda v: v is None or (
        _is_record(v, {"reason": lambda r: isinstance(r, str)}) and _has(v, {"epoch": lambda e: _is_int(e, 0)}))),
    "run": ("a run record", _run_ok),
}


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with the known keys of `meta`, as the end of a sentence; None if nothing."""
    if "trees" not in meta:
        return "has no table of arrays (`trees`)"
    for key, (what, ok) in SCHEMA.items():
        if key in meta and not ok(meta[key]):
            return f"`{key}` is not {what}"
    if "history" in meta and "epoch" in meta and len(meta["history"]) != meta["epoch"]:
        return f"`epoch` is {meta['epoch']} but `history` has {len(meta['history'])} rows"
    std, names = meta.get("standardizer"), meta.get("feature_names")
    if std and names and meta.get("columns") is None and np.asarray(std["mean"]).size != len(names):
        return f"`standardizer` scales {np.asarray(std['mean']).size} features, `feature_names` names {len(names)}"
    return None
