"""The data of specs/pass_class.nn and specs/digits_mlp.nn, made without nnspec, for the
Keras and PyTorch scripts of `python -m benchmarks.cold` (keras_cold.py, torch_cold.py).

Importing nnspec would put its import time into the baselines' cold start, so the arrays
are rebuilt here with NumPy alone, step by step as nnspec makes them (tests/
test_benchmarks.py checks they are identical to nnspec's own, bit for bit):

- `pass_class` (nnspec/data.py `_pass_class`): `default_rng(seed)`, then `integers(0, 21)`
  lectures, `uniform(0, 40)` hours rounded to halves, a pass when lectures/20 + hours/40 +
  noise·normal > 1; `digits`: scikit-learn's `digits.csv.gz`, read as nnspec reads it
  (without importing scikit-learn);
- the features as float32; the split (nnspec/split.py `random_rows`): a second
  `default_rng(seed).permutation(n)`, its first round(n·test) for test, the next
  round(n·val) for validation, the rest training (round half up);
- `standardize` (nnspec/data.py `Standardizer`): the training part's per-feature mean and
  population standard deviation in float64, a zero std taken as 1, applied in float32.

`SPECS` holds what the scripts build: layers, loss, optimizer, batch, epochs, early stopping.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SPECS: dict[str, dict[str, Any]] = {
    "pass_class": {"n": 500, "noise": 0.05, "val": 0.2, "test": 0.2, "seed": 0, "batch": 32, "epochs": 100,
                   "optimizer": "sgd", "lr": 0.1, "patience": None, "classes": 2},
    "digits_mlp": {"val": 0.1, "test": 0.2, "seed": 0, "batch": 32, "epochs": 50,
                   "optimizer": "adam", "lr": 0.001, "patience": 8, "classes": 10},
}


def _rounded(n: int, fraction: float) -> int:
    return math.floor(n * fraction + 0.5)


def _generate(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if name == "pass_class":
        n, noise = SPECS[name]["n"], SPECS[name]["noise"]
        lectures = rng.integers(0, 21, n).astype(np.float64)
        hours = np.round(rng.uniform(0, 40, n) * 2) / 2
        score = lectures / 20 + hours / 40 + noise * rng.normal(size=n)
        return np.stack([lectures, hours], 1), (score > 1.0).astype(np.int64)
    # scikit-learn's digits.csv.gz, read without importing scikit-learn (1.4 s), as nnspec
    # reads it: the comparison is of the frameworks' start-up, not of a data loader's
    import gzip
    import importlib.util
    from pathlib import Path
    found = importlib.util.find_spec("sklearn")
    assert found is not None and found.submodule_search_locations, "the digits need scikit-learn"
    path = Path(list(found.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt", encoding="ascii") as f:
        table = np.array([line.split(",") for line in f.read().split()], dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(np.int64)


def splits(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train", "val", "test"}: (float32 standardized features, int64 class labels)."""
    s = SPECS[name]
    x, y = _generate(name, s["seed"])
    x = x.astype(np.float32)
    n = len(x)
    n_test, n_val = _rounded(n, s["test"]), _rounded(n, s["val"])
    order = np.random.default_rng(s["seed"]).permutation(n).astype(np.int64)
    parts = {"train": order[n_test + n_val:], "val": order[n_test:n_test + n_val], "test": order[:n_test]}
    x64 = x[parts["train"]].astype(np.float64)
    mean, std = x64.mean(axis=0), x64.std(axis=0)
    mean32, std32 = mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)
    return {k: (((x[i] - mean32) / std32).astype(np.float32), y[i]) for k, i in parts.items()}
