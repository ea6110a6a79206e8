"""A tiny network and training loop for the ERF monitor's tests (tests/test_monitor*.py)."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SHAPE = (1, 16, 16)
TARGET = "body.5"  # the second convolution


class Jitter(nn.Module):
    """Draws from every global random generator (torch, numpy, python) in its forward, in
    training and in eval mode: a probe that left them moved would shift every later draw
    (dropout masks, the data order, the augmentation noise) of the training loop."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.rand(())
        np.random.rand()
        random.random()
        return x


class TinyNet(nn.Module):
    """conv, BatchNorm, ReLU, jitter, dropout, conv, ReLU, pooled into 2 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            Jitter(),
            nn.Dropout(0.5),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean((2, 3)))


def data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fixed images ``[n, *SHAPE]`` and labels (their own generator)."""
    gen = torch.Generator().manual_seed(7)
    return torch.randn(n, *SHAPE, generator=gen), torch.randint(0, 2, (n,), generator=gen)


def train(monitor=None, epochs: int = 2, batch: int = 4) -> tuple[nn.Module, dict]:
    """Train a seeded ``TinyNet`` for ``epochs`` with SGD and momentum; the order comes from
    python's ``random``, the augmentation noise from numpy, dropout from torch. With a
    ``monitor``: ``step(model, 0)`` first, then ``step(model, epoch)`` in each epoch's last
    batch between ``backward`` and the optimizer step (its gradients must survive). Returns
    the model and the three generators' final states."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x_all, y_all = data()
    if monitor is not None:
        monitor.step(model, 0)
    for epoch in range(1, epochs + 1):
        order = list(range(len(x_all)))
        random.shuffle(order)
        starts = range(0, len(order), batch)
        for start in starts:
            idx = order[start : start + batch]
            noise = torch.from_numpy(np.random.normal(0, 0.1, (len(idx), *SHAPE))).float()
            loss = F.cross_entropy(model(x_all[idx] + noise), y_all[idx])
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            if monitor is not None and start == starts[-1]:
                monitor.step(model, epoch)
            optimizer.step()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].copy(),
        "python": random.getstate(),
    }
    return model, states
