"""The trainer dispatches a short epoch's successor before reading its results
(`trainer.RUN_AHEAD_SECONDS`): the numbers must be those of training one epoch at a time,
whatever stops, diverges or changes the rate part way, and the epoch trained ahead must
really be used when nothing did."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import nnspec
from nnspec import trainer
from nnspec.sweep_fit import fit_sweep

SPEC = """
model moons {
    input x[2]
    dense 8 relu
    dropout 0.1
    dense 1 sigmoid
}
loss binary_crossentropy
optimizer OPT
train {
    data builtin("moons", n=300)
    split val=0.2
    batch 32
    epochs 12
    metrics accuracy
    seed 0
    EXTRA
}
"""

CASES = {
    "plain": ("adam lr=0.01", ""),
    "early_stop": ("adam lr=0.2", "early_stop monitor=val_loss patience=1 restore_best=true"),
    "plateau": ("adam lr=reduce_on_plateau(initial=0.05, factor=0.5, patience=1, monitor=loss)", ""),
    "sweep_one_stops": ("sgd lr=sweep(0.01, 3.0)", "early_stop monitor=val_loss patience=1"),
    "sweep_one_diverges": ("sgd lr=sweep(0.1, 1e30)", ""),
}


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def train(text: str):
    program = nnspec.check_text(text)
    if "sweep(" in text:
        result = fit_sweep(program)
        return ([m.history for m in result.members], [leaves(m.params) for m in result.members if m.params is not None],
                [m.diverged for m in result.members])
    result = nnspec.train(text)
    return [result.history], [leaves(result.params)], [None]


def without_time(histories):
    return [[{k: v for k, v in row.items() if k != "time"} for row in h] for h in histories]


@pytest.mark.parametrize("case", sorted(CASES))
def test_running_ahead_changes_no_number(case, monkeypatch):
    opt, extra = CASES[case]
    text = SPEC.replace("OPT", opt).replace("EXTRA", extra)
    calls: list[int] = []
    real = trainer.Trainer._epoch_of

    def counted(self, state, epoch):
        calls.append(epoch)
        return real(self, state, epoch)

    monkeypatch.setattr(trainer.Trainer, "_epoch_of", counted)
    monkeypatch.setattr(trainer, "RUN_AHEAD_SECONDS", float("inf"))
    ahead = train(text)
    ahead_calls = list(calls)
    calls.clear()
    monkeypatch.setattr(trainer, "RUN_AHEAD_SECONDS", 0.0)
    alone = train(text)
    assert without_time(ahead[0]) == without_time(alone[0])
    for a, b in zip(ahead[1], alone[1]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert [d and d[:2] for d in ahead[2]] == [d and d[:2] for d in alone[2]]
    epochs_trained = max(len(h) for h in alone[0])
    lengths = sorted(len(h) for h in alone[0])
    if case == "early_stop":  # the cases do what they are named for
        assert lengths[0] < 12
    if case == "sweep_one_stops":
        assert lengths[0] < lengths[1] == 12
    if case == "sweep_one_diverges":
        assert any(d is not None for d in alone[2])
    # one epoch at a time: one call an epoch (a diverged model's epoch is still one call)
    assert len(calls) == epochs_trained
    if case == "plain":  # every epoch ahead was used: each epoch dispatched exactly once
        assert sorted(ahead_calls) == list(range(12))
    if case == "plateau":  # the rate may change after any epoch: nothing is run ahead
        assert len(ahead_calls) == epochs_trained
    if case.startswith("sweep_one"):  # once a model is out, nothing is run ahead either
        assert len(ahead_calls) <= epochs_trained + 1
