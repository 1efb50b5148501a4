"""specs/pass_class.nn or specs/digits_mlp.nn as a user would write it in Keras 3 (on
JAX): `python benchmarks/baselines/keras_cold.py pass_class|digits_mlp [EPOCHS]`. Timed from the
outside, whole process, by `python -m benchmarks.cold`.

The same layers, initializers (Glorot-uniform kernels and zero biases by default, as
nnspec's; `he_normal` where the spec says so: Keras's is a truncated normal), loss,
optimizer and learning rate (Adam's epsilon 1e-8, Optax's), batch, epochs, and the same
arrays (cold_data.py), standardized and split as the spec does; validation after every
epoch; for digits early stopping on val_loss, patience 8, best weights restored. `verbose=2`
prints one line per epoch; the last line printed is `test accuracy A`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, for benchmarks.baselines

import keras  # noqa: E402

from benchmarks.baselines.cold_data import SPECS, splits  # noqa: E402


def main(name: str, epochs: int | None = None) -> None:
    s = {**SPECS[name], **({"epochs": epochs} if epochs else {})}
    keras.utils.set_random_seed(s["seed"])
    data = splits(name)
    (x, y), (xv, yv), (xt, yt) = data["train"], data["val"], data["test"]
    if name == "pass_class":
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
        loss = "binary_crossentropy"
        y, yv, yt = (a.astype("float32")[:, None] for a in (y, yv, yt))
    else:
        model = keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        loss = "sparse_categorical_crossentropy"
    opt = (keras.optimizers.SGD(s["lr"]) if s["optimizer"] == "sgd"
           else keras.optimizers.Adam(s["lr"], epsilon=1e-8))
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"])
    callbacks = ([keras.callbacks.EarlyStopping(monitor="val_loss", patience=s["patience"], restore_best_weights=True)]
                 if s["patience"] else [])
    model.fit(x, y, batch_size=s["batch"], epochs=s["epochs"], validation_data=(xv, yv), shuffle=True,
              callbacks=callbacks, verbose=2)
    _, accuracy = model.evaluate(xt, yt, batch_size=s["batch"], verbose=0)
    print(f"test accuracy {accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
