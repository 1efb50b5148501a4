"""The workloads: what is trained, on which data, for how long, and the bars nnspec must clear.

A workload is plain data. `write(dir)` puts its examples in `DIR/NAME.npz` (features `x`,
float32, (n, *shape); labels `y`, int class indices) and its spec in `DIR/NAME.nn`, which
reads that file, so nnspec and every baseline train on the same arrays. NumPy only; no JAX.

Three architectures (`arch`): "mlp", dense relu layers of `hidden` units (W1-W3); "cnn",
the LeNet-style network of specs/digits_cnn.nn (conv2d `hidden[0]` 3×3 same, relu →
2×2 max pool → conv2d `hidden[1]` 3×3 valid, relu → global average pool → dense) on
the 8×8 digits images (W4); "lstm", specs/sequence_lstm.nn (lstm `hidden[0]` → dense) on
the `waves` sequences (W5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One training job, the same for every implementation."""
    name: str
    title: str
    n: int                    # training examples (no validation split)
    features: int             # the last axis of one example: its width, channels or values per step
    hidden: tuple[int, ...]   # mlp: relu layers' units; cnn: the two convolutions' filters; lstm: its units
    classes: int              # 2: one sigmoid unit and binary cross-entropy; more: softmax
    optimizer: str            # "sgd" or "adam"
    lr: float
    batch: int
    epochs: int
    drop_prob: float = 0.0    # dropout after each hidden layer
    seed: int = 0
    lrs: tuple[float, ...] = ()   # a learning-rate sweep: one model per rate, `lr` unused
    impls: tuple[str, ...] = ("nnspec", "jax_steps", "jax_fused", "torch_eager", "keras_jax")
    # baseline -> the least acceptable ratio (nnspec samples/s ÷ baseline samples/s)
    bars: dict[str, float] = field(default_factory=dict, compare=False)
    # baseline -> (the least acceptable ratio of wall clocks, baseline's ÷ nnspec's, and the
    # nnspec implementation it is compared with): whole jobs, compilation included
    wall_bars: dict[str, tuple[float, str]] = field(default_factory=dict, compare=False)
    loss_tol: float = 0.15    # final losses may differ from nnspec's by this fraction
    # ... or both be below this: trained to near zero, where relative differences are noise
    loss_floor: float = 0.0
    # a sweep's rows that train each setting in a job of its own (`nnspec_fits`,
    # `nnspec_procs`) train only this many settings, the reference first (None: all)
    alone: int | None = None
    arch: str = "mlp"         # "mlp", "cnn" or "lstm" (the module's docstring)
    shape: tuple[int, ...] = ()   # one example's shape, when it is not (features,)

    def __post_init__(self) -> None:
        # every implementation runs exactly n / batch full steps an epoch
        assert self.n % self.batch == 0, (self.name, self.n, self.batch)

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return self.n // self.batch

    @property
    def reference(self) -> int:
        """For a sweep: the index of the rate whose final loss is compared (the one nearest `lr`)."""
        return min(range(len(self.lrs)), key=lambda i: abs(self.lrs[i] - self.lr))

    def settings_alone(self) -> list[int]:
        """Which of a sweep's settings the one-job-per-setting rows train (indices into `lrs`)."""
        rest = [i for i in range(len(self.lrs)) if i != self.reference]
        return ([self.reference] + rest)[:self.alone] if self.alone is not None else list(range(len(self.lrs)))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: (features,), an image (h, w, channels) or a sequence (steps, features)."""
        return self.shape or (self.features,)

    @property
    def outputs(self) -> int:
        return 1 if self.classes == 2 else self.classes

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """(x float32 (n, features), y int64 (n,)), the same for every run."""
        if self.name in ("W1", "W3"):
            from nnspec.data import load  # pure NumPy: the built-in moons
            from nnspec.datasets import DataSource
            ds = load(DataSource.of("builtin", name="moons", n=self.n), seed=self.seed,
                      base_dir=Path("."), task="binary")
            return ds.x.astype(np.float32), ds.y[:, 0].astype(np.int64)
        if self.arch == "cnn":
            return _digit_images(self.n)
        if self.arch == "lstm":
            from nnspec.data import load
            from nnspec.datasets import DataSource
            ds = load(DataSource.of("builtin", name="waves", n=self.n, steps=self.input_shape[0], noise=0.2),
                      seed=self.seed, base_dir=Path("."), task="binary")
            return ds.x.astype(np.float32), ds.y[:, 0].astype(np.int64)
        return _gaussian_classes(self.n, self.features, self.classes, seed=self.seed)

    def spec(self, data_file: str) -> str:
        """The `.nn` spec a user would write for this workload."""
        train = (f"train {{\n    data npz(\"{data_file}\")\n    batch {self.batch}\n"
                 f"    epochs {self.epochs}\n    seed {self.seed}\n}}\n")
        shape = ", ".join(str(d) for d in self.input_shape)
        if self.arch == "cnn":  # specs/digits_cnn.nn, the softmax left to the loss as in W2
            c1, c2 = self.hidden
            return (f"model {self.name.lower()} {{\n    input x[{shape}]\n"
                    f"    conv2d {c1} 3 relu padding=same\n    max_pool2d 2\n    conv2d {c2} 3 relu\n"
                    f"    global_avg_pool\n    dense {self.classes}\n}}\n"
                    f"loss categorical_crossentropy from_logits=true\noptimizer {self.optimizer} lr={self.lr:g}\n"
                    + train)
        if self.arch == "lstm":  # specs/sequence_lstm.nn
            return (f"model {self.name.lower()} {{\n    input x[{shape}]\n    lstm {self.hidden[0]}\n"
                    f"    dense 1 sigmoid\n}}\n"
                    f"loss binary_crossentropy\noptimizer {self.optimizer} lr={self.lr:g}\n" + train)
        layers = []
        for units in self.hidden:
            layers.append(f"    dense {units} relu")
            if self.drop_prob:
                layers.append(f"    dropout {self.drop_prob:g}")
        if self.classes == 2:
            layers.append("    dense 1 sigmoid")
            loss = "binary_crossentropy"
        else:
            layers.append(f"    dense {self.classes}")
            loss = "categorical_crossentropy from_logits=true"
        body = "\n".join(layers)
        lr = f"sweep({', '.join(f'{v:.6g}' for v in self.lrs)})" if self.lrs else f"{self.lr:g}"
        return (f"model {self.name.lower()} {{\n    input x[{self.features}]\n{body}\n}}\n"
                f"loss {loss}\noptimizer {self.optimizer} lr={lr}\n"
                f"train {{\n    data npz(\"{data_file}\")\n    batch {self.batch}\n"
                f"    epochs {self.epochs}\n    seed {self.seed}\n}}\n")

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write `NAME.npz` and `NAME.nn` into `directory`; returns their paths."""
        x, y = self.data()
        npz = directory / f"{self.name}.npz"
        np.savez(npz, x=x, y=y)
        spec = directory / f"{self.name}.nn"
        spec.write_text(self.spec(npz.name), encoding="utf-8")
        return npz, spec


def _gaussian_classes(n: int, features: int, classes: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian clouds, one per class: learnable, but not to zero loss."""
    rng = np.random.default_rng(seed)
    centers = 0.25 * rng.normal(size=(classes, features))
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(size=(n, features))
    return x.astype(np.float32), y.astype(np.int64)


def _digit_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` of scikit-learn's 1,797 8×8 digits as (n, 8, 8, 1) images, each pixel
    standardized over those n (what `standardize` in specs/digits_cnn.nn does; a pixel
    that never varies is only centred), and their classes."""
    from nnspec.data import load  # scikit-learn's digits (DataError without scikit-learn)
    from nnspec.datasets import DataSource
    ds = load(DataSource.of("builtin", name="digits", image=True), seed=0, base_dir=Path("."), task="multiclass")
    x, y = ds.x[:n].astype(np.float64), ds.y[:n, 0] if ds.y.ndim == 2 else ds.y[:n]
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x.astype(np.float32), np.asarray(y, np.int64)


def workloads(quick: bool = False) -> dict[str, Workload]:
    """The workloads by name; `quick` shrinks the data, the epochs and W2's hidden layers
    (their compilation dominates a quick run), not the structure of any network."""
    # --quick trains too briefly for the initialization to wash out: looser agreement
    tol = 0.25 if quick else 0.15
    w1 = Workload("W1", "textbook MLP 2-3-1, SGD, batch 32", n=512 if quick else 4096, features=2,
                  hidden=(3,), classes=2, optimizer="sgd", lr=0.1, batch=32, epochs=40 if quick else 200,
                  bars={"jax_fused": 0.9, "torch_eager": 100.0, "keras_jax": 20.0}, loss_tol=tol)
    h = 32 if quick else 256
    w2 = Workload("W2", f"digits-size MLP 64-{h}-{h}-10, dropout, Adam, batch 128",
                  n=512 if quick else 65536, features=64, hidden=(h, h),
                  classes=10, optimizer="adam",
                  lr=1e-3, batch=128, epochs=3 if quick else 5, drop_prob=0.5,
                  bars={"jax_fused": 0.9, "torch_eager": 4.0, "keras_jax": 1.4}, loss_tol=tol)
    w3 = Workload("W3", "W1 at 16 learning rates: nnspec's sweep vs training them one by one", n=w1.n,
                  features=2, hidden=(3,), classes=2, optimizer="sgd", lr=0.1, batch=32, epochs=w1.epochs,
                  lrs=W3_LRS, impls=("nnspec", "jax_fused", "jax_vmap", "nnspec_seq", "nnspec_fits",
                                     "nnspec_cli", "nnspec_procs"),
                  # the sweep against nnspec's own fused program run 16 times (compiled once):
                  # steady state and whole job; `nnspec train` of the sweep against 16 `nnspec
                  # train` processes: whole jobs (docs/benchmarks.md on what bounds these)
                  bars={"nnspec_seq": 4.0},
                  wall_bars={"nnspec_seq": (4.0, "nnspec"), "nnspec_procs": (20.0, "nnspec_cli")},
                  loss_tol=tol, alone=1 if quick else None)
    # W4 and W5: the example specs digits_cnn.nn and sequence_lstm.nn without their
    # validation split, on as many examples as make whole batches
    w4 = Workload("W4", "LeNet-style CNN on the 8×8 digits (digits_cnn.nn), Adam, batch 64",
                  n=256 if quick else 1792, features=1, shape=(8, 8, 1), hidden=(8, 16), classes=10,
                  optimizer="adam", lr=0.01, batch=64, epochs=3 if quick else 20, arch="cnn",
                  bars=dict(CONV_RNN_BARS), loss_tol=tol, loss_floor=0.1)
    w5 = Workload("W5", "LSTM 16 on the waves sequences (sequence_lstm.nn), Adam, batch 32",
                  n=256 if quick else 2048, features=1, shape=(20, 1), hidden=(16,), classes=2,
                  optimizer="adam", lr=0.02, batch=32, epochs=8 if quick else 10, arch="lstm",
                  bars=dict(CONV_RNN_BARS), loss_tol=tol, loss_floor=0.1)
    return {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5}


# issue 9: nnspec ≥ 0.9× the hand-fused JAX program, ≥ 2× Keras, ≥ 3× PyTorch eager
CONV_RNN_BARS = {"jax_fused": 0.9, "torch_eager": 3.0, "keras_jax": 2.0}


W3_LRS = tuple(float(f"{v:.3g}") for v in np.geomspace(1e-3, 1.0, 16))
