"""Baseline (c): PyTorch eager on the CPU, the way its tutorials train: `nn.Sequential`,
`torch.randperm` each epoch, index the batch, `zero_grad`/`backward`/`step`, and
`loss.item()` summed for the epoch's mean. Weights are re-initialized Glorot-uniform with
zero biases, to match the other implementations' initialization scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.clock import Clock
from benchmarks.workloads import Workload


def build(w: Workload) -> nn.Sequential:
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
    with np.load(npz) as f:
        x = torch.from_numpy(f["x"])
        y = torch.from_numpy(f["y"])
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
