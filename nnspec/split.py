"""The split: which examples of the data source are for training, validation and test.

`split(ds, val=, test=, seed=)` shuffles the examples from the seed and cuts
(train, val, test). NumPy only; no JAX.
"""

from __future__ import annotations

import math

import numpy as np

from nnspec.data import DataError, Dataset


def split(ds: Dataset, *, val: float, test: float,
          seed: int) -> tuple[Dataset, Dataset | None, Dataset | None]:
    """Shuffle from `seed`, then cut (train, val, test); a zero fraction gives None."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"bad split fractions val={val}, test={test}")
    n = len(ds)
    n_test = math.floor(n * test + 0.5)
    n_val = math.floor(n * val + 0.5)
    for name, fraction, count in (("validation", val, n_val), ("test", test, n_test)):
        if fraction > 0 and count == 0:
            raise DataError(f"dataset too small: {n} examples leave none for the {name} "
                            f"split ({fraction:g} of them)",
                            help="use more data, or a larger fraction")
    if n - n_val - n_test <= 0:
        raise DataError(f"dataset too small: {n} examples leave none for training",
                        help="use more data, or smaller `val`/`test` fractions")
    order = np.random.default_rng(seed).permutation(n)
    test_idx, val_idx = order[:n_test], order[n_test:n_test + n_val]
    train_idx = order[n_test + n_val:]
    return (ds.take(train_idx), ds.take(val_idx) if n_val else None,
            ds.take(test_idx) if n_test else None)
