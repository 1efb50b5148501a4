"""Frozen layers (`trainable=false`) and pretrained weights from a `.npy` file
(`embedding ... weights="glove.npy"`): nnspec/lower.py, nnspec/pretrained.py, nnspec/start.py."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import nnspec
from nnspec.check import check_source
from nnspec.cli import main
from nnspec.lower import lower
from nnspec.summary import summary

SPEC = """model m {
    input t[4] int vocab=10
    emb: embedding 3 weights="glove.npy" {EMB}
    flatten
    h: dense 8 relu {H}
    bn: batch_norm {BN}
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer {OPT}
regularize l2=0.01
train {
    data npz("given.npz")
    epochs {EPOCHS}
    seed 0
{START}}
"""


def _spec(*, emb="trainable=false", h="trainable=false", bn="trainable=false", opt="adamw lr=0.05 weight_decay=0.1",
          epochs=3, start="") -> str:
    return (SPEC.replace("{EMB}", emb).replace("{H}", h).replace("{BN}", bn).replace("{OPT}", opt)
            .replace("{EPOCHS}", str(epochs)).replace("{START}", f'    start_from "{start}"\n' if start else ""))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("frozen")
    rng = np.random.default_rng(0)
    table = rng.normal(size=(10, 3)).astype(np.float32)
    np.save(base / "glove.npy", table)
    x = rng.integers(0, 10, size=(96, 4))
    y = (x[:, 0] > 4).astype(np.int64)
    return base, table, (x, y)


def _program(base: Path, text: str, name: str = "s.nn"):
    (base / name).write_text(text)
    return nnspec.check_text(text, filename=str(base / name))


def _bits(a) -> bytes:
    return np.asarray(a).tobytes()


def test_frozen_weights_stay_bit_identical_while_the_others_change(folder):
    base, table, data = folder
    program = _program(base, _spec())
    model = lower(program)
    key = jax.random.key(3)
    state = model.init_state(key)
    start = jax.tree_util.tree_map(np.asarray, state.params)
    step = jax.jit(lambda s, x, y, k: model.step(s, x, y, key=k)[0])
    x, y = data
    for i in range(5):
        state = step(state, x, y, jax.random.fold_in(key, i))
    for layer in ("emb", "h", "bn"):  # frozen: not a bit moves, the running statistics neither
        for name, a in start[layer].items():
            assert _bits(state.params[layer][name]) == _bits(a), f"{layer}.{name}"
    assert not np.allclose(state.params["out"]["w"], start["out"]["w"])  # trained
    # through `nnspec.train`, with weight decay and a penalty: the embedding is the file's
    result = nnspec.train(program, data=data, out=base / "run")
    assert _bits(result.params["emb"]["w"]) == _bits(table)
    np.testing.assert_array_equal(result.params["bn"]["moving_mean"], np.zeros(8, np.float32))
    # the checkpoint holds the frozen arrays, and predict uses them
    loaded = nnspec.load(base / "run")
    assert _bits(loaded.params["emb"]["w"]) == _bits(table)
    np.testing.assert_allclose(loaded.predict(x[:5]), result.predict(x[:5]), rtol=1e-6)


def test_the_optimizer_keeps_no_state_for_frozen_layers(folder):
    base, _, _ = folder
    for text in (_spec(), _spec(emb="", h="", bn="")):
        program = _program(base, text)
        state = lower(program).init_state(jax.random.key(0))
        moments = sum(a.size for a in jax.tree_util.tree_leaves(state.opt_state) if a.ndim > 0)
        # adam's two moments of every trainable array (a trainable batch_norm's running statistics have them too)
        stats = 0 if "bn: batch_norm trainable=false" in text else 16
        assert moments == 2 * (program.model.n_trainable + stats)
    frozen = _program(base, _spec())
    assert frozen.model.n_trainable == 9  # out: 8 weights and a bias


def test_a_frozen_layer_has_no_penalty(folder):
    base, _, _ = folder
    frozen, free = (lower(_program(base, t)) for t in (_spec(), _spec(emb="", h="", bn="")))
    params = free.init(jax.random.key(1))
    want = 0.01 * float(np.sum(np.square(params["out"]["w"])))
    assert float(frozen.penalty(params)) == pytest.approx(want, rel=1e-6)
    assert float(free.penalty(params)) > want * 1.5  # the other layers' weights are penalized when not frozen


def test_a_frozen_batch_norm_normalizes_with_its_running_statistics_in_training(folder):
    base, _, (x, _) = folder
    model = lower(_program(base, _spec()))
    params = model.init(jax.random.key(0))
    params["bn"] = {**params["bn"], "moving_mean": np.full(8, 0.5, np.float32)}
    trained = model.apply(params, x, key=jax.random.key(1), train=True)
    np.testing.assert_array_equal(trained, model.apply(params, x, train=False))
    free = lower(_program(base, _spec(bn="")))
    assert not np.allclose(free.apply(params, x, key=jax.random.key(1), train=True), free.apply(params, x))


def test_a_trainable_pretrained_embedding_starts_at_the_file_and_learns(folder):
    base, table, data = folder
    from nnspec.start import with_files
    from nnspec.trainer import stack
    program = _program(base, _spec(emb="", opt="sgd lr=0.5"))
    params0 = stack([lower(program).init(jax.random.key(0))])
    started = with_files([program], params0, base)
    assert _bits(started["emb"]["w"][0]) == _bits(table)
    assert _bits(started["h"]["w"]) == _bits(params0["h"]["w"])  # the others are the initializers'
    result = nnspec.train(program, data=data)
    assert not np.allclose(result.params["emb"]["w"], table)


def test_every_model_of_a_sweep_gets_the_file_and_keeps_it_frozen(folder):
    base, table, data = folder
    result = nnspec.train(_program(base, _spec(opt="adam lr=sweep(0.01, 0.1)")), data=data)
    assert len(result.members) == 2
    for m in result.members:
        assert _bits(m.params["emb"]["w"]) == _bits(table)
    a, b = (np.asarray(m.params["out"]["w"]) for m in result.members)
    assert not np.allclose(a, b)


def test_fine_tuning_starts_from_a_run_with_its_base_frozen(folder):
    base, _, data = folder
    nnspec.train(_program(base, _spec(emb="", h="", bn=""), "one.nn"), data=data, out=base / "one")
    first = nnspec.load(base / "one").params
    spec = _program(base, _spec(emb="trainable=false", h="trainable=false", bn="trainable=false",
                                opt="adam lr=0.05", epochs=2, start="one"), "two.nn")
    second = nnspec.train(spec, data=data, out=base / "two")
    for layer in ("emb", "h", "bn"):  # the run's weights, not the file's, and not a bit changed
        for name, a in first[layer].items():
            assert _bits(second.params[layer][name]) == _bits(a), f"{layer}.{name}"
    assert not np.allclose(second.params["out"]["w"], first["out"]["w"])
    record = json.loads((base / "two" / "run.json").read_text())["run"]["start_from"]
    assert record["initialized"] == []


def test_the_summary_counts_trainable_and_non_trainable_parameters(folder):
    base, _, _ = folder
    text = summary(_program(base, _spec(h="")))
    # frozen: the embedding (10·3) and the batch norm (4·8); its running statistics are never trainable
    assert "Total params: 175 " in text
    assert "Trainable params: 113\n" in text  # h: 12·8 + 8; out: 8 + 1
    assert "Non-trainable params: 62\n" in text
    assert "emb (embedding, frozen)" in text and "h (dense relu)" in text
    free = summary(_program(base, _spec(emb="", h="", bn="")))
    assert "Trainable params: 159\n" in free and "Non-trainable params: 16\n" in free  # bn's moving mean and var


@pytest.mark.parametrize("make, code, words", [
    (None, "E329", "does not exist"),
    (lambda p: p.write_bytes(b"not an array"), "E329", "is not a NumPy `.npy` file"),
    (lambda p: np.save(p, np.zeros((10, 4), np.float32)), "E330", "has shape (10, 4), but `emb` needs (10, 3)"),
    (lambda p: np.save(p, np.zeros((10, 3), np.int64)), "E330", "holds int64 values"),
    (lambda p: np.save(p, np.where(np.eye(10, 3) > 0, np.nan, 0).astype(np.float32)), "E330",
     "holds 3 values that are NaN or infinite, the first at [0, 0]"),
])
def test_a_file_that_does_not_fit_is_refused_at_its_argument(tmp_path, capsys, make, code, words):
    if make is not None:
        make(tmp_path / "glove.npy")
    text = _spec()
    program = _program(tmp_path, text)
    rng = np.random.default_rng(0)
    with pytest.raises(nnspec.NNSpecError) as info:  # training refuses it before the first step
        nnspec.train(program, data=(rng.integers(0, 10, size=(40, 4)), np.arange(40) % 2))
    (d,) = info.value.diagnostics
    assert d.code == code and words in d.message
    start = text.index('weights="glove.npy"')
    assert (d.primary_span.start, d.primary_span.end) == (start, start + len('weights="glove.npy"'))
    assert main(["check", str(tmp_path / "s.nn")]) == 1  # and so does `nnspec check`
    err = capsys.readouterr().err
    assert f"error[{code}]" in err and "Traceback" not in err


def test_refused_arguments() -> None:
    def codes(line: str) -> list[str]:
        text = f"model m {{\n    input t[4] int vocab=10\n    {line}\n}}\n"
        _, diags, _ = check_source(text)
        return [d.code for d in diags]
    assert codes('embedding 3 weights="glove.npy" init=zeros') == ["E108"]
    assert codes('embedding 3 weights="glove.txt"') == ["E103"]
    assert codes("embedding 3 l2=0.1 trainable=false") == ["E108"]
    assert codes("embedding 3 l2=0.1") == []
    assert codes("embedding 3 trainable") == []


def test_optimizer_true_with_other_layers_frozen_than_the_runs_is_refused(folder):
    base, _, data = folder
    if not (base / "one").exists():
        nnspec.train(_program(base, _spec(emb="", h="", bn=""), "one.nn"), data=data, out=base / "one")
    spec = _program(base, _spec(opt="adam lr=0.05", epochs=1, start="one").replace(
        'start_from "one"', 'start_from "one" optimizer=true'), "three.nn")
    with pytest.raises(nnspec.NNSpecError) as info:
        nnspec.train(spec, data=data)
    (d,) = info.value.diagnostics
    assert d.code == "E405" and "optimizer state does not fit" in d.message


def test_a_run_with_frozen_layers_resumes(folder):
    base, table, data = folder
    program = _program(base, _spec(epochs=2), "resume.nn")
    nnspec.train(program, data=data, out=base / "resumed")
    longer = nnspec.train(program, data=data, out=base / "resumed", resume=True, epochs=4)
    assert len(longer.history) == 4
    assert _bits(longer.params["emb"]["w"]) == _bits(table)


def test_checking_a_spec_with_a_weights_file_does_not_start_jax(folder):
    import subprocess
    import sys
    base, _, _ = folder
    (base / "c.nn").write_text(_spec())
    code = ("import sys; from nnspec.cli import main; rc = main(['check', sys.argv[1]]); "
            "assert 'jax' not in sys.modules and 'optax' not in sys.modules, 'imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(base / "c.nn")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ok:" in done.stdout


def test_predict_without_a_run_does_not_take_a_file_for_written_weights(folder):
    from nnspec.cli import _needs_run
    base, _, _ = folder
    text = ('model m {\n    input t[2] int vocab=10\n    emb: embedding 3 weights="glove.npy"\n    flatten\n'
            '    dense 1 weights=[[1], [1], [1], [1], [1], [1]] bias=[0]\n}\n')
    program = _program(base, text, "written.nn")
    assert "layer `emb`" in (_needs_run(program, str(base / "written.nn")) or "")
