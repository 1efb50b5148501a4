"""Lowering: the checker's shapes against `jax.eval_shape` of the lowered functions (every
layer in the registry), jit/grad/vmap of `Model.apply`, hyperparameters as traced values,
one compile per epoch program, and how batch sizes split an epoch into optimizer steps."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnspec
from nnspec.fit import fit
from nnspec.trainer import epoch_program, shuffle
from nnspec.layers import LAYERS
from nnspec.lower import Model, lower

KEY = jax.random.key(0)
SPECS = Path(__file__).resolve().parent.parent / "specs"


def compile_spec(model_body: str, *sections: str) -> Model:
    """Lower `model m { model_body }` followed by top-level sections (`loss mse`, ...)."""
    text = "model m {\n" + model_body + "\n}\n" + "".join(s + "\n" for s in sections)
    return lower(nnspec.check_text(text))


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


# ----------------------------------------------------------------------------- the shapes

# layer -> (per-example input shape, the layer as written[, the input's type]): each registry
# row's `examples`; a merge's line reads `x` more than once (`add x x`), and a row with a
# third element declares the input so (`int vocab=10`: token ids, fed as int32)
SHAPE_CASES: dict[str, list[tuple]] = {e.name: list(e.attrs.get("examples", ())) for e in LAYERS}


def test_every_layer_has_a_shape_case() -> None:
    assert [name for name, cases in SHAPE_CASES.items() if not cases] == []


@pytest.mark.parametrize("in_shape,line,kind", [(*c[:2], c[2] if len(c) > 2 else "") for cases in SHAPE_CASES.values() for c in cases],
                         ids=[f"{c[1]}@{c[0]}" for cases in SHAPE_CASES.values() for c in cases])
def test_checker_shapes_match_eval_shape(in_shape: tuple[int, ...], line: str, kind: str) -> None:
    dims = ", ".join(map(str, in_shape))
    model = compile_spec(f"input x[{dims}] {kind}\nl: {line}")
    dtype = jnp.int32 if "int" in kind.split() else jnp.float32
    layer = model.program.model.layers[0]
    params = jax.eval_shape(model.init, KEY)
    got_params = {k: v.shape for k, v in params.get("l", {}).items()}
    assert got_params == dict(layer.param_shapes)
    assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(params))
    for train in (False, True):
        def one(params, x, train=train):
            return model.apply(params, x, key=KEY, train=train)
        x = jax.ShapeDtypeStruct(in_shape, dtype)
        out = jax.eval_shape(one, params, x)
        assert (out.shape, out.dtype) == (layer.out_shape, jnp.float32)
        batch = jax.ShapeDtypeStruct((7, *in_shape), dtype)
        assert jax.eval_shape(one, params, batch).shape == (7, *layer.out_shape)
        assert jax.eval_shape(jax.vmap(one, in_axes=(None, 0)), params, batch).shape == (7, *layer.out_shape)


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.nn")), ids=lambda p: p.name)
def test_every_example_spec_has_consistent_shapes(path: Path) -> None:
    program = nnspec.check_text(path.read_text(), filename=str(path))
    model = lower(program)
    params = jax.eval_shape(model.init, KEY)
    for layer in program.model.layers:
        assert {k: v.shape for k, v in params.get(layer.name, {}).items()} == dict(layer.param_shapes)
    x = {name: jax.ShapeDtypeStruct((3, *shape), jnp.float32) for name, shape in program.model.inputs}
    out = jax.eval_shape(lambda p, x: model.apply(p, x, key=KEY, train=True), params, x)
    if program.several_outputs:  # a dict by output name, each of its layer's shape
        assert {k: v.shape for k, v in out.items()} == {h.name: (3, *h.shape) for h in program.heads}
    else:
        assert out.shape == (3, *program.model.output_shape)


# ------------------------------------------------------------------------ jit, grad, vmap

MLP = ("input x[5]\nh: dense 8 tanh bias_init=constant(0.1)\nd: dropout 0.2\nout: dense 3 softmax",
       "loss categorical_crossentropy", "optimizer sgd lr=0.1")


def _mlp_data():
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.normal(size=(16, 5)).astype(np.float32)),
            jnp.asarray(rng.integers(0, 3, size=16).astype(np.float32)))


def test_apply_is_vmappable_and_jittable() -> None:
    model = compile_spec(*MLP)
    params = model.init(KEY)
    x, _ = _mlp_data()
    batched = model.apply(params, x)
    mapped = jax.vmap(lambda xi: model.apply(params, xi))(x)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(batched), rtol=1e-6, atol=1e-7)
    jitted = jax.jit(lambda p, x: model.apply(p, x))(params, x)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(batched), rtol=1e-6, atol=1e-7)
    # in training, the same key drops the same units with or without jit
    train = lambda p, x, k: model.apply(p, x, key=k, train=True)  # noqa: E731
    np.testing.assert_allclose(np.asarray(jax.jit(train)(params, x, KEY)), np.asarray(train(params, x, KEY)),
                               rtol=1e-6, atol=1e-7)
    assert not np.allclose(np.asarray(train(params, x, KEY)), np.asarray(batched))


def test_loss_is_differentiable() -> None:
    model = compile_spec(*MLP)
    params = model.init(KEY)
    x, y = _mlp_data()
    grads = jax.jit(jax.grad(lambda p: model.loss(p, x, y)))(params)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    train_grads = jax.jit(jax.grad(lambda p: model.loss(p, x, y, key=KEY, train=True)))(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(train_grads))
    # a central difference on single weights agrees with the gradient
    loss = jax.jit(lambda p: model.loss(p, x, y))
    h = 1e-2
    for layer, name, index in [("h", "w", (2, 3)), ("out", "w", (5, 1)), ("h", "b", (4,))]:
        def moved(delta):
            p = jax.tree_util.tree_map(lambda a: a, params)
            p[layer] = dict(p[layer], **{name: p[layer][name].at[index].add(delta)})
            return float(loss(p))
        numeric = (moved(h) - moved(-h)) / (2 * h)
        assert float(grads[layer][name][index]) == pytest.approx(numeric, rel=1e-2, abs=2e-4)


# ------------------------------------------------------------- traced hyperparameters

class CompileCounter:
    """Counts XLA compilations while active (jax.monitoring's backend-compile event)."""
    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.count = 0

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event == self.EVENT:
            self.count += 1

    def __enter__(self) -> CompileCounter:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)


def test_compile_counter_sees_compiles() -> None:
    x = jnp.ones(17)
    f = jax.jit(lambda a: a * 3 + 1)
    with CompileCounter() as compiles:
        f(x).block_until_ready()
        f(x + 0).block_until_ready()
    assert compiles.count == 2  # `f` once, and the eager `+`


def test_hyperparameters_are_traced_not_baked_in() -> None:
    model = compile_spec("input x[5]\nh: dense 8 tanh\nd: dropout 0.2\nout: dense 2 l2=0.1",
                         "loss mse", "optimizer momentum lr=0.1 momentum=0.9")
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(16, 5)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=(16, 2)).astype(np.float32))
    traces = 0

    def step(state, x, y, key, hparams):
        nonlocal traces
        traces += 1
        return model.step(state, x, y, key=key, hparams=hparams)

    jstep = jax.jit(step)
    state = model.init_state(KEY)
    hp = model.hparams()
    base, _ = jstep(state, x, y, KEY, hp)

    def changed(tree: dict, group: str | None, name: str, value: float) -> dict:
        new = {k: dict(v) for k, v in tree.items()} if group else dict(tree)
        (new[group] if group else new)[name] = jnp.asarray(value, jnp.float32)
        return new

    # layer and penalty hyperparameters come in as the `hparams` pytree ...
    layers = {layer.name for layer in model.program.model.layers}
    (model_wide,) = (k for k in hp if k not in layers)  # the `regularize` section's entry
    variants = {f"{g}.{n}": changed(hp, g, n, v) for g, n, v in
                [("d", "drop_prob", 0.6), ("out", "l2", 2.0), (model_wide, "l2", 0.5), ("h", "l1", 0.3)]}
    # ... the optimizer's in its state (optax.inject_hyperparams)
    hps = state.opt_state.hyperparams
    assert set(hps) >= {"learning_rate", "momentum"}
    faster = state._replace(opt_state=state.opt_state._replace(hyperparams=changed(hps, None, "learning_rate", 0.5)))
    no_momentum = base._replace(opt_state=base.opt_state._replace(
        hyperparams=changed(base.opt_state.hyperparams, None, "momentum", 0.0)))
    with CompileCounter() as compiles:
        results = {k: jstep(state, x, y, KEY, v)[0] for k, v in variants.items()}
        fast, _ = jstep(faster, x, y, KEY, hp)
        two, _ = jstep(base, x, y, KEY, hp)
        two_b, _ = jstep(no_momentum, x, y, KEY, hp)
        jax.block_until_ready((results, fast, two, two_b))
    assert (traces, compiles.count) == (1, 0)
    for k, new in results.items():
        assert not leaves_equal(new.params, base.params), f"{k} made no difference"
    # the first momentum step is −η·g, so 5 times the rate moves 5 times as far
    for layer in base.params:
        for name in base.params[layer]:
            p0 = np.asarray(state.params[layer][name])
            np.testing.assert_allclose(np.asarray(fast.params[layer][name]) - p0,
                                       5 * (np.asarray(base.params[layer][name]) - p0), rtol=1e-4, atol=1e-7)
    # and a second step without momentum differs from one with it
    assert not leaves_equal(two.params, two_b.params)


def test_epoch_program_compiles_once(monkeypatch: pytest.MonkeyPatch) -> None:
    program = nnspec.check_text("""
model m {
    input x[2]
    h: dense 4 tanh
    dropout 0.1
    out: dense 1 sigmoid
}
loss binary_crossentropy
optimizer sgd lr=0.1
train {
    data builtin("linear", n=40)
    split val=0.25
    batch 8
    epochs 5
    seed 0
    metrics accuracy
}
""")
    traces = 0
    step = Model.step

    def counting_step(self, *args, **kwargs):
        nonlocal traces
        traces += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Model, "step", counting_step)
    seen: list[tuple[int, int]] = []
    with CompileCounter() as compiles:
        result = fit(program, progress=lambda epoch, total, row, seconds: seen.append((traces, compiles.count)))
    assert result.epochs_run == 5
    # the step is traced once, in the first epoch, and nothing compiles after that epoch
    assert [t for t, _ in seen] == [1] * 5
    assert compiles.count >= 1 and all(c == seen[0][1] for _, c in seen)


# --------------------------------------------------------------------------- batch sizes

N = 20
_rng = np.random.default_rng(7)
BX = jnp.asarray(_rng.uniform(0.5, 1.5, size=(N, 1)).astype(np.float32))
BY = jnp.asarray(_rng.normal(size=(N, 1)).astype(np.float32))


def batch_spec(batch: str, loss: str = "mse") -> Model:
    return compile_spec("input x[1]\nout: dense 1 bias_init=constant(0.2)", f"loss {loss}", "optimizer sgd lr=0.1",
                        f'train {{\n data builtin("regression", n={N})\n batch {batch}\n epochs 1\n}}')


def epochs(model: Model, n: int = N):
    """`run(state, x, y, epoch)`: one epoch at the spec's batch size -> (state, metric means, per-step losses)."""
    program = epoch_program(model, n, model.program.train.batch)
    hp = model.hparams()
    return lambda state, x=BX, y=BY, epoch=0: program(state, x, y, shuffle(0, epoch, n), KEY, epoch, hp)


def with_lr(state, lr: float):
    hps = state.opt_state.hyperparams
    return state._replace(opt_state=state.opt_state._replace(
        hyperparams={**hps, "learning_rate": jnp.asarray(lr, hps["learning_rate"].dtype)}))


@pytest.mark.parametrize("batch,steps", [("1", 20), ("7", 3), ("5", 4), ("20", 1), ("all", 1)])
def test_steps_per_epoch_and_mean_loss(batch: str, steps: int) -> None:
    model = batch_spec(batch)
    assert model.program.train.batch == (None if batch == "all" else int(batch))
    assert steps == math.ceil(N / (model.program.train.batch or N))
    # with a learning rate of 0 the parameters stay put, so the epoch's loss is the plain
    # mean over the 20 examples, each counted once (the padding has weight 0)
    state = with_lr(model.init_state(KEY), 0.0)
    w, b = (np.asarray(state.params["out"][k], np.float64) for k in ("w", "b"))
    want = np.mean((np.asarray(BX, np.float64) @ w + b - np.asarray(BY, np.float64)) ** 2)
    run_epoch = epochs(model)
    state, means, per_step = run_epoch(state)
    assert int(state.opt_state.count) == steps
    assert per_step.shape == (steps,)
    assert float(means["loss"]) == pytest.approx(want, rel=1e-5)
    state, _, _ = run_epoch(state, epoch=1)
    assert int(state.opt_state.count) == 2 * steps


@pytest.mark.parametrize("batch,bias_moves", [("1", 20), ("7", 3), ("all", 1)])
def test_every_example_is_used_once_per_epoch(batch: str, bias_moves: int) -> None:
    # With the mean absolute error and targets far above every prediction, each example's
    # gradient is −x for w and −1 for b whatever the parameters, so the steps commute:
    # pure SGD must add η·Σx to w, and every step, padded or not, adds exactly η to b.
    model = batch_spec(batch, "mae")
    state = model.init_state(KEY)
    far = jnp.full((N, 1), 1e3)
    new, _, _ = epochs(model)(state, y=far)
    db = float(new.params["out"]["b"][0] - state.params["out"]["b"][0])
    assert db == pytest.approx(0.1 * bias_moves, rel=1e-5)
    dw = float(new.params["out"]["w"][0, 0] - state.params["out"]["w"][0, 0])
    sum_x = float(np.sum(np.asarray(BX, np.float64)))
    if batch == "1":
        assert dw == pytest.approx(0.1 * sum_x, rel=1e-5)
    if batch == "all":
        assert dw == pytest.approx(0.1 * sum_x / N, rel=1e-5)


def test_batch_all_is_one_full_gradient_step() -> None:
    model = batch_spec("all")
    state = model.init_state(KEY)

    def mse(p):
        return jnp.mean((BX @ p["out"]["w"] + p["out"]["b"] - BY) ** 2)

    g = jax.grad(mse)(state.params)
    new, _, _ = epochs(model)(state)
    for name in ("w", "b"):
        np.testing.assert_allclose(np.asarray(new.params["out"][name]),
                                   np.asarray(state.params["out"][name] - 0.1 * g["out"][name]), rtol=1e-6)


def test_padding_examples_have_no_weight() -> None:
    model = batch_spec("7")
    state = model.init_state(KEY)
    x7 = jnp.concatenate([BX[:5], jnp.full((2, 1), 100.0)])
    y7 = jnp.concatenate([BY[:5], jnp.full((2, 1), -100.0)])
    step = jax.jit(model.step)
    padded, sums = step(state, x7, y7, key=KEY, weights=jnp.array([1, 1, 1, 1, 1, 0, 0], jnp.float32))
    plain, plain_sums = step(state, BX[:5], BY[:5], key=KEY)
    for name in ("w", "b"):
        np.testing.assert_allclose(np.asarray(padded.params["out"][name]), np.asarray(plain.params["out"][name]),
                                   rtol=1e-6)
    assert float(sums["loss"]) == pytest.approx(float(plain_sums["loss"]), rel=1e-6)
