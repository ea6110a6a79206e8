"""erf.ERFMonitor as a Lightning callback: epoch 0 at fit start and every epoch after, logged
to the trainer's TensorBoard logger and a CSV in its folder; its state rides in Lightning's
checkpoint, and a resumed fit continues it without measuring an epoch twice. One module-scoped
run (importing lightning costs seconds)."""

import csv

import pytest
import torch
from helpers.monitor_net import SHAPE, TinyNet, data
from helpers.optional import require
from torch.nn import functional as F

import erf

OPTIONS = erf.ProbeOptions(n_samples=4, batch_size=4)
TARGET = "net.body.5"  # names inside the LightningModule


def _module_class(pl):
    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = TinyNet()

        def forward(self, x):  # the probe runs the module
            return self.net(x)

        def training_step(self, batch, _index):
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Tiny


def _fit(pl, loggers, root, epochs, ckpt=None):
    """A fresh monitor and trainer (TensorBoard logger in root/lightning_logs/version_0)
    fitted to ``epochs``; returns the monitor and the trainer."""
    monitor = erf.ERFMonitor(TARGET, 1, OPTIONS, input_shape=SHAPE)
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=loggers.TensorBoardLogger(root, version=0),
        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        callbacks=[monitor.callback()], num_sanity_val_steps=0,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data()), batch_size=4)
    trainer.fit(_module_class(pl)(), loader, ckpt_path=ckpt)
    return monitor, trainer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pl = require("lightning.pytorch", "lightning")
    loggers = require("lightning.pytorch.loggers", "lightning")
    require("tensorboard", "tensorboard")
    root = tmp_path_factory.mktemp("lightning")
    first, trainer = _fit(pl, loggers, root, epochs=2)
    ckpt = root / "two_epochs.ckpt"
    trainer.save_checkpoint(ckpt)
    csv_after_two = (root / "lightning_logs" / "version_0" / "erf_monitor.csv").read_text()
    resumed, trainer = _fit(pl, loggers, root, epochs=3, ckpt=str(ckpt))
    return {"root": root, "log_dir": trainer.log_dir, "first": first, "resumed": resumed,
            "ckpt": ckpt, "csv_after_two": csv_after_two}  # fmt: skip


def _epochs(text):
    return [int(r["epoch"]) for r in csv.DictReader(text.splitlines())]


def test_a_fit_measures_before_training_and_after_each_epoch(runs):
    assert runs["first"].measured == [0, 1, 2]
    assert _epochs(runs["csv_after_two"]) == [0, 1, 2]


def test_the_trainers_tensorboard_logger_gets_the_scalars_and_heatmaps(runs):
    accumulator = require("tensorboard.backend.event_processing.event_accumulator", "tensorboard")
    events = accumulator.EventAccumulator(runs["log_dir"], size_guidance={"images": 0})
    events.Reload()
    assert sorted({e.step for e in events.Scalars("erf/size")}) == [0, 1, 2, 3]
    assert sorted({e.step for e in events.Images("erf/heatmap")}) == [0, 1, 2, 3]


def test_the_checkpoint_holds_the_monitors_state(runs):
    state = torch.load(runs["ckpt"], weights_only=False)
    (saved,) = [s for s in state["callbacks"].values() if "measured" in s]
    assert saved["measured"] == [0, 1, 2]


def test_a_resumed_fit_measures_only_the_new_epoch_and_continues_the_csv(runs):
    assert runs["resumed"].measured == [0, 1, 2, 3]
    text = (runs["root"] / "lightning_logs" / "version_0" / "erf_monitor.csv").read_text()
    assert _epochs(text) == [0, 1, 2, 3]
    assert text.splitlines()[:4] == runs["csv_after_two"].splitlines()[:4]


def test_the_end_of_the_fit_draws_the_erf_over_epochs(runs):
    assert (runs["root"] / "lightning_logs" / "version_0" / "erf_monitor.png").is_file()
