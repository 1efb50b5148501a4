"""The checked program: the IR with every name resolved, every default filled in and
every shape inferred. What lower.py and train.py consume. Plain data, no JAX."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nnspec import ir
from nnspec.diagnostics import Diagnostic
from nnspec.source import Source, Span

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Fn:
    """A resolved registry call: `normal(stddev=0.1)` -> Fn("normal", {"mean": 0.0, "stddev": 0.1})."""
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


def is_state(name: str) -> bool:
    """Whether a layer's array is running statistics (`moving_*`, a batch_norm's), which
    training sets from the batches and no optimizer, penalty or decay touches."""
    return name.startswith("moving_")


def is_bias(name: str) -> bool:
    """Whether a layer's array is a bias (`b`, `b_rec`, `b_back`) or a normalization's
    `*scale` or `*offset`: the arrays `include_bias` and `bias_lr_mult` govern."""
    return not is_state(name) and (name.startswith("b") or name.endswith(("scale", "offset")))


def _size(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass(frozen=True)
class Layer:
    name: str
    op: str
    inputs: tuple[str, ...]
    params: Mapping[str, Any]
    in_shape: Shape
    out_shape: Shape
    param_shapes: Mapping[str, Shape]
    span: Span | None = None
    # one shape per input in `inputs`' order; a merge has several, and `in_shape` is the first
    in_shapes: tuple[Shape, ...] = ()

    @property
    def n_params(self) -> int:
        return sum(_size(shape) for shape in self.param_shapes.values())

    @property
    def trainable(self) -> bool:
        """False for a layer written with `trainable=false` (frozen)."""
        return self.params.get("trainable", True) is not False

    def lr_mult(self, name: str) -> float:
        """What the learning rate is multiplied by for the array `name` (`lr_mult=`, and
        `bias_lr_mult=` for biases, Caffe's per-parameter `lr_mult`): 1 unless written."""
        whole = float(self.params.get("lr_mult", 1.0))
        bias = self.params.get("bias_lr_mult")
        return float(bias) if bias is not None and is_bias(name) else whole

    @property
    def n_trainable(self) -> int:
        """The values training changes: every array but running statistics, none of a frozen layer's."""
        if not self.trainable:
            return 0
        return sum(_size(shape) for name, shape in self.param_shapes.items() if not is_state(name))

    @property
    def flops(self) -> int:
        """Estimated FLOPs of one example through this layer (its registry row's rule)."""
        from nnspec.layers import flops
        return flops(self.op, self.params, self.in_shape, self.out_shape)

    @property
    def activation(self) -> str | None:
        """The activation this layer ends in (`dense ... relu`, or `relu` itself)."""
        act = self.params.get("activation")
        if isinstance(act, Fn):
            return act.name
        from nnspec.layers import LAYERS
        entry = LAYERS.get(self.op)
        return entry.attrs.get("activation") if entry else None


@dataclass(frozen=True)
class Input:
    """A model input's type: `float32` numbers, or `int32` token ids below `vocab`."""
    name: str
    shape: Shape
    dtype: str = "float32"  # float32 | int32
    vocab: int | None = None


@dataclass(frozen=True)
class ModelProgram:
    """The model as a graph: `layers` in file order, which is an order of evaluation;
    each reads the inputs and layers its `inputs` name; the output is the last layer's."""
    name: str | None
    inputs: tuple[tuple[str, Shape], ...]
    layers: tuple[Layer, ...]
    # the inputs' types, in `inputs`' order; empty means every input is float32
    input_types: tuple[Input, ...] = ()

    def input_type(self, name: str) -> Input:
        found = next((i for i in self.input_types if i.name == name), None)
        return found or Input(name, dict(self.inputs)[name])

    @property
    def input_shape(self) -> Shape:
        return self.inputs[0][1]

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape if self.layers else self.input_shape

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)

    @property
    def n_trainable(self) -> int:
        """Parameters training changes (Keras's "Trainable params"); the rest are frozen
        layers' arrays and running statistics."""
        return sum(layer.n_trainable for layer in self.layers)

    @property
    def flops(self) -> int:
        """Estimated FLOPs of one example through the whole model."""
        return sum(layer.flops for layer in self.layers)


@dataclass(frozen=True)
class LossProgram:
    name: str
    params: Mapping[str, Any]
    task: str  # binary | multiclass | regression


@dataclass(frozen=True)
class MetricProgram:
    """One entry of the `metrics` line: `f1(macro)` is name `f1`, its parameters, and the
    key `f1_macro` its values go by (history, screen, `early_stop monitor=`)."""
    name: str
    params: Mapping[str, Any]
    key: str
    mode: str  # min | max: which way is better

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Head:
    """One output of the model and how it trains: the node, its loss, the loss's weight in
    the total and the metrics reported for it. A spec with one `loss` line has one head,
    the model's last layer, named `""` so that its history keys are `loss`, `accuracy`
    as they always were; a `loss { }` block has one head per line, in its order, whose
    keys are `NAME_loss`, `NAME_accuracy` (Keras's names)."""
    node: str
    shape: Shape
    loss: LossProgram
    weight: float = 1.0
    metrics: tuple[MetricProgram, ...] = ()
    name: str = ""  # "" for the one output of a spec with a `loss` line
    span: Span | None = None  # its line in the `loss { }` block

    def key(self, what: str) -> str:
        """The history key of `what` (`loss`, a metric) for this head."""
        return f"{self.name}_{what}" if self.name else what


@dataclass(frozen=True)
class OptimizerProgram:
    name: str
    params: Mapping[str, Any]  # lr is a float or an Fn schedule


@dataclass(frozen=True)
class Regularization:
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0  # decoupled, applied by the optimizer
    include_bias: bool = False


@dataclass(frozen=True)
class EarlyStop:
    monitor: str
    mode: str  # min | max
    patience: int
    min_delta: float
    restore_best: bool


@dataclass(frozen=True)
class TrainProgram:
    data: Any  # datasets.DataSource
    val: float
    test: float
    batch: int | None  # None: the whole training split in one batch
    epochs: int
    seed: int
    metrics: tuple[MetricProgram, ...]
    standardize: bool
    early_stop: EarlyStop | None
    data_span: Span | None = None
    # Stop with E404 when an epoch's mean training loss exceeds this many times the
    # initial weights' loss (on the validation split, else the training split): a
    # divergence that stays finite, as a clipped cross-entropy does. None turns the check
    # off; NaN and infinity always stop a run.
    divergence: float | None = 3.0
    # `input`: the targets are the inputs themselves (`target input`, an autoencoder);
    # `data`: the data source's own targets.
    target: str = "data"
    # How many devices split each batch: a number, `all`, or None for one (nnspec/devices.py).
    devices: int | str | None = None
    devices_span: Span | None = None
    # `params`: the weights and optimizer state split over the devices too (devices.py).
    shard: str = "none"
    # `bf16`: the forward and backward pass in bfloat16 from float32 master weights (lower.py).
    precision: str = "float32"
    # `steps`: every step's training loss is recorded too (steps.csv, Result.steps).
    history: str = "epochs"
    # `steps N`: train for N gradient steps (the epochs they take, the last one part way),
    # instead of `epochs`; None: `epochs` says how long.
    steps: int | None = None
    # Separate validation and test sources (`data csv(...) val=csv(...) test=csv(...)`),
    # instead of fractions split off the training data; None where there is none.
    val_data: Any = None  # datasets.DataSource
    test_data: Any = None
    val_span: Span | None = None
    test_span: Span | None = None
    # The `categorical` and `missing` lines (columns.Columns); None where there are none.
    columns: Any = None
    # `split ... stratify`: the fractions cut within each class (nnspec/split.py);
    # `split column="NAME"`: a CSV column says each row's part, instead of fractions.
    stratify: bool = False
    split_column: str | None = None
    split_span: Span | None = None
    # `start_from "RUN"`: the finished run whose final weights the first epoch starts from
    start_from: str | None = None
    start_optimizer: bool = False  # `start_from ... optimizer=true`: its optimizer state too
    start_span: Span | None = None
    # `stream`: the training data is read from its `.npy` file a window of this many
    # examples at a time (`auto`: nnspec/stream.py's WINDOW_BYTES); None: loaded whole
    stream: int | str | None = None
    # `sample_weight "COLUMN"`: each example's weight in the loss, from that CSV column
    sample_weight: str | None = None
    sample_weight_span: Span | None = None


def added_losses(layers: tuple[Layer, ...]) -> tuple[tuple[str, Layer], ...]:
    """Program.added_losses of a model of these layers."""
    samples = [layer for layer in layers if layer.op == "sample"]
    return tuple((("kl_loss" if len(samples) == 1 else f"{layer.name}_kl_loss"), layer) for layer in samples)


@dataclass(frozen=True)
class Program:
    """Everything a spec says, checked. `train` is None for a model-only spec."""
    spec: ir.Spec
    model: ModelProgram
    loss: LossProgram | None
    optimizer: OptimizerProgram | None
    regularization: Regularization
    train: TrainProgram | None
    source: Source | None = None
    warnings: tuple[Diagnostic, ...] = ()
    sweep: Sweep | None = None  # the models to train when the spec declares sweeps
    # the outputs that train, each with its loss: one for a `loss` line (then `loss` is its
    # loss), one per line of a `loss { }` block (then `loss` is None); empty without a loss
    heads: tuple[Head, ...] = ()

    @property
    def several_outputs(self) -> bool:
        return len(self.heads) > 1 or bool(self.heads and self.heads[0].name)

    @property
    def added_losses(self) -> tuple[tuple[str, Layer], ...]:
        """The terms that layers add to each example's loss, by history key, with the layer
        that adds each: a `sample` layer's KL divergence, `kl_loss` (`NAME_kl_loss` for
        each of several), as Keras's VAE example reports it."""
        return added_losses(self.model.layers)

    def history_keys(self) -> tuple[str, ...]:
        """What each epoch reports, on the training split (`val_` before each for validation):
        the total loss, then each head's loss (with several) and metrics, then the terms
        layers add to the loss (`kl_loss`)."""
        keys = ["loss"]
        for h in self.heads:
            if h.name:
                keys.append(h.key("loss"))
            keys += [h.key(m.key) for m in h.metrics]
        keys += [key for key, _ in self.added_losses]
        return tuple(keys)


@dataclass(frozen=True)
class Sweep:
    """A spec's sweep: its axes and one checked Program per combination of values."""
    axes: tuple[Any, ...]                          # sweep.Axis
    settings: tuple[Mapping[str, Any], ...]        # axis name -> value, one per model
    programs: tuple[Program, ...]

    def groups(self) -> list[list[int]]:
        """Models that can share one compiled program: equal in every untraced axis."""
        static = [a.name for a in self.axes if not a.traced]
        out: dict[tuple, list[int]] = {}
        for i, setting in enumerate(self.settings):
            out.setdefault(tuple(setting[n] for n in static), []).append(i)
        return list(out.values())
