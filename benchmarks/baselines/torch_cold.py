"""specs/pass_class.nn or specs/digits_mlp.nn as a user would write it in PyTorch (CPU,
eager): `python benchmarks/baselines/torch_cold.py pass_class|digits_mlp [EPOCHS]`. Timed from the
outside, whole process, by `python -m benchmarks.cold`.

A plain training loop: `torch.randperm` each epoch, the batch indexed, `zero_grad`/
`backward`/`step`; then the validation loss and accuracy, one printed line per epoch
(`epoch E/N  loss ...`); for digits early stopping on val_loss, patience 8, the best
epoch's weights restored. The same layers, Glorot-uniform weights and zero biases (Kaiming
normal where the spec says `he_normal`), loss, optimizer and learning rate, batch, epochs
and arrays (cold_data.py) as the spec. Threads: the machine's cores, as XLA's CPU client
uses (and benchmarks/baselines/torch_eager.py). The last line is `test accuracy A`."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, for benchmarks.baselines

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.baselines.cold_data import SPECS, splits  # noqa: E402


def _model(name: str) -> nn.Module:
    if name == "pass_class":
        model = nn.Sequential(nn.Linear(2, 1))  # the sigmoid is in the loss (BCEWithLogitsLoss)
    else:
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 64), nn.ReLU(),
                              nn.Linear(64, 10))  # the softmax is in the loss (CrossEntropyLoss)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for i, m in enumerate(linears):
        if name == "digits_mlp" and i < 2:
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        else:
            nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
    return model


def main(name: str, epochs: int | None = None) -> None:
    s = {**SPECS[name], **({"epochs": epochs} if epochs else {})}
    torch.manual_seed(s["seed"])
    torch.set_num_threads(os.cpu_count() or 1)  # PyTorch's default is the physical cores
    data = {k: (torch.from_numpy(x), torch.from_numpy(y)) for k, (x, y) in splits(name).items()}
    binary = name == "pass_class"
    if binary:
        data = {k: (x, y.float().unsqueeze(1)) for k, (x, y) in data.items()}
    loss_fn: nn.Module = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    model = _model(name)
    opt = (torch.optim.SGD(model.parameters(), lr=s["lr"]) if s["optimizer"] == "sgd"
           else torch.optim.Adam(model.parameters(), lr=s["lr"]))

    def evaluate(part: str) -> tuple[float, float]:
        x, y = data[part]
        model.eval()
        with torch.no_grad():
            out = model(x)
            loss = loss_fn(out, y).item()
            right = ((out > 0).float() == y) if binary else (out.argmax(1) == y)
        model.train()
        return loss, right.float().mean().item()

    x, y = data["train"]
    n, batch, epochs = len(x), s["batch"], s["epochs"]
    best, best_state, waited = float("inf"), None, 0
    model.train()
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n)
        total, right = 0.0, 0.0
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            out = model(x[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            with torch.no_grad():
                right += (((out > 0).float() == y[idx]) if binary else (out.argmax(1) == y[idx])).sum().item()
        val_loss, val_acc = evaluate("val")
        print(f"epoch {epoch}/{epochs}  loss {total / n:.4f}  accuracy {right / n:.4f}  val_loss {val_loss:.4f}  "
              f"val_accuracy {val_acc:.4f}", flush=True)
        if s["patience"]:
            if val_loss < best:
                best, best_state, waited = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                waited += 1
                if waited >= s["patience"]:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    print(f"test accuracy {evaluate('test')[1]:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
