"""Every trainable spec in specs/ trains, and teaches what it says it teaches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nnspec
from nnspec.fit import fit
from nnspec.infer import evaluate

SPECS = Path(__file__).resolve().parent.parent / "specs"


def program(name: str, text: str | None = None):
    path = SPECS / name
    return nnspec.check_text(text if text is not None else path.read_text(), filename=str(path))


def trained(name: str, text: str | None = None):
    return fit(program(name, text))


def best(result, key: str) -> float:
    return max(row[key] for row in result.history)


def test_every_trainable_spec_is_listed_below():
    trainable = {p.name for p in SPECS.glob("*.nn") if program(p.name).train is not None}
    assert trainable == set(EXPECTED) | set(SWEEPS) | set(DATA_SPECS) | set(OWN_TESTS), \
        "add a row to EXPECTED (or a test of SWEEPS) for each new spec"


SWEEPS = ("lr_sweep.nn", "ensemble.nn")
# one spec a data source, trained by tests/test_data_specs.py (most on data it writes first)
DATA_SPECS = ("fixed_test.nn", "parquet_example.nn", "idx_digits.nn", "image_folder.nn")
# specs whose comment's figures need more than one history key, trained by a test of their own
OWN_TESTS = ("vae_digits.nn",)  # tests/test_vae.py: the reconstruction, val_loss − val_kl_loss


@pytest.mark.slow
def test_lr_sweep_finds_a_good_rate_between_too_small_and_too_large():
    from nnspec.sweep_fit import fit_sweep
    result = fit_sweep(program("lr_sweep.nn"))
    assert len(result.members) == 16
    by_lr = sorted(result.members, key=lambda m: m.setting["lr"])
    best = result.best
    assert best.history[-1]["val_accuracy"] >= 0.93
    assert by_lr[0].best_value > best.best_value * 2  # far too small: still far from done
    assert by_lr[0].setting["lr"] < best.setting["lr"] < by_lr[-1].setting["lr"]


@pytest.mark.slow
def test_ensemble_is_at_least_as_good_as_its_average_member():
    from nnspec.infer import evaluate
    from nnspec.sweep_fit import fit_sweep
    result = fit_sweep(program("ensemble.nn"))
    test = result.splits.test
    import jax
    stacked = jax.tree_util.tree_map(lambda *xs: jax.numpy.stack(xs), *[m.params for m in result.members])
    model = nnspec.compile(result.members[0].program)
    together = evaluate(model, stacked, test, result.program, ensemble=True)["accuracy"]
    alone = [evaluate(model, m.params, test, result.program)["accuracy"] for m in result.members]
    assert together >= 0.85
    assert together >= sum(alone) / len(alone) - 1e-9


# spec -> (what to measure, check): each a claim the spec's comments make.
EXPECTED = {
    "pass_class.nn": ("val_accuracy", lambda v: v >= 0.9),
    "spirals_linear.nn": ("val_accuracy", lambda v: v <= 0.75),   # linear: cannot separate
    "spirals_relu.nn": ("val_accuracy", lambda v: v >= 0.95),     # relu: can
    "blobs_softmax.nn": ("val_accuracy", lambda v: v >= 0.95),
    "csv_example.nn": ("val_accuracy", lambda v: v >= 0.8),
    "shop_columns.nn": ("val_accuracy", lambda v: v >= 0.75),  # categories and empty cells, encoded
    "full_batch.nn": ("val_accuracy", lambda v: v >= 0.95),
    "sgd_pure.nn": ("val_accuracy", lambda v: v >= 0.95),
    "minibatch.nn": ("val_accuracy", lambda v: v >= 0.95),
    "logits.nn": ("val_accuracy", lambda v: v >= 0.95),
    "schedules.nn": ("val_accuracy", lambda v: v >= 0.95),
    "regression.nn": ("val_loss", lambda v: v <= 0.05),
    "overfit_rescued.nn": ("val_accuracy", lambda v: v >= 0.8),
    "digits_mlp.nn": ("test_accuracy", lambda v: v >= 0.95),
    "digits_transformer.nn": ("test_accuracy", lambda v: v >= 0.93),  # rows as steps: attention
    "residual_mlp.nn": ("val_accuracy", lambda v: v >= 0.95),     # skip connections: `add`
    "digits_cnn.nn": ("val_accuracy", lambda v: v >= 0.93),
    "digits_lenet.nn": ("val_accuracy", lambda v: v >= 0.93),     # Caffe's recipe: bias_lr_mult, inv, lr_in_velocity
    "lr_small.nn": ("val_accuracy", lambda v: v < 0.9),            # too small: still slow
    "lr_good.nn": ("val_accuracy", lambda v: v >= 0.93),
    "lr_large.nn": ("val_accuracy", lambda v: v < 0.9),            # too large: bounces
    "sequence_lstm.nn": ("val_accuracy", lambda v: v >= 0.95),
    "resnet_digits.nn": ("val_accuracy", lambda v: v >= 0.92),    # conv residual blocks, batch_norm
    "conv1d_waves.nn": ("val_accuracy", lambda v: v >= 0.95),
    "gru_waves.nn": ("val_accuracy", lambda v: v >= 0.95),
    "conv_autoencoder.nn": ("val_loss", lambda v: v < 7.0),      # per-pixel mse, `target input`
    "bilstm_tokens.nn": ("val_accuracy", lambda v: v >= 0.95),      # brackets: only order tells
    "frozen_brackets.nn": ("val_accuracy", lambda v: v >= 0.95),    # frozen vectors from a file; the lstm learns
    "transformer_tokens.nn": ("val_accuracy", lambda v: v >= 0.95),  # which comes first: attention
    # two inputs, two outputs: both heads learn their rule of both inputs
    "ticket_router.nn": ("val_department_accuracy", lambda v: v >= 0.85),
    **{f"opt_{o}.nn": ("val_accuracy", lambda v: v >= 0.93)
       for o in ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "adam", "adamw", "rmsprop")},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_trains_as_claimed(name):
    result = trained(name)
    key, ok = EXPECTED[name]
    if key.startswith("test_"):
        value = evaluate(result.model, result.params, result.splits.test, result.program)[key[5:]]
    else:
        value = result.history[-1][key] if not result.program.train.early_stop else \
            evaluate(result.model, result.params, result.splits.val, result.program)[key[4:]]
    assert ok(value), f"{name}: {key} = {value:.3f}"


@pytest.mark.slow
def test_dropout_and_early_stopping_rescue_an_overfitting_net():
    text = (SPECS / "overfit_rescued.nn").read_text()
    bare = re.sub(r"(?m)^\s*(dropout .*|regularize .*|early_stop .*)$", "", text)
    rescued, overfit = trained("overfit_rescued.nn"), trained("overfit_rescued.nn", bare)
    # Without the rescue, training loss keeps falling while validation loss climbs.
    assert overfit.history[-1]["loss"] < rescued.history[-1]["loss"]
    assert overfit.history[-1]["val_loss"] > min(r["val_loss"] for r in overfit.history) * 1.5
    rescued_val = evaluate(rescued.model, rescued.params, rescued.splits.val, rescued.program)["loss"]
    assert rescued_val < overfit.history[-1]["val_loss"]


@pytest.mark.slow
def test_learning_rates_too_small_right_and_too_large():
    small, good, large = (trained(f"lr_{n}.nn") for n in ("small", "good", "large"))
    assert good.history[-1]["val_loss"] < small.history[-1]["val_loss"]
    assert good.history[-1]["val_loss"] < large.history[-1]["val_loss"]
    # too small: still improving at the end; too large: no steady progress
    assert small.history[-1]["loss"] < small.history[len(small.history) // 2]["loss"]
