"""specs/*.nn, the example specs: each checks clean, is in canonical form, stays cheap
to train, and teaches the lesson its name promises."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from nnspec.check import check_source
from nnspec.checked import Fn, Program
from nnspec.diagnostics import render_all
from nnspec.optim import OPTIMIZERS

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
PATHS = sorted(SPECS.glob("*.nn"))
NAMES = [p.name for p in PATHS]

# Specs that are about a warning, and exactly the warnings they must produce.
# Every other spec must check with no warnings at all.
EXPECTED_WARNINGS: dict[str, list[str]] = {
    "lr_large.nn": ["W001"],  # a learning rate too large, on purpose
}

# The lessons the examples folder promises (docs/language.md section 21 lists them).
REQUIRED = [
    "perceptron.nn", "pass_class.nn", "spirals_linear.nn", "spirals_relu.nn",
    *(f"opt_{e.name}.nn" for e in OPTIMIZERS),
    "lr_small.nn", "lr_good.nn", "lr_large.nn", "overfit_rescued.nn", "schedules.nn",
    "regression.nn", "blobs_softmax.nn", "logits.nn", "digits_mlp.nn", "csv_example.nn",
    "sgd_pure.nn", "minibatch.nn", "full_batch.nn", "model_only.nn",
]

# "Trains in seconds on a laptop CPU": bounds on every spec's size and length.
MAX_EXAMPLES = 2000
MAX_EPOCHS = 300
MAX_PARAMS = 50_000


def _check(path: Path) -> tuple[Program | None, list, Any]:
    return check_source(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))


def program(name: str) -> Program:
    prog, diags, src = _check(SPECS / name)
    assert prog is not None, render_all(diags, src)
    return prog


def test_every_lesson_is_there() -> None:
    missing = [name for name in REQUIRED if name not in NAMES]
    assert not missing, missing


def test_the_allow_list_names_real_specs() -> None:
    assert set(EXPECTED_WARNINGS) <= set(NAMES)


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_spec_checks_clean(path: Path) -> None:
    prog, diags, src = _check(path)
    assert prog is not None, render_all(diags, src)
    got = sorted(d.code for d in diags)
    assert got == EXPECTED_WARNINGS.get(path.name, []), render_all(diags, src)


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_spec_is_canonical(path: Path) -> None:
    try:
        from nnspec.format import format_source
    except ImportError:
        pytest.skip("nnspec.format is missing, so canonical form cannot be checked")
    text = path.read_text(encoding="utf-8")
    assert format_source(text, path.name) == text, f"run `nnspec fmt specs/{path.name}`"


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_spec_opens_with_its_lesson(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    comments = 0
    for line in lines:
        if not line.startswith("#"):
            break
        comments += 1
    assert comments >= 3, "a spec opens with a comment that says what it teaches"


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_spec_is_cheap_to_train(path: Path) -> None:
    prog = program(path.name)
    assert prog.model.n_params <= MAX_PARAMS
    t = prog.train
    if t is None:
        return
    assert t.epochs <= MAX_EPOCHS
    if t.data.kind == "builtin":
        n = t.data.params.get("n")
        assert n is None or n <= MAX_EXAMPLES, f"n={n}"
    if t.batch is not None:
        assert t.batch <= 256


def _csv_specs() -> list[str]:
    """Specs that read a CSV file (a spec that fails to check fails its own test instead)."""
    progs = {p.name: _check(p)[0] for p in PATHS}
    return [n for n, prog in progs.items()
            if prog is not None and prog.train is not None and prog.train.data.kind == "csv"]


@pytest.mark.parametrize("name", _csv_specs())
def test_csv_data_is_there_and_fits(name: str) -> None:
    prog = program(name)
    assert prog.train is not None and prog.loss is not None
    path = SPECS / prog.train.data.params["path"]
    assert path.is_file(), f"{name} reads {path}, which is missing"
    # read as training reads it: `categorical` and `missing` columns encoded (E403 if it does not fit)
    splits = pytest.importorskip("nnspec.prepare").prepare(prog, SPECS)
    assert tuple(splits.train.features) == prog.model.input_shape
    assert sum(len(d) for d in (splits.train, splits.val, splits.test) if d is not None) <= MAX_EXAMPLES


# ---------------------------------------------------------------------------- lessons

def _layers(prog: Program) -> list[tuple[str, str | None, tuple[int, ...]]]:
    return [(layer.op, layer.activation, layer.out_shape) for layer in prog.model.layers]


def _same_training(a: Program, b: Program) -> bool:
    """Same data, split, batch, epochs, seed, metrics, ... and loss (where they are written does not count)."""
    def where_not(t: Any) -> Any:  # every `*_span`: where a statement is written
        return None if t is None else dataclasses.replace(
            t, **{f.name: None for f in dataclasses.fields(t) if f.name.endswith("_span")})
    return where_not(a.train) == where_not(b.train) and a.loss == b.loss


def test_perceptron_is_the_textbook_one() -> None:
    prog = program("perceptron.nn")
    (layer,) = prog.model.layers
    assert prog.model.input_shape == (2,)
    assert layer.activation == "sigmoid"
    assert layer.params["weights"] == ((3.0,), (-2.0,))  # W = [3, -2]
    assert layer.params["bias"] == (1.0,)  # w0 = 1
    assert prog.train is None and prog.loss is None


def test_pass_class_is_one_neuron_on_pass_class() -> None:
    prog = program("pass_class.nn")
    assert _layers(prog) == [("dense", "sigmoid", (1,))]
    assert prog.train is not None and prog.train.data.params["name"] == "pass_class"


def test_spirals_differ_only_in_activations() -> None:
    linear, relu = program("spirals_linear.nn"), program("spirals_relu.nn")
    assert _same_training(linear, relu) and linear.optimizer == relu.optimizer
    assert linear.train is not None and linear.train.data.params["name"] == "spirals"
    hidden_linear = [layer.activation for layer in linear.model.layers[:-1]]
    hidden_relu = [layer.activation for layer in relu.model.layers[:-1]]
    assert hidden_linear and all(a in (None, "identity") for a in hidden_linear)
    assert hidden_relu and all(a == "relu" for a in hidden_relu)


def test_optimizer_specs_differ_only_in_the_optimizer() -> None:
    progs = {e.name: program(f"opt_{e.name}.nn") for e in OPTIMIZERS}
    first = progs["sgd"]
    for name, prog in progs.items():
        assert prog.optimizer is not None and prog.optimizer.name == name
        assert _layers(prog) == _layers(first) and _same_training(prog, first), name


def test_learning_rates_are_small_good_large() -> None:
    progs = [program(f"lr_{k}.nn") for k in ("small", "good", "large")]
    lrs = [p.optimizer.params["lr"] for p in progs if p.optimizer is not None]
    assert len(lrs) == 3 and lrs[0] < lrs[1] < lrs[2]
    # lr_large also says `divergence off`, so that its explosion can be watched to the end
    same = [dataclasses.replace(p, train=dataclasses.replace(p.train, divergence=None)) for p in progs]  # type: ignore[arg-type]
    assert progs[2].train is not None and progs[2].train.divergence is None
    assert all(_layers(p) == _layers(same[0]) and _same_training(p, same[0]) for p in same)
    assert len({p.optimizer.name for p in progs if p.optimizer is not None}) == 1


def test_overfit_rescued_uses_all_three_remedies() -> None:
    prog = program("overfit_rescued.nn")
    assert any(layer.op == "dropout" for layer in prog.model.layers)
    assert prog.regularization.l2 > 0
    assert prog.train is not None and prog.train.val > 0
    es = prog.train.early_stop
    assert es is not None and es.restore_best and es.monitor.startswith("val_")


def test_schedules_has_a_schedule_warmup_and_clipping() -> None:
    opt = program("schedules.nn").optimizer
    assert opt is not None and isinstance(opt.params["lr"], Fn)
    assert opt.params["warmup"] > 0 and opt.params["clip_norm"] is not None


def test_regression_is_mse_on_the_regression_set() -> None:
    prog = program("regression.nn")
    assert prog.loss is not None and prog.loss.name == "mse"
    assert prog.model.layers[-1].activation is None
    assert prog.train is not None and prog.train.data.params["name"] == "regression"


def test_blobs_softmax() -> None:
    prog = program("blobs_softmax.nn")
    assert prog.loss is not None and prog.loss.name == "categorical_crossentropy"
    assert prog.model.layers[-1].activation == "softmax"


def test_logits_has_a_linear_output() -> None:
    prog = program("logits.nn")
    assert prog.loss is not None and prog.loss.params["from_logits"] is True
    assert prog.model.layers[-1].activation is None


def test_digits_mlp_is_deep_standardized_and_tested() -> None:
    prog = program("digits_mlp.nn")
    assert prog.train is not None and prog.train.data.params["name"] == "digits"
    assert prog.train.standardize and prog.train.test > 0
    assert sum(layer.op == "dense" for layer in prog.model.layers) >= 3


def test_batch_extremes() -> None:
    pure, mini, full = program("sgd_pure.nn"), program("minibatch.nn"), program("full_batch.nn")
    assert pure.train is not None and pure.train.batch == 1
    assert mini.train is not None and mini.train.batch == 32
    assert full.train is not None and full.train.batch is None  # `batch all`
    # the same model and data, each recording every step's loss for `nnspec plot --steps`
    assert all(p.train is not None and p.train.history == "steps" for p in (pure, mini, full))
    assert len({repr(p.train.data.params) for p in (pure, mini, full)}) == 1  # type: ignore[union-attr]


def test_model_only_is_only_a_model() -> None:
    prog = program("model_only.nn")
    assert prog.train is None and prog.loss is None and prog.optimizer is None
