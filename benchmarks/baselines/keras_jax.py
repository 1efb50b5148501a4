"""Baseline (d): Keras 3 on its JAX backend, `model.fit` with the defaults a user keeps
(`shuffle=True`, one compiled train step per batch). Keras's Adam epsilon is set to
1e-8, Optax's and PyTorch's default; Dense layers start Glorot-uniform with zero biases
by default, as nnspec's do; Conv2D's too, and LSTM's recurrent kernel starts orthogonal
with `unit_forget_bias`, as nnspec's."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.clock import Clock  # noqa: E402
from benchmarks.workloads import Workload  # noqa: E402


class _Epochs(keras.callbacks.Callback):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch, logs=None):
        self.clock.epoch(logs["loss"])  # Keras's running mean of the epoch's batch losses


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    if keras.backend.backend() != "jax":
        raise RuntimeError(f"Keras runs on `{keras.backend.backend()}`, not JAX: set KERAS_BACKEND=jax")
    keras.utils.set_random_seed(w.seed)
    with np.load(npz) as f:
        x, y = f["x"], f["y"]
    layers: list = [keras.Input(w.input_shape)]
    if w.arch == "cnn":
        c1, c2 = w.hidden
        layers += [keras.layers.Conv2D(c1, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(2),
                   keras.layers.Conv2D(c2, 3, activation="relu"), keras.layers.GlobalAveragePooling2D()]
    elif w.arch == "lstm":
        layers.append(keras.layers.LSTM(w.hidden[0]))
    for units in w.hidden if w.arch == "mlp" else ():
        layers.append(keras.layers.Dense(units, activation="relu"))
        if w.drop_prob:
            layers.append(keras.layers.Dropout(w.drop_prob))
    if w.classes == 2:
        layers.append(keras.layers.Dense(1, activation="sigmoid"))
        loss = "binary_crossentropy"
        y = y.astype(np.float32)[:, None]
    else:
        layers.append(keras.layers.Dense(w.classes))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = keras.Sequential(layers)
    opt = (keras.optimizers.SGD(w.lr) if w.optimizer == "sgd"
           else keras.optimizers.Adam(w.lr, epsilon=1e-8))
    model.compile(optimizer=opt, loss=loss)
    model.fit(x, y, batch_size=w.batch, epochs=w.epochs, shuffle=True, verbose=0, callbacks=[_Epochs(clock)])
