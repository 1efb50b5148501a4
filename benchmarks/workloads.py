"""The workloads: what is trained, on which data, for how long, and the bars nnspec must clear.

A workload is plain data. `write(dir)` puts its examples in `DIR/NAME.npz` (features `x`,
float32; labels `y`, int class indices) and its spec in `DIR/NAME.nn`, which reads that
file, so nnspec and every baseline train on the same arrays. NumPy only; no JAX.
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
    features: int
    hidden: tuple[int, ...]   # relu layers
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
    # a sweep's rows that train each setting in a job of its own (`nnspec_fits`,
    # `nnspec_procs`) train only this many settings, the reference first (None: all)
    alone: int | None = None

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
        return _gaussian_classes(self.n, self.features, self.classes, seed=self.seed)

    def spec(self, data_file: str) -> str:
        """The `.nn` spec a user would write for this workload."""
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
    return {"W1": w1, "W2": w2, "W3": w3}


W3_LRS = tuple(float(f"{v:.3g}") for v in np.geomspace(1e-3, 1.0, 16))
