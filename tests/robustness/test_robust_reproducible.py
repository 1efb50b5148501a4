"""3. Same spec, same seed, same bits.

tests/test_training.py shows it for one spec with adam and mini-batches. Here: every
optimizer in the registry, each with dropout, and between them `batch 1`, mini-batches,
`batch all`, a schedule with warm-up, clipping and weight decay. Two runs give
bit-identical parameters, optimizer state and history (all but the `time` column);
another seed gives other parameters and another history; the seed is in `run.json`
and in the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from nnspec import checkpoint
from nnspec.optim import OPTIMIZERS

from robust_helpers import cli, write

SPEC = """\
model rep {
    input x[2]
    h: dense 12 relu
    drop: dropout 0.3
    out: dense 3 softmax
}
loss categorical_crossentropy
optimizer OPTIMIZER
train {
    data builtin("blobs", n=96, classes=3)
    split val=0.25
    batch BATCH
    epochs 3
    metrics accuracy
    seed 11
}
"""

# One row per optimizer; the batch size and the extras rotate through the rows.
EXTRAS = ["", "clip_norm=1.0", "lr=cosine_decay(initial=0.05, steps=100) warmup=5", "clip_value=0.5"]
BATCHES = ["1", "16", "all"]
CASES = [(e.name, BATCHES[i % 3], EXTRAS[i % 4]) for i, e in enumerate(OPTIMIZERS)]


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def same_bits(a, b) -> bool:
    la, lb = leaves(a), leaves(b)
    return len(la) == len(lb) and all(x.dtype == y.dtype and x.shape == y.shape and
                                      x.tobytes() == y.tobytes() for x, y in zip(la, lb))


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


def test_every_optimizer_is_in_the_sweep() -> None:
    assert {name for name, _, _ in CASES} == {e.name for e in OPTIMIZERS}
    assert {batch for _, batch, _ in CASES} == set(BATCHES)


@pytest.mark.parametrize("name,batch,extra", CASES, ids=[f"{n}-batch{b}" for n, b, _ in CASES])
def test_same_seed_same_bits(name: str, batch: str, extra: str) -> None:
    import nnspec
    text = SPEC.replace("OPTIMIZER", f"{name} {extra}".strip()).replace("BATCH", batch)
    if "lr=" not in extra:
        text = text.replace(f"optimizer {name}", f"optimizer {name} lr=0.02")
    program = nnspec.check_text(text)
    from nnspec.fit import fit
    a, b = fit(program), fit(program)
    assert same_bits(a.params, b.params), f"{name}, batch {batch}: parameters differ between two runs"
    assert without_time(a.history) == without_time(b.history)
    assert all(np.isfinite(r["loss"]) for r in a.history)
    if batch != "16":  # the pure-SGD and full-batch rows also show that the seed matters
        c = nnspec.train(text, seed=12)
        assert not same_bits(a.params, c.params)
        assert without_time(a.history) != without_time(c.history)


def test_same_bits_through_the_cli_and_the_seed_is_recorded(tmp_path: Path) -> None:
    """Two CLI runs into two folders: identical checkpoints (every array, the history);
    `--seed` changes them, and run.json and the checkpoint both record the seed used."""
    spec = write(tmp_path / "rep.nn", SPEC.replace("OPTIMIZER", "adamw lr=0.02").replace("BATCH", "8"))
    for name, extra in (("a", ()), ("b", ()), ("c", ("--seed", "12"))):
        code, _, err = cli("train", spec, "--out", tmp_path / name, "-q", *extra)
        assert code == 0, err
    stores = {name: np.load(tmp_path / name / "checkpoint.npz") for name in "abc"}
    arrays = [k for k in stores["a"].files if k != "__meta__"]
    assert any(k.startswith("final_params/") for k in arrays) and any(k.startswith("opt_state/") for k in arrays)
    for k in arrays:
        assert stores["a"][k].tobytes() == stores["b"][k].tobytes(), k
    assert any(stores["a"][k].tobytes() != stores["c"][k].tobytes() for k in arrays if k.startswith("final_params/"))
    metas = {name: checkpoint.read_meta(tmp_path / name / "checkpoint.npz") for name in "abc"}
    assert without_time(metas["a"]["history"]) == without_time(metas["b"]["history"])
    assert without_time(metas["a"]["history"]) != without_time(metas["c"]["history"])
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        assert json.loads((tmp_path / name / "run.json").read_text())["seed"] == seed
        assert metas[name]["seed"] == seed
