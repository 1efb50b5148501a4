"""Data given from Python: `nnspec.train(spec, data=(x, y), val_data=..., test_data=...)`.

The arrays take the place of the spec's `data` line (and of its `val=`/`test=` files), and
are read as an `.npz` archive's arrays are (`data._from_arrays`, `data.named_arrays`), so
they are checked, encoded and split exactly as a file would be:

- `(x, y)`: `x` an array `(examples, *input_shape)` or, for several inputs, a dict of them
  by input name; `y` an array of targets or, for several outputs, a dict by output name;
- a pandas or polars DataFrame, for one input and one output: the columns the spec's data
  line names (`target=`, `features=`), or every other column as features;
- for `target input` (an autoencoder), `x` alone.

Neither pandas nor polars is imported: a DataFrame is anything with `.columns` whose columns
convert with `numpy.asarray`. The run records each array's shape, dtype and SHA-256, so a
resume, `nnspec eval` or `nnspec.load(RUN).evaluate()` can tell whether it has the same data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from nnspec.checked import Program
from nnspec.data import Dataset, DataError, _from_arrays, _listing, named_arrays

KIND = "python"  # the run record's `data.kind` for arrays given from Python
ROLES = {"data": "training", "val_data": "validation", "test_data": "test"}


@dataclass(frozen=True, eq=False)
class Given:
    """The arrays of each role (`data`, `val_data`, `test_data`), by name (`x`, `y` or the
    model's input and output names); a role not given is None."""
    data: Mapping[str, np.ndarray]
    val_data: Mapping[str, np.ndarray] | None = None
    test_data: Mapping[str, np.ndarray] | None = None

    def record(self) -> dict[str, Any]:
        """The run record's `data`: what each array was, not the numbers."""
        rec: dict[str, Any] = {"kind": KIND, "arrays": _digests(self.data)}
        for role, key in (("val_data", "val"), ("test_data", "test")):
            arrays = getattr(self, role)
            if arrays is not None:
                rec[key] = {"kind": KIND, "arrays": _digests(arrays)}
        return rec


def _digests(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        h = hashlib.sha256(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes() if a.dtype.kind != "U" else a.astype("U").tobytes())
        out[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": h.hexdigest()}
    return out


def differs(given: Given | None, rec: Mapping[str, Any] | None) -> str | None:
    """Why `given` is not the data the run recorded (`rec`, its `data`), or None."""
    theirs = rec if isinstance(rec, Mapping) else {}
    from_python = theirs.get("kind") == KIND
    if given is None:
        return ("the run was trained on arrays given from Python (`nnspec.train(data=...)`); give the same arrays "
                "again" if from_python else None)
    if not from_python:
        return "the run was trained on the spec's data, not on arrays given from Python"
    mine = given.record()
    for key, what in ((None, "training"), ("val", "validation"), ("test", "test")):
        a = mine if key is None else mine.get(key)
        b = theirs if key is None else theirs.get(key)
        if (a is None) != (b is None):
            return f"the run was {'given' if b is not None else 'not given'} {what} arrays"
        if a is not None and b is not None and a.get("arrays") != b.get("arrays"):
            return f"the {what} arrays are not the ones the run was trained on"
    return None


def from_python(program: Program, data: Any, val_data: Any = None, test_data: Any = None) -> Given:
    """The arrays of each role, by name, as `prepare` reads them; TypeError or ValueError
    for what is not data of this model (what was given, and what to give)."""
    roles = {"data": data, "val_data": val_data, "test_data": test_data}
    out = {role: (None if value is None else _named(program, role, value)) for role, value in roles.items()}
    assert out["data"] is not None
    return Given(out["data"], out["val_data"], out["test_data"])


def _named(program: Program, role: str, value: Any) -> dict[str, np.ndarray]:
    t = program.train
    assert t is not None
    inputs = [name for name, _ in program.model.inputs]
    outputs = [h.name for h in program.heads] if program.several_outputs else ["y"]
    autoencoder = t.target == "input"
    if _is_frame(value):
        if len(inputs) > 1 or program.several_outputs:
            raise TypeError(f"`{role}=` is a DataFrame, but this model has several inputs or outputs: give "
                            f"`(x, y)` with a dict of arrays by name ({_listing(inputs)} and {_listing(outputs)})")
        return _frame(program, role, value, autoencoder)
    if autoencoder and not isinstance(value, tuple):
        value = (value,)
    if not isinstance(value, tuple) or len(value) != (1 if autoencoder else 2):
        want = "`x`, or `(x,)`" if autoencoder else "a pair `(x, y)`"
        raise TypeError(f"`{role}=` must be {want} of arrays or a DataFrame; got {_kind(value)}")
    x = value[0]
    arrays: dict[str, np.ndarray] = {}
    if len(inputs) > 1:
        arrays.update(_by_name(role, "x", x, inputs, "input"))
    else:
        arrays["x"] = _array(role, "x", x)
    if not autoencoder:
        y = value[1]
        if program.several_outputs:
            arrays.update(_by_name(role, "y", y, outputs, "output"))
        else:
            arrays["y"] = _array(role, "y", y)
    return arrays


def _by_name(role: str, which: str, value: Any, names: list[str], what: str) -> dict[str, np.ndarray]:
    if not isinstance(value, Mapping):
        raise TypeError(f"`{role}=`'s `{which}` must be a dict of arrays by {what} name ({_listing(names)}), "
                        f"as this model has several {what}s; got {_kind(value)}")
    missing = [n for n in names if n not in value]
    extra = [str(k) for k in value if k not in names]
    if missing or extra:
        parts = ([f"no array for {_listing(missing)}"] if missing else []) + \
                ([f"{_listing(extra)} {'is' if len(extra) == 1 else 'are'} not {what}s of this model"] if extra else [])
        raise ValueError(f"`{role}=`'s `{which}`: {'; '.join(parts)} (the {what}s are {_listing(names)})")
    return {n: _array(role, f"{which}[{n!r}]", value[n]) for n in names}


def _array(role: str, name: str, value: Any) -> np.ndarray:
    if _is_frame(value) or hasattr(value, "to_numpy"):  # a DataFrame or a Series as one array
        value = value.to_numpy()
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{role}=`'s `{name}` is not an array: {exc}") from None
    if a.dtype == object:  # text labels from pandas arrive as Python objects
        if all(isinstance(v, str) for v in a.reshape(-1)):
            a = a.astype(str)
        else:
            raise TypeError(f"`{role}=`'s `{name}` holds Python objects, not numbers or text: "
                            f"convert it with `numpy.asarray(a, dtype=float)`")
    return a


def _frame(program: Program, role: str, frame: Any, autoencoder: bool) -> dict[str, np.ndarray]:
    t = program.train
    assert t is not None
    columns = [str(c) for c in frame.columns]
    params = dict(t.data.params)
    target = params.get("target")
    targets = [] if autoencoder else ([target] if isinstance(target, str) else list(target or []))
    if not targets and not autoencoder:
        raise TypeError(f"`{role}=` is a DataFrame, but the spec's data line names no `target=` column "
                        f"(it reads `{t.data.kind}`): give `(x, y)`, or a spec whose data line says `target=`")
    features = params.get("features")
    features = ([features] if isinstance(features, str) else list(features)) if features is not None \
        else [c for c in columns if c not in targets]
    for name in targets + features:
        if name not in columns:
            raise ValueError(f"`{role}=` has no column `{name}` (its columns are {_listing(columns)}); "
                             f"the spec's data line names it")
    x = np.stack([_array(role, f"column `{c}`", frame[c]) for c in features], axis=1) if features else None
    if x is None:
        raise ValueError(f"`{role}=` has no feature columns")
    out = {"x": x}
    if targets:
        ys = [_array(role, f"column `{c}`", frame[c]) for c in targets]
        out["y"] = ys[0] if len(ys) == 1 else np.stack(ys, axis=1)
    return out


def dataset(program: Program, role: str, arrays: Mapping[str, np.ndarray]) -> Dataset:
    """The arrays of one role as the loader would give them from an `.npz` archive (raises
    DataError, whose `path` names the role)."""
    t = program.train
    assert t is not None
    where = f"{role}="
    if t.target == "input":
        x = arrays["x"]
        ds = _from_arrays(x, x, "x", "x", paths={"x": where}, task="regression")
        return Dataset(ds.x, ds.x.copy(), "regression")
    several = len(program.model.inputs) > 1 or program.several_outputs
    if several:
        inputs = tuple(n for n, _ in program.model.inputs)
        outputs = tuple((h.name, h.loss.task) for h in program.heads) if program.several_outputs \
            else (("", program.heads[0].loss.task),)
        x_keys = inputs if len(inputs) > 1 else ("x",)
        y_keys = tuple(n for n, _ in outputs) if program.several_outputs else ("y",)
        return named_arrays(dict(arrays), inputs=inputs, outputs=outputs, x_keys=x_keys, y_keys=y_keys,
                            paths={k: where for k in x_keys + y_keys})
    from nnspec.prepare import class_positions
    assert program.loss is not None
    return _from_arrays(arrays["x"], arrays["y"], "x", "y", paths={"x": where, "y": where},
                        task=program.loss.task, positions=class_positions(program))


def _is_frame(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "__getitem__") and not isinstance(value, (np.ndarray, Mapping))


def _kind(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return f"`{type(value).__name__}`"


__all__ = ["Given", "DataError", "from_python", "dataset", "differs", "KIND", "ROLES"]
