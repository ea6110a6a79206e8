"""The ERF monitor in a plain PyTorch loop: a small CNN trained on the embedded blob-radius
task (GENERATED data, offline), its ERF measured before training and after every epoch.

Writes into OUT (default: this folder): erf_monitor.csv, erf_monitor.png (the monitor's own
files) and run.json (the run's settings, the training time with and without the monitor, and
whether the two runs' weights are bitwise equal). The TensorBoard events go to a temporary
folder (not committed).

    python experiments/erf_monitor/monitor_run.py [OUT]
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter

import erf
from erf.training.data import generated_classification

EPOCHS, BATCH, LR, SEED = 8, 32, 2e-3, 0
TRAIN, VAL = 512, 256
DEPTH = 8
TARGET = f"features.{3 * DEPTH - 2}"  # the last 3x3 convolution's ReLU
OPTIONS = erf.ProbeOptions(n_samples=64, batch_size=32, seed=0)


def cnn() -> nn.Module:
    """``DEPTH`` 3x3 conv / BatchNorm / ReLU layers (16 channels, TRF 17 px), dropout before the
    last ReLU, pooled to 4 classes."""
    layers: list[nn.Module] = []
    for i in range(DEPTH):
        layers += [nn.Conv2d(3 if i == 0 else 16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()]
    net = nn.Sequential()
    net.features = nn.Sequential(*layers[:-1], nn.Dropout(0.1), layers[-1])
    net.pool, net.head = nn.AdaptiveAvgPool2d(1), nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    return net


class Timed(erf.ERFMonitor):
    """The monitor, with the wall time of its ``step`` calls added up (its whole cost to the
    training loop: probe, TRF, metrics, CSV, TensorBoard)."""

    seconds = 0.0

    def step(self, model, epoch):
        start = time.perf_counter()
        try:
            return super().step(model, epoch)
        finally:
            self.seconds += time.perf_counter() - start


def stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.tensor(ys)


def run(monitor: erf.ERFMonitor | None) -> tuple[nn.Module, float, list[float]]:
    """Train the seeded CNN; returns it, the wall time (s) and the val accuracy per epoch."""
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    data = generated_classification(train_size=TRAIN, val_size=VAL, seed=SEED)
    (x, y), (xv, yv) = stack(data.train), stack(data.val)
    model = cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    accuracy = []
    start = time.perf_counter()
    if monitor is not None:
        monitor.step(model, 0)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy.append(float((model(xv).argmax(1) == yv).float().mean()))
        if monitor is not None:
            monitor.step(model, epoch)
    return model, time.perf_counter() - start, accuracy


def main(out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    plain, plain_s, _ = run(None)
    with tempfile.TemporaryDirectory() as events:
        writer = SummaryWriter(events)
        monitor = Timed(TARGET, 1, OPTIONS, input_shape=(3, 32, 32), writer=writer,
                                 log_dir=out)  # fmt: skip
        watched, watched_s, accuracy = run(monitor)
        writer.close()
        monitor.close()
    a, b = plain.state_dict(), watched.state_dict()
    facts = {
        "data": generated_classification(train_size=TRAIN, val_size=VAL).description,
        "model": f"{DEPTH} x (3x3 conv 16 ch, BatchNorm, ReLU), dropout 0.1, avg pool, linear",
        "target": TARGET,
        "epochs": EPOCHS, "batch_size": BATCH, "lr": LR, "optimizer": "adam", "seed": SEED,
        "probe": {"n_samples": OPTIONS.n_samples, "batch_size": OPTIONS.batch_size,
                  "inputs": "gaussian", "reduce": "abs"},
        "val_accuracy": accuracy,
        "train_s_without_monitor": round(plain_s, 2),
        "train_s_with_monitor": round(watched_s, 2),
        "probe_s": round(sum(r["probe_time_s"] for r in monitor.rows), 2),
        "monitor_step_s": round(monitor.seconds, 2),
        "weights_bitwise_equal": all(torch.equal(a[k], b[k]) for k in a),
        "threads": 1,
        "torch": torch.__version__,
    }  # fmt: skip
    (out / "run.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
