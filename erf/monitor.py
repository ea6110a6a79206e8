"""``ERFMonitor``: the ERF of one unit, measured during a user's own training loop.

Call ``monitor.step(model, epoch)`` from a plain PyTorch loop (epoch 0 before training, then
after each epoch), or hand ``monitor.callback()`` to a Lightning ``Trainer``. Each due epoch
(``epoch % every == 0``) measures the ERF of the target unit with the monitor's inputs (noise,
an image folder, or a fixed batch) and logs Luo's ERF size with its interval, ERF/TRF, the
Gaussian fit's R² and the heatmap to TensorBoard (a ``SummaryWriter``, or Lightning's
``TensorBoardLogger``) and to ``erf_monitor.csv`` in the run folder; ``close()`` draws
``erf_monitor.png``, the ERF over epochs.

The measurement does not disturb training (``erf.probe.monitor``: modes, gradients,
parameters and every random-number generator are as before; the ERF is measured in eval
mode). The monitor's state is a small dict (``state_dict``) to keep in the user's checkpoint;
under ``torch.distributed`` only rank 0 measures and logs. The training jobs
(``erf.app.jobs.training``) measure their ERFs through it too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from erf.io.monitor import CSV_NAME, FIGURE_NAME, log_tensorboard, write_monitor_csv
from erf.io.monitor import write_monitor_figure as draw_monitor_figure
from erf.io.tables import interval_text, number_text
from erf.probe.inputs import RANDOM_SOURCES, image_folder
from erf.probe.monitor import (
    ROW_COLUMNS,
    Measurement,
    MonitorProbe,
    MonitorSettings,
    probing_rank,
    unwrap,
)
from erf.probe.options import ProbeOptions, source_name
from erf.rf.theory import TheoreticalRF

log = logging.getLogger("erf")

STATE_FORMAT = 1  # the layout of ``ERFMonitor.state_dict``
FOLDER_BATCH = 16  # images per batch from an image folder when the batch size is "auto"


class ERFMonitor:
    """Measure and log the ERF of ``target`` every ``every`` epochs of a training run.

    Args:
        target: the probed module's name in ``model.named_modules()`` (for a Lightning run:
            in the ``LightningModule``), or None for the model output.
        every: measure at epochs divisible by it (epoch 0: before training); >= 1.
        options: how to probe (``erf.ProbeOptions``: samples, reduction, seeding, seed,
            device; ``device="auto"``, the default, probes where the model is, another device
            than the model's is refused).
        input_shape: ``(C, H, W)`` of one probe input (given by ``inputs`` when it is a
            batch).
        inputs: None (``options.inputs``: N(0, 1) noise unless set), "gaussian" or "uniform",
            a fixed batch tensor ``[B, C, H, W]`` (probed at every measurement), or the path of
            an image folder (``root/<class>/<image>``, resized and centre-cropped to
            ``input_shape``, ImageNet-normalised; the same seeded choice of
            ``options.n_samples`` images at every measurement).
        position: the probed unit: "center", a prefix token or (row, col) of the target map.
        log_dir: the folder of ``erf_monitor.csv`` and ``erf_monitor.png`` (default: the
            writer's ``log_dir``, or for Lightning the trainer's; None and no writer: no
            files).
        writer: a TensorBoard ``SummaryWriter`` (anything with ``add_scalar``/``add_image``),
            or None (Lightning: the trainer's TensorBoard logger when it has one).
        heatmap: also log the map as the ``<prefix>/heatmap`` image.
        r2_min: the Gaussian fit's R² below which ``fit_problem`` is set.
        prefix: the TensorBoard tags' prefix.

    A bad ``target``, ``every`` or device is a one-line ``ValueError`` at construction or at
    the first ``step``/``check``, before anything is measured.
    """

    def __init__(
        self,
        target: str | None = None,
        every: int = 1,
        options: ProbeOptions | None = None,
        *,
        input_shape: tuple[int, int, int] | None = None,
        inputs: str | os.PathLike | torch.Tensor | Iterable | None = None,
        position: str | tuple[int, int] = "center",
        log_dir: str | os.PathLike | None = None,
        writer: Any = None,
        heatmap: bool = True,
        r2_min: float = 0.9,
        prefix: str = "erf",
    ) -> None:
        self.settings = MonitorSettings(
            every=every, target=target, position=position, input_shape=input_shape,
            r2_min=r2_min, prefix=prefix,
        )  # fmt: skip
        options = ProbeOptions.of(options)
        batch, make = None, None
        if isinstance(inputs, torch.Tensor):
            batch = inputs
        elif isinstance(inputs, str) and inputs in RANDOM_SOURCES:
            options = ProbeOptions.of(options, inputs=inputs)
        elif isinstance(inputs, (str, os.PathLike)):
            make = _folder_inputs(Path(inputs), self.settings.input_shape, options)
        elif inputs is not None:
            options = ProbeOptions.of(options, inputs=inputs)
        self.probe = MonitorProbe(self.settings, options, batch, make)
        self.inputs_name = "imagefolder" if make else source_name(self.probe.options.inputs)
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.writer, self.heatmap = writer, bool(heatmap)
        if self.log_dir is None and writer is not None and getattr(writer, "log_dir", None):
            self.log_dir = Path(writer.log_dir)
        self.rows: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ measuring

    @property
    def measured(self) -> list[int]:
        """The epochs measured so far, in order."""
        return sorted(int(r["epoch"]) for r in self.rows)

    def check(self, model: nn.Module) -> None:
        """One-line ``ValueError`` when ``model`` has no module ``target`` or is on another
        device than the probe's; call it before training (``step`` calls it too)."""
        self.probe.check(unwrap(model))

    def trf(self, model: nn.Module) -> TheoreticalRF:
        """The probed unit's theoretical receptive field (computed once)."""
        return self.probe.trf(model)

    def measure(self, model: nn.Module, epoch: int = 0) -> Measurement:
        """The ERF of ``model`` now, whatever the epoch, logged nowhere (``step`` logs)."""
        return self.probe.measure(model, epoch)

    def step(self, model: nn.Module, epoch: int) -> Measurement | None:
        """Measure and log the ERF when ``epoch`` is due and not measured yet (a resumed run
        does not measure an epoch twice); returns the measurement (``.row()``: the logged
        numbers, ``.metrics``: all of them, ``.result``: the map), else None. On a rank other
        than 0 of ``torch.distributed`` it returns None and touches nothing."""
        if not probing_rank():
            return None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch={epoch!r} is not allowed: expected an integer >= 0")
        self.check(model)
        if not self.settings.due(epoch) or epoch in self.measured:
            return None
        found = self.probe.measure(model, epoch)
        row = found.row()
        self.rows.append(row)
        log.info("ERF monitor: %s", _summary(row))
        if self.writer is not None:
            log_tensorboard(self.writer, row, found.result.map if self.heatmap else None,
                            self.settings.prefix)  # fmt: skip
        self._write_csv()
        return found

    # ------------------------------------------------------------------ files and state

    def _write_csv(self) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            write_monitor_csv(self.rows, ROW_COLUMNS, self.log_dir / CSV_NAME)

    def close(self) -> list[Path]:
        """Draw the ERF over the measured epochs (``erf_monitor.png`` in ``log_dir``) and
        return the files written (none without ``log_dir``, measurements or rank 0)."""
        if not probing_rank() or self.log_dir is None or not self.rows:
            return []
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return draw_monitor_figure(
            self.rows, self.log_dir / FIGURE_NAME, target=self.settings.target,
            reduce=self.probe.options.reduce, inputs=self.inputs_name,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """A small dict to save with the training checkpoint: the epochs measured and their
        rows (numbers only, no maps)."""
        return {"format": STATE_FORMAT, "measured": self.measured,
                "rows": [dict(r) for r in self.rows],
                "settings": self.probe.fingerprint()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``: the rows are those of the checkpoint, and the CSV
        is rewritten from them (rows logged after the checkpoint are dropped and measured
        again). A state made with another target, position, input shape or probe setting that
        changes the maps is refused in one line (``every`` may change)."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not an ERFMonitor state (format {state.get('format')!r})")
        differ = self.probe.differences(state.get("settings", {}))
        if differ:
            raise ValueError(
                f"the monitor state was made with other settings ({', '.join(differ)})"
            )
        self.rows = [dict(r) for r in state["rows"]]
        if probing_rank():
            self._write_csv()

    def callback(self) -> Any:
        """This monitor as a Lightning ``Callback`` (``Trainer(callbacks=[m.callback()])``):
        epoch 0 at fit start, then after every training epoch; its state goes into Lightning's
        checkpoints. Needs ``lightning`` (``pip install 'erf-lab[lightning]'``)."""
        return _lightning_callback_class()(self)


def _summary(row: dict[str, Any]) -> str:
    """One log line of a row."""
    size = interval_text(row["erf_size"], row["erf_size_ci_low"], row["erf_size_ci_high"], 2)
    ratio, r2 = number_text(row["erf_trf_ratio"]), number_text(row["fit_r2"])
    return f"epoch {row['epoch']}: ERF size {size} px, ERF/TRF {ratio}, fit R² {r2}"


def _folder_inputs(root: Path, shape: tuple[int, int, int] | None, options: ProbeOptions):
    """A maker of the image folder's batches (the same images each time), checked once."""
    if shape is None:
        raise ValueError("an image folder needs input_shape=(3, H, W)")
    batch = FOLDER_BATCH if options.auto_batch else int(options.batch_size)

    def make() -> Iterable:
        return image_folder(str(root), (shape[1], shape[2]), batch, seed=options.seed,
                            n_samples=options.n_samples)  # fmt: skip

    make()  # a missing folder or too few images: one line now, not at the first epoch
    return make


_CALLBACK: dict[str, type] = {}


def _lightning_callback_class() -> type:
    """The Lightning callback class, made on first use: lightning is an optional dependency,
    imported only here."""
    if "class" in _CALLBACK:
        return _CALLBACK["class"]
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError:
            raise ImportError(
                "ERFMonitor.callback() needs Lightning: pip install 'erf-lab[lightning]'"
            ) from None

    class ERFMonitorCallback(Callback):
        """Runs an ``ERFMonitor`` in a Lightning ``Trainer`` (``ERFMonitor.callback``)."""

        def __init__(self, monitor: ERFMonitor) -> None:
            self.monitor = monitor

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            m = self.monitor
            m.check(pl_module)
            if not probing_rank():
                return
            experiment = getattr(trainer.logger, "experiment", None)
            if m.writer is None and hasattr(experiment, "add_scalar"):
                m.writer = experiment
            if m.log_dir is None and trainer.log_dir is not None:
                m.log_dir = Path(trainer.log_dir)
            m.step(pl_module, int(trainer.current_epoch))

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.monitor.step(pl_module, int(trainer.current_epoch) + 1)

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self.monitor.close()

        def state_dict(self) -> dict[str, Any]:
            return self.monitor.state_dict()

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            self.monitor.load_state_dict(state_dict)

    _CALLBACK["class"] = ERFMonitorCallback
    return ERFMonitorCallback
