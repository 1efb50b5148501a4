"""lower(program) -> Model: a checked program as pure JAX functions.

    model = lower(program)
    params = model.init(key)
    y = model.apply(params, x, key=key, train=True)        # jit-, grad- and vmap-able
    state = model.init_state(key); state, loss = model.step(state, x, y, key=key)

Nothing is global or hidden: randomness comes in as keys, hyperparameters that a sweep
may vary (learning rate, momentum, drop probability, penalties) come in as the `hparams`
pytree and the optimizer state (optax.inject_hyperparams), as traced arrays.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Mapping, NamedTuple, cast

import jax
import numpy as np
import jax.numpy as jnp
import optax

from nnspec.checked import Fn, OptimizerProgram, Program, Regularization, is_bias, is_state
from nnspec import metrics as metric_lib
from nnspec import nn

Params = dict[str, dict[str, jax.Array]]
# The `hparams` entry of the `regularize` section: not an identifier, so no layer can share it.
MODEL_WIDE = "*regularize"
HParams = dict[str, dict[str, jax.Array]]


class TrainState(NamedTuple):
    params: Params
    opt_state: Any


# ------------------------------------------------------------------------------- optimizer

# Schedule constants that may vary between the models of a sweep (traced); the others
# (`every`, `steps`, `factor`, `rate`, `warmup`, ...) shape optax's schedule code and stay static.
TRACED_SCHEDULE_PARAMS = ("initial", "value", "final")
PLATEAU = "reduce_on_plateau"


def _lr_at(count: jax.Array, lr: float | Fn, traced: Mapping[str, jax.Array], warmup: int) -> jax.Array:
    """The learning rate at step `count`: optax's schedules, fed the traced constants (and,
    for `reduce_on_plateau`, the rate its rule has set, `traced["lr"]`)."""
    p = lr.params if isinstance(lr, Fn) else {}
    name = lr.name if isinstance(lr, Fn) else "constant"
    base: Callable[[jax.Array | int], jax.Array] = {
        "constant": lambda: optax.constant_schedule(traced["value"]),
        "step_decay": lambda: optax.exponential_decay(traced["initial"], p["every"], p["factor"], staircase=True),
        "exponential_decay": lambda: optax.exponential_decay(traced["initial"], p["every"], p["rate"]),
        "cosine_decay": lambda: optax.cosine_decay_schedule(traced["initial"], p["steps"], alpha=traced["final"]),
        # Keras's `decay=` and Caffe's `inv`; optax has no such schedule
        "inverse_time_decay": lambda: (lambda c: traced["initial"] * (1.0 + p["rate"] * c / p["every"]) ** -p["power"]),
        PLATEAU: lambda: (lambda c: traced["lr"]),
    }[name]()
    if warmup <= 0:
        return base(count)
    return optax.join_schedules([optax.linear_schedule(0.0, base(0), warmup), base], [warmup])(count)


def schedule_hparams(opt: OptimizerProgram) -> dict[str, float]:
    """The traced constants of the optimizer's learning-rate schedule (empty without one)."""
    lr, warmup = opt.params["lr"], opt.params["warmup"]
    if isinstance(lr, Fn):
        return {k: float(v) for k, v in lr.params.items() if k in TRACED_SCHEDULE_PARAMS}
    return {"value": float(lr)} if warmup > 0 else {}


def plateau_mode(lr: Fn) -> str:
    """`min` or `max`: `mode=auto` is `min` for a loss, else the metric's own direction."""
    mode = lr.params["mode"]
    if mode != "auto":
        return mode
    from nnspec.losses import METRICS
    base = lr.params["monitor"].removeprefix("val_")
    return "min" if base == "loss" else METRICS.get(base).attrs["mode"]  # type: ignore[union-attr]


def _plateau_start(lr: float | Fn, constants: Mapping[str, float]) -> dict[str, jax.Array]:
    """`reduce_on_plateau`'s state before the first epoch (empty for every other schedule):
    the rate it sets, the best value seen, the epochs waited and the cooldown left."""
    if not (isinstance(lr, Fn) and lr.name == PLATEAU):
        return {}
    worst = math.inf if plateau_mode(lr) == "min" else -math.inf
    return {"lr": jnp.asarray(constants["initial"], jnp.float32), "best": jnp.asarray(worst, jnp.float32),
            "wait": jnp.zeros([], jnp.int32), "cooldown": jnp.zeros([], jnp.int32)}


def plateau_update(opt_state: Any, value: jax.Array, lr: Fn) -> Any:
    """`opt_state` after an epoch whose monitored value was `value` (NaN: unchanged), by
    Keras's ReduceLROnPlateau.on_epoch_end, step for step: in cooldown the counter falls and
    waiting is reset; an improvement (by more than `min_delta`) is the new best; otherwise,
    out of cooldown, one more epoch is waited, and after `patience` of them a rate above
    `min_lr` becomes max(rate · factor, min_lr) and the cooldown starts."""
    p, st = lr.params, opt_state.plateau
    value = jnp.asarray(value, jnp.float32)
    in_cooldown = st["cooldown"] > 0
    cooldown = jnp.where(in_cooldown, st["cooldown"] - 1, st["cooldown"])
    wait = jnp.where(in_cooldown, 0, st["wait"])
    better = (value < st["best"] - p["min_delta"]) if plateau_mode(lr) == "min" else (value > st["best"] + p["min_delta"])
    best = jnp.where(better, value, st["best"])
    waiting = ~better & (cooldown <= 0)
    wait = jnp.where(better, 0, jnp.where(waiting, wait + 1, wait))
    reduce = waiting & (wait >= p["patience"]) & (st["lr"] > jnp.float32(p["min_lr"]))
    new = {"lr": jnp.where(reduce, jnp.maximum(st["lr"] * p["factor"], p["min_lr"]), st["lr"]).astype(jnp.float32),
           "best": best, "wait": jnp.where(reduce, 0, wait).astype(jnp.int32),
           "cooldown": jnp.where(reduce, p["cooldown"], cooldown).astype(jnp.int32)}
    seen = jnp.isfinite(value)
    return opt_state._replace(plateau={k: jnp.where(seen, new[k], st[k]) for k in st})


class ScheduleState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax's states' `count` does
    schedule: dict[str, Any]  # the schedule's traced constants
    inner: Any                      # optax.inject_hyperparams' state
    plateau: dict[str, Any] = {}  # `reduce_on_plateau`'s state (`_plateau_start`); else empty

    @property
    def hyperparams(self) -> dict[str, jax.Array]:
        return self.inner.hyperparams


def _scheduled(inner: optax.GradientTransformation, lr: float | Fn, warmup: int,
               constants: Mapping[str, float]) -> optax.GradientTransformation:
    """Sets the injected learning rate from a schedule whose constants live in the state,
    so models of one sweep may follow different schedules in one program."""
    def init(params):
        return ScheduleState(jnp.zeros([], jnp.int32),
                             {k: jnp.asarray(v, jnp.float32) for k, v in constants.items()}, inner.init(params),
                             _plateau_start(lr, constants))

    def update(updates, state, params=None):
        rate = _lr_at(state.count, lr, {**state.schedule, **state.plateau}, warmup)
        hyper = {**state.inner.hyperparams, "learning_rate": jnp.asarray(rate, jnp.float32)}
        updates, inner_state = inner.update(updates, state.inner._replace(hyperparams=hyper), params)
        return updates, state._replace(count=optax.safe_increment(state.count), inner=inner_state)

    return optax.GradientTransformation(init, update)


_BASE: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": lambda learning_rate: optax.sgd(learning_rate),
    # `lr_in_velocity`: the velocity accumulates the scaled steps (Caffe's, Keras's), not the gradients
    "momentum": lambda learning_rate, momentum, lr_in_velocity: (
        optax.chain(optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum))
        if lr_in_velocity else optax.sgd(learning_rate, momentum=momentum)),
    "nesterov": lambda learning_rate, momentum: optax.sgd(learning_rate, momentum=momentum, nesterov=True),
    "adagrad": lambda learning_rate, initial_accumulator, eps: optax.adagrad(
        learning_rate, initial_accumulator_value=initial_accumulator, eps=eps),
    "adadelta": lambda learning_rate, rho, eps: optax.adadelta(learning_rate, rho=rho, eps=eps),
    "adam": lambda learning_rate, beta1, beta2, eps: optax.adam(learning_rate, b1=beta1, b2=beta2, eps=eps),
    "adamw": lambda learning_rate, beta1, beta2, eps, weight_decay: optax.adamw(
        learning_rate, b1=beta1, b2=beta2, eps=eps, weight_decay=weight_decay),
    "rmsprop": lambda learning_rate, decay, eps, momentum, centered: optax.rmsprop(
        learning_rate, decay=decay, eps=eps, momentum=momentum, centered=centered),
}
_STATIC_OPT = ("centered", "lr_in_velocity")
_COMMON = ("lr", "clip_norm", "clip_value", "warmup")


def optimizer_hparams(opt: OptimizerProgram, reg: Regularization = Regularization(), *,
                      with_decay: bool = False) -> dict[str, Any]:
    """The numbers `optimizer` injects (the learning rate at step 0 for a schedule)."""
    p = opt.params
    lr = p["lr"]
    start = float(lr) if not isinstance(lr, Fn) else float(lr.params.get("initial", lr.params.get("value", 0.0)))
    out: dict[str, Any] = {"learning_rate": 0.0 if p["warmup"] > 0 else start}
    if p["clip_norm"] is not None:
        out["clip_norm"] = p["clip_norm"]
    if p["clip_value"] is not None:
        out["clip_value"] = p["clip_value"]
    if reg.weight_decay > 0 or with_decay:
        out["decoupled_decay"] = reg.weight_decay
    out.update({k: v for k, v in p.items() if k not in _COMMON})
    return out


def optimizer(opt: OptimizerProgram, reg: Regularization = Regularization(), *,
              with_decay: bool = False, frozen: frozenset[str] = frozenset(),
              mults: Mapping[str, Mapping[str, float]] | None = None) -> optax.GradientTransformation:
    """The optimizer as one optax composition, every number a traced hyperparameter.
    `with_decay` keeps a (possibly zero) decoupled decay, so a sweep's models share one structure.
    The layers named in `frozen` (`trainable=false`) are left out by `optax.multi_transform`:
    their updates are zeros (`optax.set_to_zero`), and the optimizer keeps no state for them
    (its moments hold `optax.MaskedNode`s in their place), clipping's global norm and the
    weight decay do not see them. `mults` (`lr_multipliers`: `lr_mult=`, `bias_lr_mult=`) scales
    the arrays it names, last, so every term of their step (decoupled decay too) is
    lr_mult·η; clipping's global norm is still taken over the gradients, before it."""
    p = opt.params
    base_args = {k: v for k, v in p.items() if k not in _COMMON}

    def factory(learning_rate, clip_norm=None, clip_value=None, decoupled_decay=None, **kw):
        parts = []
        if clip_value is not None:
            parts.append(optax.clip(clip_value))
        if clip_norm is not None:
            parts.append(optax.clip_by_global_norm(clip_norm))
        parts.append(_BASE[opt.name](learning_rate, **kw))
        if decoupled_decay is not None:
            # w ← w − η·λ·w, outside the adaptive scaling (Loshchilov & Hutter)
            parts.append(optax.add_decayed_weights(-learning_rate * decoupled_decay, mask=_decay_mask(reg)))
        if mults:
            parts.append(_multiplied(mults))
        if not frozen:
            return optax.chain(*parts)
        return optax.multi_transform({"train": optax.chain(*parts), "frozen": optax.set_to_zero()},
                                     _frozen_labels(frozen))

    hps = optimizer_hparams(opt, reg, with_decay=with_decay)
    # inject_hyperparams binds hyperparameters by the factory's signature, so spell it out
    names = list(hps)
    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY if i else inspect.Parameter.POSITIONAL_OR_KEYWORD)
         for i, n in enumerate(names)])
    static = tuple(k for k in _STATIC_OPT if k in base_args)
    inner = optax.inject_hyperparams(factory, static_args=static)(**hps)
    if isinstance(p["lr"], Fn) or p["warmup"] > 0:
        return _scheduled(inner, p["lr"], p["warmup"], schedule_hparams(opt))
    return inner


def role(name: str) -> str:
    """What a layer's array is, by its name: `state` (`moving_*`: running statistics, which
    no optimizer, penalty or decay touches), `bias` (`b`, `b_rec`, `b_back`; and a
    normalization's `*scale` and `*offset`, which Keras does not penalize either), or `weight`."""
    if is_state(name):
        return "state"
    if is_bias(name):
        return "bias"
    return "weight"


def _penalized(name: str, reg: Regularization) -> bool:
    r = role(name)
    return r == "weight" or (r == "bias" and reg.include_bias)


def _frozen_labels(frozen: frozenset[str]) -> Callable[[Params], Any]:
    return lambda params: {layer: {name: "frozen" if layer in frozen else "train" for name in ps}
                           for layer, ps in params.items()}


def frozen_layers(program: Program) -> frozenset[str]:
    """The layers written with `trainable=false`."""
    return frozenset(layer.name for layer in program.model.layers if not layer.trainable)


def lr_multipliers(program: Program) -> dict[str, dict[str, float]]:
    """Each array's multiple of the learning rate that is not 1 (`lr_mult=`, `bias_lr_mult=`),
    by layer and name; running statistics take no step, so none."""
    out: dict[str, dict[str, float]] = {}
    for layer in program.model.layers:
        ms = {n: layer.lr_mult(n) for n in layer.param_shapes if not is_state(n) and layer.lr_mult(n) != 1}
        if ms:
            out[layer.name] = ms
    return out


def _multiplied(mults: Mapping[str, Mapping[str, float]]) -> optax.GradientTransformation:
    """The updates of the arrays `mults` names, times their multipliers (optax.scale, per array)."""
    def update(updates, state, params=None):
        return {layer: {n: u * mults[layer][n] if n in mults.get(layer, {}) else u for n, u in ps.items()}
                for layer, ps in updates.items()}, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _decay_mask(reg: Regularization) -> Callable[[Params], Any]:
    return lambda params: {layer: {name: _penalized(name, reg) for name in ps} for layer, ps in params.items()}


# ----------------------------------------------------------------------------------- model

class Model:
    """A checked program as pure functions. The object itself holds no arrays."""

    def __init__(self, program: Program, *, with_decay: bool = False, with_penalty: bool | None = None) -> None:
        self.program = program
        reg = program.regularization
        # Penalties cost a pass over the weights every step: leave them out when the spec
        # has none (a sweep whose other models have some says so with `with_penalty`).
        self.has_penalty = with_penalty if with_penalty is not None else bool(
            reg.l1 or reg.l2 or any(layer.params.get("l1") or layer.params.get("l2") for layer in program.model.layers))
        # `trainable=false`: no optimizer step, no decay, no penalty; a frozen batch_norm
        # normalizes with its running statistics and leaves them be (as Keras's does)
        self.frozen = frozen_layers(program)
        self.layers = tuple(nn.LAYERS[layer.op](layer) for layer in program.model.layers)
        # the model's output: its last layer (or its one input, for a model without layers);
        # with a `loss { }` block, one output per line, and `apply` returns a dict by name
        self.output = program.model.layers[-1].name if program.model.layers else program.model.inputs[0][0]
        self.heads = program.heads
        self.several = program.several_outputs
        self.outputs = tuple(h.node for h in self.heads) if self.several else (self.output,)
        losses = {h.name: nn.loss_fn(h.loss.name, h.loss.params, h.shape) for h in self.heads}
        if not self.heads:
            self._loss = None
        elif not self.several:
            self._loss = losses[""]
        else:  # the weighted sum of the outputs' losses, one value per example
            weights = {h.name: h.weight for h in self.heads}
            self._loss = lambda pred, y: cast(jax.Array, sum(w * losses[n](pred[n], y[n]) for n, w in weights.items()))
        # `batch_reduction=sum`: the step minimizes the batch's sum of losses, not their mean
        # (the checker makes every output of a `loss { }` block agree)
        self.batch_sum = any(h.loss.params.get("batch_reduction") == "sum" for h in self.heads)
        self.optimizer = (optimizer(program.optimizer, program.regularization, with_decay=with_decay,
                                    frozen=self.frozen, mults=lr_multipliers(program)) if program.optimizer else None)
        # `precision bf16`: the forward pass computes in bfloat16 from float32 weights, which
        # stay the master copy (the gradients come back as float32 through the casts); the
        # loss and the metrics read the output as float32. No loss scaling: bfloat16 has
        # float32's exponent range (Keras's `mixed_bfloat16` policy does the same).
        self.compute = jnp.bfloat16 if program.train is not None and program.train.precision == "bf16" else None
        # what each epoch reports besides the total loss, by history key (Program.history_keys):
        # each metric as statistics summed over batches and a finalizer (nnspec/metrics.py);
        # with several outputs, each output's loss (a mean) and metrics, reading its own
        # prediction and targets
        self._metrics: dict[str, metric_lib.Metric] = {}
        for h in self.heads:
            if self.several:
                self._metrics[h.key("loss")] = metric_lib.on(h.name, metric_lib._mean(h.key("loss"), losses[h.name]))
            for m in h.metrics:
                built = metric_lib.build(m, h.loss, h.shape)
                self._metrics[h.key(m.key)] = metric_lib.on(h.name, built, h.key(m.key)) if self.several else built
        # the terms layers add to each example's loss (a `sample` layer's KL divergence), by
        # history key: `added` computes them from the nodes' values, and their means are
        # reported as metrics that read them (`metric_stats(..., added=)`), not the outputs
        self.adds = tuple((key, layer.name, layer.inputs, len(layer.out_shape))
                          for key, layer in program.added_losses)
        self._added = {key: _added_metric(key) for key, *_ in self.adds}
        self._heads_metrics = dict(self._metrics)
        self._metrics.update(self._added)
        self.metric_names = tuple(self._metrics)

    # -- parameters and hyperparameters
    def init(self, key: jax.Array) -> Params:
        """Fresh parameters: one dict of arrays per layer that has any, each drawn from its
        initializer; an array that a `weights="FILE.npy"` file gives is drawn here too, and
        training puts the file's values in its place (nnspec/start.py's `with_files`)."""
        keys = jax.random.split(key, max(1, len(self.layers)))
        params = {}
        for k, impl in zip(keys, self.layers):
            p = impl.init(k)
            if p:
                params[impl.layer.name] = p
        return params

    def hparams(self) -> HParams:
        """The traced hyperparameters' values as written in the spec, as float32 scalars.
        (NumPy, not jnp: building them must not compile anything.)"""
        hp: dict[str, dict[str, Any]] = {impl.layer.name: impl.hparams() for impl in self.layers}
        reg = self.program.regularization
        hp[MODEL_WIDE] = {"l1": reg.l1, "l2": reg.l2}
        return jax.tree_util.tree_map(lambda v: np.float32(v), hp)

    # -- the forward pass
    def apply(self, params: Params, x: Any, *, key: jax.Array | None = None, train: bool = False,
              hparams: HParams | None = None) -> jax.Array:
        """Outputs for one example, or a batch (leading axes are carried along). `x` is an
        array for a model with one input; with several, a dict name -> array or a tuple in
        the inputs' order."""
        values = self.trace(params, x, key=key, train=train, hparams=hparams)
        return self.result(values)

    def result(self, values: Mapping[str, jax.Array]) -> Any:
        """The model's output from every node's value: an array, or with several outputs a
        dict from output name to array."""
        if self.several:
            return {h.name: values[h.node] for h in self.heads}
        return values[self.output]

    def trace(self, params: Params, x: Any, *, key: jax.Array | None = None, train: bool = False,
              hparams: HParams | None = None, weights: jax.Array | None = None) -> dict[str, jax.Array]:
        """Every input's and layer's value, by name, in file order (an order of evaluation:
        each layer reads names above it). The layers draw their keys as `apply` always has,
        one split of `key` per layer in order."""
        return self._run(params, x, key=key, train=train, hparams=hparams, weights=weights)[0]

    def _run(self, params: Params, x: Any, *, key: jax.Array | None, train: bool, hparams: HParams | None,
             weights: jax.Array | None = None) -> tuple[dict[str, jax.Array], Params]:
        """(every node's value, the running statistics' updates of a training step)."""
        hp = self.hparams() if hparams is None else hparams
        keys = (jax.random.split(key, len(self.layers)) if key is not None and train
                else [None] * len(self.layers))
        values: dict[str, jax.Array] = dict(self.feed(x))
        master = params
        if self.compute is not None:
            params, values = _cast(params, self.compute), _cast(values, self.compute)
        updates: dict[str, dict[str, jax.Array]] = {}
        for k, impl in zip(keys, self.layers):
            names = impl.layer.inputs
            arg = tuple(values[n] for n in names) if getattr(impl, "MERGE", False) else values[names[0]]
            p, name = params.get(impl.layer.name, {}), impl.layer.name
            if impl.STATEFUL:
                live = train and name not in self.frozen  # a frozen one runs as in inference
                values[name], new = impl.apply_stateful(p, arg, hp[name], key=k, train=live,  # type: ignore[attr-defined]
                                                        weights=weights)
                if train and new:
                    updates[name] = new
            else:
                values[name] = impl.apply(p, arg, hp[name], key=k, train=train)
        if self.compute is not None:  # the output, and running statistics, as float32
            for name in self.outputs:
                values[name] = values[name].astype(jnp.float32)
            updates = {layer: {k: v.astype(master[layer][k].dtype) for k, v in new.items()}
                       for layer, new in updates.items()}
        return values, updates

    def feed(self, x: Any) -> dict[str, jax.Array]:
        """The inputs by name, from an array (one input), a dict or a tuple in input order;
        token inputs as int32."""
        names = [name for name, _ in self.program.model.inputs]
        if isinstance(x, Mapping):
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"no value for input `{missing[0]}`: give one for each of {', '.join(names)}")
            got = {n: x[n] for n in names}
        elif isinstance(x, (tuple, list)) and len(names) > 1:
            if len(x) != len(names):
                raise ValueError(f"{len(x)} arrays for {len(names)} inputs ({', '.join(names)})")
            got = dict(zip(names, x))
        elif len(names) == 1:
            got = {names[0]: x}
        else:
            raise ValueError(f"this model has {len(names)} inputs ({', '.join(names)}): "
                             "give a dict name -> array or a tuple in that order")
        for t in self.program.model.input_types:
            if t.dtype == "int32":
                got[t.name] = jnp.asarray(got[t.name]).astype(jnp.int32)
        return got

    # -- the objective
    def penalty(self, params: Params, hparams: HParams | None = None) -> jax.Array:
        """L1/L2 weight penalties, model-wide and per layer (biases only with include_bias);
        a frozen layer's weights are left out."""
        hp = self.hparams() if hparams is None else hparams
        reg = self.program.regularization
        total = jnp.zeros((), jnp.float32)
        if not self.has_penalty:
            return total
        for impl in self.layers:
            if impl.layer.name in self.frozen:  # a constant: it would change no gradient
                continue
            ps = params.get(impl.layer.name, {})
            h = hp[impl.layer.name]
            for name, w in ps.items():
                if not _penalized(name, reg):
                    continue
                l1 = hp[MODEL_WIDE]["l1"] + h.get("l1", 0.0)
                l2 = hp[MODEL_WIDE]["l2"] + h.get("l2", 0.0)
                total = total + l1 * jnp.sum(jnp.abs(w)) + l2 * jnp.sum(w * w)
        return total

    def added(self, values: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """The terms layers add to the loss, one value per example each, by history key,
        from every node's value (`trace`): a `sample` layer's KL divergence of its mean and
        log-variance, before its weight `beta`. Empty for a model without such layers."""
        return {key: nn.kl(values[m], values[lv], n_axes) for key, _, (m, lv), n_axes in self.adds}

    def per_example_loss(self, pred: jax.Array, y: jax.Array, added: Mapping[str, jax.Array] | None = None,
                         hparams: HParams | None = None) -> jax.Array:
        """Each example's loss: its outputs' (weighted) losses, plus each added term (`added`,
        which a model with `sample` layers must be given) times its layer's `beta`."""
        assert self._loss is not None, "this spec has no loss"
        per = self._loss(pred, y)
        if not self.adds:
            return per
        if added is None:
            raise ValueError("this model's loss has terms its layers add (the KL of `sample`): pass "
                             "`added=model.added(model.trace(...))`")
        hp = self.hparams() if hparams is None else hparams
        for key, layer, _, _ in self.adds:
            per = per + hp[layer]["beta"] * added[key]
        return per

    def scored(self, params: Params, x: Any, y: Any, *, key: jax.Array | None = None, train: bool = False,
               hparams: HParams | None = None) -> tuple[Any, jax.Array, dict[str, jax.Array]]:
        """(the outputs, each example's loss, the added terms) of a batch."""
        values = self.trace(params, x, key=key, train=train, hparams=hparams)
        pred, added = self.result(values), self.added(values)
        return pred, self.per_example_loss(pred, y, added, hparams), added

    def loss(self, params: Params, x: jax.Array, y: jax.Array, *, key: jax.Array | None = None,
             train: bool = False, hparams: HParams | None = None, weights: jax.Array | None = None) -> jax.Array:
        """The objective: the mean loss over the batch (weighted: padding examples have
        weight 0), or with `batch_reduction=sum` the sum, plus penalties."""
        hp = self.hparams() if hparams is None else hparams
        per = self.scored(params, x, y, key=key, train=train, hparams=hp)[1]
        return self._over_batch(per, weights) + self.penalty(params, hp)

    def _over_batch(self, per: jax.Array, weights: jax.Array | None) -> jax.Array:
        if self.batch_sum:
            return jnp.sum(per) if weights is None else jnp.sum(per * weights)
        return _mean(per, weights)

    def metric_stats(self, pred: jax.Array, y: jax.Array, weights: jax.Array | None = None,
                     added: Mapping[str, jax.Array] | None = None) -> dict[str, dict[str, jax.Array]]:
        """Every metric's statistics of a batch (weights 0: padding), by key; `finalize`
        turns the statistics of a whole split into the metrics. The added terms' means
        (`kl_loss`) read `added`, which a model with `sample` layers must be given."""
        stats = metric_lib.stats_of(self._heads_metrics, pred, y, weights)
        if self.adds:
            if added is None:
                raise ValueError("this model reports the terms its layers add to the loss: pass `added`")
            stats.update(metric_lib.stats_of(self._added, added, y, weights))
        return stats

    def merge_stats(self, a: dict, b: dict, xp: Any = jnp) -> dict:
        """Two batches' (or chunks') metric statistics combined."""
        return metric_lib.merge(self._metrics, a, b, xp)

    def output_struct(self, batch: int) -> Any:
        """The shape of `apply`'s result for `batch` examples (a dict with several outputs)."""
        if self.several:
            return {h.name: jax.ShapeDtypeStruct((batch, *h.shape), jnp.float32) for h in self.heads}
        return jax.ShapeDtypeStruct((batch, *self.program.model.output_shape), jnp.float32)

    def zero_stats(self, pred: Any, y: Any) -> dict:
        """The metric statistics of no examples, for batches shaped as `pred`, `y`."""
        batch = jax.tree_util.tree_leaves(pred)[0].shape[0]
        added = {key: jax.ShapeDtypeStruct((batch,), jnp.float32) for key in self._added}
        return {**metric_lib.zeros(self._heads_metrics, pred, y), **metric_lib.zeros(self._added, added, y)}

    def finalize(self, stats: dict, xp: Any = jnp) -> dict[str, Any]:
        """Every metric, by key, from the statistics of a split (any leading axes)."""
        return metric_lib.finalize(self._metrics, stats, xp)

    # -- training
    def init_state(self, key: jax.Array) -> TrainState:
        params = self.init(key)
        assert self.optimizer is not None, "this spec has no optimizer"
        return TrainState(params, self.optimizer.init(params))

    def step(self, state: TrainState, x: jax.Array, y: jax.Array, *, key: jax.Array,
             hparams: HParams | None = None, weights: jax.Array | None = None,
             loss_weights: jax.Array | None = None) -> tuple[TrainState, dict[str, Any]]:
        """One gradient step on a batch; returns the new state and the batch's sums: the
        loss's (`loss`) and every metric's statistics (`metrics`). `weights` are 1 for the
        batch's real examples, 0 for padding; `loss_weights` (`sample_weight`: each example's
        weight, times its `weights`) weigh the loss, which is then Σ w·loss / Σ w over the
        batch; the metrics count every real example alike (Keras's `metrics`)."""
        lw = weights if loss_weights is None else loss_weights
        hp = self.hparams() if hparams is None else hparams

        def objective(params):
            values, stats = self._run(params, x, key=key, train=True, hparams=hp, weights=weights)
            pred, added = self.result(values), self.added(values)
            per = self.per_example_loss(pred, y, added, hp)
            return self._over_batch(per, lw) + self.penalty(params, hp), (pred, per, added, stats)

        (_, (pred, per, added, stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        assert self.optimizer is not None
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if stats:  # running statistics: their step's update, whatever the optimizer made of them
            params = {layer: {**ps, **stats.get(layer, {})} for layer, ps in params.items()}
        # The loss per example comes from the objective; only the other metrics are computed anew.
        pred, per, added = jax.lax.stop_gradient((pred, per, added))
        total = (lambda v: jnp.sum(v)) if lw is None else (lambda v: jnp.sum(v * lw))
        sums = {"loss": total(per), "metrics": self.metric_stats(pred, y, weights, added)}
        return TrainState(params, opt_state), sums


def with_hparams(opt_state: Any, opt: OptimizerProgram, reg: Regularization) -> Any:
    """`opt_state` (from `optimizer(...).init`) carrying another setting's numbers: how the
    models of a sweep get their own learning rate, momentum, ... in one shared structure."""
    numbers = optimizer_hparams(opt, reg, with_decay=True)

    # NumPy numbers: `stack` puts them on the device (an eager jnp.asarray compiles)
    def inject(state):
        hyper = {k: np.asarray(numbers[k], v.dtype) for k, v in state.hyperparams.items()}
        return state._replace(hyperparams=hyper)
    if isinstance(opt_state, ScheduleState):
        consts = schedule_hparams(opt)
        plateau = {**opt_state.plateau, **({"lr": np.asarray(consts["initial"], np.float32)}
                                            if opt_state.plateau else {})}
        return opt_state._replace(schedule={k: np.asarray(consts[k], np.float32) for k in opt_state.schedule},
                                  inner=inject(opt_state.inner), plateau=plateau)
    return inject(opt_state)


def _on(name: str, fn: Callable[[Any, Any], jax.Array]) -> Callable[[Any, Any], jax.Array]:
    """`fn` of one output of a model with several: its prediction and its targets."""
    return lambda pred, y: fn(pred[name], y[name])


def _added_metric(key: str) -> metric_lib.Metric:
    """An added term's mean over the examples, as a mean metric of the term's values
    (`added[key]`, one per example) rather than of the outputs."""
    mean = metric_lib._mean(key, lambda v, y: v)
    return metric_lib.Metric(key, lambda added, y, w: mean.stats(added[key], None, w), mean.merge, mean.finalize)


def _cast(tree: Any, dtype: Any) -> Any:
    """Every floating-point array of `tree` as `dtype` (token ids stay integers)."""
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
    if weights is None:
        return jnp.mean(values)
    total = jnp.sum(weights)  # padding's 0/1, or sample weights (any positive sum)
    return jnp.sum(values * weights) / jnp.where(total > 0, total, 1.0)


def lower(program: Program) -> Model:
    """Lower a checked program to pure JAX functions."""
    return Model(program)


def emit_step(program: Program, form: str) -> str:
    """The training step on one batch, as a jaxpr or as StableHLO text."""
    model = lower(program)
    batch = program.train.batch if program.train and program.train.batch else 32
    # each input as the data feeds it: token ids as int32, numbers as float32
    inputs = {t.name: jax.ShapeDtypeStruct((batch, *t.shape), jnp.dtype(t.dtype))
              for t in map(program.model.input_type, (name for name, _ in program.model.inputs))}
    x = next(iter(inputs.values())) if len(inputs) == 1 else inputs
    assert program.heads

    def target(h):  # each output's targets as the loss reads them: class ids, or numbers
        if h.loss.task == "multiclass" and h.loss.params.get("labels") == "index":
            return jax.ShapeDtypeStruct((batch,), jnp.int32)
        return jax.ShapeDtypeStruct((batch, *h.shape), jnp.float32)
    y = {h.name: target(h) for h in program.heads} if program.several_outputs else target(program.heads[0])
    state = jax.eval_shape(model.init_state, jax.random.key(0))
    hp = model.hparams()

    def step(state, x, y, key, hparams):
        return model.step(state, x, y, key=key, hparams=hparams)

    key = jax.random.key(0)
    if form == "jaxpr":
        return str(jax.make_jaxpr(step)(state, x, y, key, hp)) + "\n"
    return jax.jit(step).lower(state, x, y, key, hp).as_text()
