"""`start_from "RUN"`: the first epoch starts from a finished run's final weights, by
layer name (nnspec/start.py), as Keras's `load_weights(by_name=True)`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnspec

SPEC = """model m {
    input x[2]
    h: dense 8 relu
    bn: batch_norm
    OUT
}
loss binary_crossentropy
optimizer OPT
train {
    data npz("given.npz")
    split val=0.25
    epochs EPOCHS
    seed SEED
START}
"""


def _spec(*, out="out: dense 1 sigmoid", opt="adam lr=0.05", epochs=3, seed=0, start="") -> str:
    return (SPEC.replace("OUT", out).replace("OPT", opt).replace("EPOCHS", str(epochs)).replace("SEED", str(seed))
            .replace("START", f'    start_from "{start}"\n' if start else ""))


@pytest.fixture(scope="module")
def phase1(tmp_path_factory):
    base = tmp_path_factory.mktemp("start")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    (base / "one.nn").write_text(_spec())
    result = nnspec.train(nnspec.check_text(_spec(), filename=str(base / "one.nn")), data=(x, y), out=base / "one")
    return base, (x, y), result


def _leaves(params):
    return {f"{k}.{n}": np.asarray(v) for k, arrays in params.items() for n, v in arrays.items()}


def test_the_second_phase_starts_from_the_first_phases_final_weights(phase1):
    base, data, first = phase1
    # a learning rate too small to move the weights: what the run ends with is what it started from
    spec = nnspec.check_text(_spec(opt="sgd lr=1e-12", epochs=1, seed=5, start="one"), filename=str(base / "two.nn"))
    second = nnspec.train(spec, data=data, out=base / "two")
    final = _leaves(nnspec.load(base / "one").params)
    got = _leaves(second.params)
    assert set(got) == set(final) and "bn.moving_mean" in got
    for name in final:
        if name.startswith("bn.moving"):  # batch norm's running statistics move with every batch
            continue
        np.testing.assert_allclose(got[name], final[name], atol=1e-8, err_msg=name)
    fresh = _leaves(nnspec.train(_spec(opt="sgd lr=1e-12", epochs=1, seed=5), data=data).params)
    assert not np.allclose(fresh["h.w"], final["h.w"])  # without start_from: another start
    record = json.loads((base / "two" / "run.json").read_text())["run"]["start_from"]
    assert record["run"] == str((base / "one").resolve()) and record["loaded"] == len(final)
    assert record["initialized"] == [] and record["unused"] == []


def test_a_layer_the_run_lacks_starts_afresh_and_both_are_recorded(phase1):
    base, data, _ = phase1
    spec = nnspec.check_text(_spec(out="head: dense 1 sigmoid", opt="sgd lr=1e-12", epochs=1, seed=5, start="one"),
                             filename=str(base / "three.nn"))
    third = nnspec.train(spec, data=data, out=base / "three")
    fresh = nnspec.train(_spec(out="head: dense 1 sigmoid", opt="sgd lr=1e-12", epochs=1, seed=5), data=data)
    np.testing.assert_allclose(np.asarray(third.params["head"]["w"]), np.asarray(fresh.params["head"]["w"]), atol=1e-8)
    np.testing.assert_allclose(np.asarray(third.params["h"]["w"]),
                               np.asarray(nnspec.load(base / "one").params["h"]["w"]), atol=1e-8)
    record = json.loads((base / "three" / "run.json").read_text())["run"]["start_from"]
    assert record["initialized"] == ["head.b", "head.w"] and record["unused"] == ["out.b", "out.w"]


@pytest.mark.parametrize("spec, words", [
    (dict(out="out: dense 2 sigmoid", start="one"), "array out.b is float32[1], this model's is float32[2]"),
    (dict(start="nowhere"), "holds no trained run"),
    (dict(out="o2: dense 1 sigmoid", start="one"), None),  # shares h and bn: fine
])
def test_what_cannot_be_started_from_is_refused_at_the_line(phase1, spec, words):
    base, (x, y), _ = phase1
    text = _spec(epochs=1, **spec)
    if spec.get("out", "").startswith("out: dense 2"):
        y = np.stack([y, 1 - y], axis=1)
    program = nnspec.check_text(text, filename=str(base / "bad.nn"))
    if words is None:
        nnspec.train(program, data=(x, y))
        return
    with pytest.raises(nnspec.NNSpecError) as info:
        nnspec.train(program, data=(x, y))
    (d,) = info.value.diagnostics
    assert d.code == "E405" and words in d.message and d.primary_span is not None


def test_a_run_sharing_no_layer_is_refused(phase1):
    base, data, _ = phase1
    text = _spec(start="one").replace("h: dense 8 relu", "g: dense 8 relu").replace("bn: batch_norm", "bn2: batch_norm")
    text = text.replace("out: dense 1 sigmoid", "o: dense 1 sigmoid")
    with pytest.raises(nnspec.NNSpecError, match="shares no layer"):
        nnspec.train(nnspec.check_text(text, filename=str(base / "none.nn")), data=data)


def test_every_model_of_a_sweep_starts_from_the_run(phase1):
    base, data, _ = phase1
    spec = nnspec.check_text(_spec(opt="sgd lr=sweep(1e-12, 2e-12)", epochs=1, start="one"),
                             filename=str(base / "sweep.nn"))
    result = nnspec.train(spec, data=data)
    final = np.asarray(nnspec.load(base / "one").params["h"]["w"])
    for m in result.members:
        np.testing.assert_allclose(np.asarray(m.params["h"]["w"]), final, atol=1e-8)


def _opt(run) -> dict[str, np.ndarray]:
    with np.load(run / "checkpoint.npz") as f:
        return {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("opt_state/")}


def test_optimizer_true_goes_on_with_the_runs_moments_and_step_count(phase1):
    base, data, first = phase1
    spec = nnspec.check_text(_spec(opt="adam lr=0.01", epochs=1, start="one") .replace(
        'start_from "one"', 'start_from "one" optimizer=true'), filename=str(base / "opt.nn"))
    nnspec.train(spec, data=data, out=base / "opt")
    before, after = _opt(base / "one"), _opt(base / "opt")
    steps = 180 // 32 + 1  # one epoch of 180 training examples in batches of 32 (the last one short)
    assert int(after["count"]) == int(before["count"]) + steps
    assert float(after["hyperparams.learning_rate"]) == pytest.approx(0.01)  # this spec's rate, not the run's
    # a fresh Adam's second moment after one epoch is far from the continued one's
    fresh = nnspec.check_text(_spec(opt="adam lr=0.01", epochs=1, start="one"), filename=str(base / "fresh.nn"))
    nnspec.train(fresh, data=data, out=base / "fresh")
    assert int(_opt(base / "fresh")["count"]) == steps


def test_optimizer_true_needs_the_same_layers_and_optimizer(phase1):
    base, data, _ = phase1
    for text, words in ((_spec(out="head: dense 1 sigmoid", start="one"), "this model has `head.b`"),
                        (_spec(opt="sgd lr=0.1", start="one"), "does not fit this spec's optimizer")):
        program = nnspec.check_text(text.replace('start_from "one"', 'start_from "one" optimizer=true'),
                                    filename=str(base / "x.nn"))
        with pytest.raises(nnspec.NNSpecError, match=words):
            nnspec.train(program, data=data)
