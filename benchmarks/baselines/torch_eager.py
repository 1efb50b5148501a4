"""Baseline (c): PyTorch eager on the CPU, the way its tutorials train: `nn.Sequential`,
`torch.randperm` each epoch, index the batch, `zero_grad`/`backward`/`step`, and
`loss.item()` summed for the epoch's mean. Weights are re-initialized Glorot-uniform with
zero biases, to match the other implementations' initialization scale; the LSTM's
recurrent weights orthogonal and its forget gate's bias 1, as Keras's (PyTorch's gate
order i, f, g, o is Keras's; its second bias, `bias_hh`, stays zero). The CNN reads
NCHW, PyTorch's layout: the images are transposed once, after loading. PyTorch's threads
are set to the machine's cores, as many as XLA's CPU client uses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.clock import Clock
from benchmarks.workloads import Workload


class _Cnn(nn.Module):
    """specs/digits_cnn.nn (see benchmarks/workloads.py)."""

    def __init__(self, w: Workload) -> None:
        super().__init__()
        c1, c2 = w.hidden
        self.c1 = nn.Conv2d(w.features, c1, 3, padding="same")
        self.c2 = nn.Conv2d(c1, c2, 3)
        self.out = nn.Linear(c2, w.outputs)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        return self.out(torch.relu(self.c2(x)).mean(dim=(2, 3)))


class _Lstm(nn.Module):
    """specs/sequence_lstm.nn: the last step's state into one unit."""

    def __init__(self, w: Workload) -> None:
        super().__init__()
        units = w.hidden[0]
        self.lstm = nn.LSTM(w.features, units, batch_first=True)
        self.out = nn.Linear(units, w.outputs)
        nn.init.xavier_uniform_(self.lstm.weight_ih_l0)
        nn.init.orthogonal_(self.lstm.weight_hh_l0)
        with torch.no_grad():
            self.lstm.bias_ih_l0.zero_()
            self.lstm.bias_ih_l0[units:2 * units] = 1.0
            self.lstm.bias_hh_l0.zero_()

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.out(h[-1])


def build(w: Workload) -> nn.Module:
    if w.arch in ("cnn", "lstm"):
        model = _Cnn(w) if w.arch == "cnn" else _Lstm(w)
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        return model
    layers: list[nn.Module] = []
    width = w.features
    for units in w.hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        if w.drop_prob:
            layers.append(nn.Dropout(w.drop_prob))
        width = units
    layers.append(nn.Linear(width, w.outputs))
    model = nn.Sequential(*layers)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def train(w: Workload, npz: Path, spec: Path, clock: Clock) -> None:
    torch.manual_seed(w.seed)
    torch.set_num_threads(os.cpu_count() or 1)  # PyTorch's default is the physical cores
    with np.load(npz) as f:
        x = torch.from_numpy(f["x"])
        y = torch.from_numpy(f["y"])
    if w.arch == "cnn":
        x = x.permute(0, 3, 1, 2).contiguous()
    if w.classes == 2:
        y, loss_fn = y.float().unsqueeze(1), nn.BCEWithLogitsLoss()
    else:
        loss_fn = nn.CrossEntropyLoss()
    model = build(w)
    opt = (torch.optim.SGD(model.parameters(), lr=w.lr) if w.optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=w.lr))
    model.train()
    for _ in range(w.epochs):
        perm = torch.randperm(w.n)
        total = 0.0
        for s in range(w.steps):
            idx = perm[s * w.batch:(s + 1) * w.batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        clock.epoch(total / w.steps)
