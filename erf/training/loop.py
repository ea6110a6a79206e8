"""Training for the trained-vs-untrained study: optimizer, schedule, loop, metrics, resume.

Torch only; nothing here writes files. ``fit`` hands its state to callbacks (the caller saves
it) and continues from a state it is given. Everything random is a pure function of the
seed: the data order of epoch ``e`` and the augmentation of batch ``b`` of epoch ``e`` come
from generators seeded with (seed, e[, b]), and the global torch RNG (dropout) is forked and
seeded, then saved in every checkpoint. On CPU a resumed run is bitwise the uninterrupted
one, whether it stopped at an epoch boundary or mid-epoch.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from erf.checks import Rule, boolean, choice, int_at_least, is_finite_number, optional
from erf.device import resolve_device
from erf.settings import IGNORED, JOB, check_fields, setting, settings_of
from erf.settings import fingerprint as settings_fingerprint
from erf.training.data import Augment
from erf.training.scores import class_iou, mean_iou, pixel_accuracy

log = logging.getLogger("erf")

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine")
TASKS = ("classification", "segmentation")


class TrainingInterrupted(Exception):
    """Training stopped on request; ``state`` is the checkpoint to resume from."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(
            f"training interrupted in epoch {state['epoch'] + 1} after {state['step']} batches"
        )
        self.state = state


def _number(test: Callable[[float], bool], allowed: str) -> Rule:
    return (lambda v: is_finite_number(v) and test(v)), allowed


def _tuple_of_ints(value: Any) -> tuple[int, ...]:
    return tuple(int(m) for m in value)


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass
class TrainSettings:
    """How to train (the ``train`` config group without its job-level keys): each field is
    declared once with its default, allowed values, help and fingerprint role
    (``erf.settings``); the ``train.*`` rules, YAML and reference are derived from it.

    The learning rate is updated every batch, from the fractional epoch: after
    ``warmup_epochs`` of linear warmup from 0, "step" multiplies it by ``gamma`` at each
    epoch in ``milestones`` and "cosine" takes it to 0 at the end (``lr_factor``). "sgd" uses
    ``momentum`` (Nesterov off). Construction checks every value (one-line ValueError).
    """

    epochs: int = setting(5, int_at_least(1), "passes over the training set")
    batch_size: int = setting(64, int_at_least(1), "training batch size", config_default=32)
    eval_batch_size: int | None = setting(
        None, optional(int_at_least(1)), "validation batch size (null = batch_size)"
    )
    optimizer: str = setting("adam", choice(OPTIMIZERS), "sgd, adam or adamw")
    lr: float = setting(
        1e-3, _number(lambda v: v > 0, "a finite number > 0"), "learning rate", from_config=float
    )
    momentum: float = setting(
        0.9,
        _number(lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "sgd's momentum (sgd only)",
        from_config=float,
    )
    weight_decay: float = setting(
        0.0, _number(lambda v: v >= 0, "a finite number >= 0"), "weight decay", from_config=float
    )
    schedule: str = setting(
        "none",
        choice(SCHEDULES),
        "learning-rate schedule per batch, from the fractional epoch",
        config_default="cosine",
    )
    milestones: Sequence[int] = setting(
        default_factory=tuple,
        rule=(
            lambda v: isinstance(v, list) and all(int_at_least(1)[0](m) for m in v),
            "a list of epochs >= 1",
        ),
        help="step: epochs at which the lr is multiplied by gamma",
        to_config=_listed,
        from_config=_tuple_of_ints,
    )
    gamma: float = setting(
        0.1,
        _number(lambda v: 0 < v <= 1, "a number in (0, 1]"),
        "step: the lr factor",
        from_config=float,
    )
    warmup_epochs: float = setting(
        0.0,
        _number(lambda v: v >= 0, "a finite number >= 0"),
        "linear warmup from 0 (fractional epochs allowed)",
        config_default=0,
        from_config=float,
    )
    seed: int = setting(
        0,
        int_at_least(0),
        "data order, augmentation and the global torch RNG (config: top-level seed)",
        config=False,
    )
    num_workers: int = setting(
        0, int_at_least(0), "DataLoader workers (0 = load in the main process)", fingerprint=JOB
    )
    device: str = setting(
        "cpu",
        (lambda v: isinstance(v, str), "cpu, cuda, cuda:N or auto"),
        "where to train (config: the top-level device)",
        config=False,
        fingerprint=IGNORED,
    )
    progress: bool | None = setting(
        None,
        optional(boolean()),
        "a per-epoch progress bar (null: auto)",
        config=False,
        fingerprint=IGNORED,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        for name, meta in settings_of(self).items():
            setattr(self, name, meta.from_config(getattr(self, name)))

    def fingerprint(self) -> dict[str, Any]:
        """Settings that decide the trajectory (a checkpoint must match them to resume)."""
        return settings_fingerprint(self)


def lr_factor(step: int, steps_per_epoch: int, settings: TrainSettings) -> float:
    """Learning-rate multiplier before batch ``step`` (0-based, counted over all epochs).

    With ``t = step / steps_per_epoch`` (epochs done, fractional) and warmup ``w``:
    ``t / w`` while ``t < w``; then "none" 1, "step" ``gamma ** (#milestones <= t)``,
    "cosine" ``(1 + cos(π (t - w) / (epochs - w))) / 2``.
    """
    t = step / steps_per_epoch
    w = float(settings.warmup_epochs)
    if t < w:
        return t / w
    if settings.schedule == "step":
        return settings.gamma ** sum(1 for m in settings.milestones if m <= t)
    if settings.schedule == "cosine":
        span = settings.epochs - w
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (t - w) / span))) if span > 0 else 1.0
    return 1.0


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer named in ``settings`` over the trainable parameters of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, settings: TrainSettings
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-batch LambdaLR following ``lr_factor``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, settings)
    )


class Scores:
    """Running loss and accuracy (and, for segmentation, a confusion matrix) over batches."""

    def __init__(self, task: str, num_classes: int, ignore_index: int | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; allowed: {list(TASKS)}")
        self.task, self.num_classes, self.ignore_index = task, int(num_classes), ignore_index
        self.loss_sum, self.count, self.correct = 0.0, 0, 0
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy over the counted items (samples or non-ignored pixels)."""
        if self.task == "classification":
            return F.cross_entropy(logits, y, reduction="sum"), y.numel()
        ignore = -100 if self.ignore_index is None else self.ignore_index
        count = int((y != ignore).sum())
        return F.cross_entropy(logits, y, ignore_index=ignore, reduction="sum"), count

    def update(self, logits: torch.Tensor, y: torch.Tensor, loss_sum: float, count: int) -> None:
        pred = logits.detach().argmax(1)
        self.loss_sum += float(loss_sum)
        self.count += int(count)
        if self.task == "classification":
            self.correct += int((pred == y).sum())
            return
        keep = y != (-100 if self.ignore_index is None else self.ignore_index)
        t, p = y[keep].cpu(), pred[keep].cpu()
        k = self.num_classes
        self.confusion += torch.bincount(t * k + p, minlength=k * k).reshape(k, k)
        self.correct += int((t == p).sum())

    def result(self) -> dict[str, Any]:
        """``loss`` (mean per sample / pixel), ``accuracy`` (pixel accuracy for
        segmentation), and for segmentation ``mean_iou`` and per-class ``iou``."""
        nan = float("nan")
        out = {
            "loss": self.loss_sum / self.count if self.count else nan,
            "accuracy": self.correct / self.count if self.count else nan,
        }
        if self.task == "segmentation":
            cm = self.confusion.numpy()
            out["accuracy"] = pixel_accuracy(cm)
            out["mean_iou"] = mean_iou(cm)
            out["iou"] = class_iou(cm).tolist()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum,
            "count": self.count,
            "correct": self.correct,
            "confusion": self.confusion.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss_sum, self.count = float(state["loss_sum"]), int(state["count"])
        self.correct, self.confusion = int(state["correct"]), state["confusion"].clone()


def _generator(*parts: int) -> torch.Generator:
    mixed = 0
    for p in parts:
        mixed = (mixed * 1_000_003 + int(p)) % (2**63)
    return torch.Generator().manual_seed(mixed)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The training order of epoch ``epoch`` (0-based): a permutation seeded by (seed, epoch)."""
    return torch.randperm(n, generator=_generator(seed, 1, epoch)).tolist()


def _batches(order: Sequence[int], batch_size: int) -> list[list[int]]:
    return [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    task: str,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> dict[str, Any]:
    """Loss and accuracy (and mIoU) of ``model`` on ``dataset`` in eval mode, in order;
    the model's train/eval mode is restored."""
    dev = resolve_device(device)
    scores = Scores(task, num_classes, ignore_index)
    was_training = model.training
    model.eval()
    loader = DataLoader(
        dataset,
        batch_sampler=_batches(range(len(dataset)), batch_size),
        num_workers=num_workers,
        generator=torch.Generator(),  # keeps the loader off the global RNG
    )
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            logits = model(x)
            loss, count = scores.loss(logits, y)
            scores.update(logits, y, loss.item(), count)
    model.train(was_training)
    return scores.result()


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    *,
    task: str,
    num_classes: int,
    settings: TrainSettings,
    ignore_index: int | None = None,
    augment: Augment | None = None,
    resume: dict[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place for ``settings.epochs`` epochs; return the final state.

    Each epoch: a seeded shuffle of ``train_set``, batches (``augment(x, y, generator)``
    when given), cross-entropy (``ignore_index`` pixels excluded), an optimizer step and a
    schedule step per batch; then ``evaluate`` on ``val_set``. The epoch's record
    (``epoch`` 1-based, ``lr``, ``train_*`` and ``val_*`` metrics, ``time_s``) is passed to
    ``on_epoch_end``, whose returned dict (e.g. an ERF size) is merged into it; the record
    joins ``state["history"]`` and ``on_checkpoint(state)`` is called.

    ``should_stop`` is polled after every batch: when true, the mid-epoch state goes to
    ``on_checkpoint`` and ``TrainingInterrupted`` is raised; in an epoch's last batch the
    epoch is finished first (the whole-epoch state is saved), and in training's last batch
    nothing is left to stop: the final state is returned (the caller sees the request in its
    poll, e.g. ``erf.app.signals`` stops the sweep after the job's files). ``resume`` is such
    a state (from a checkpoint made with the same settings and data sizes); training
    continues from it.

    The state holds ``epoch`` (epochs completed), ``step`` (batches done in the current
    epoch), ``model``/``optimizer``/``scheduler`` state dicts, ``rng`` (global torch RNG),
    ``running`` (partial-epoch sums), ``history`` and ``fingerprint``.
    """
    dev = resolve_device(settings.device)
    eval_bs = settings.eval_batch_size or settings.batch_size
    fingerprint = {
        **settings.fingerprint(),
        "task": task,
        "num_classes": int(num_classes),
        "train_size": len(train_set),
        "val_size": len(val_set),
    }
    model.to(dev)
    model.train()
    optimizer = make_optimizer(model, settings)
    batches_per_epoch = math.ceil(len(train_set) / settings.batch_size)
    scheduler = make_scheduler(optimizer, batches_per_epoch, settings)
    history: list[dict[str, Any]] = []
    epoch, step = 0, 0
    running = Scores(task, num_classes, ignore_index)
    if resume is not None:
        old = resume.get("fingerprint", {})
        differ = [k for k in fingerprint if old.get(k) != fingerprint[k]]
        if differ:
            changes = ", ".join(f"{k}: {old.get(k)!r} -> {fingerprint[k]!r}" for k in differ)
            raise ValueError(f"training checkpoint was made with other settings ({changes})")
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        running.load_state_dict(resume["running"])
        history = [dict(r) for r in resume["history"]]
        epoch, step = int(resume["epoch"]), int(resume["step"])
    rng_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        if resume is None:
            torch.manual_seed(_generator(settings.seed, 2).initial_seed())
        else:
            _set_rng(resume["rng"], dev)

        def state() -> dict[str, Any]:
            return {
                "epoch": epoch,
                "step": step,
                "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                "optimizer": copy.deepcopy(optimizer.state_dict()),
                "scheduler": copy.deepcopy(scheduler.state_dict()),
                "rng": _get_rng(dev),
                "running": running.state_dict(),
                "history": [dict(r) for r in history],
                "fingerprint": dict(fingerprint),
            }

        while epoch < settings.epochs:
            start = time.perf_counter()
            batches = _batches(epoch_order(len(train_set), settings.seed, epoch),
                               settings.batch_size)  # fmt: skip
            loader = DataLoader(
                train_set,
                batch_sampler=batches[step:],
                num_workers=settings.num_workers,
                generator=torch.Generator(),  # keeps the loader off the global RNG
            )
            bar = tqdm(
                loader,
                total=len(batches),
                initial=step,
                desc=f"epoch {epoch + 1}/{settings.epochs}",
                unit="batch",
                leave=False,
                disable=None if settings.progress is None else not settings.progress,
            )
            for x, y in bar:
                if augment is not None:
                    x, y = augment(x, y, _generator(settings.seed, 3, epoch, step))
                x, y = x.to(dev), y.to(dev)
                logits = model(x)
                loss_sum, count = running.loss(logits, y)
                optimizer.zero_grad(set_to_none=True)
                (loss_sum / max(count, 1)).backward()
                optimizer.step()
                scheduler.step()
                running.update(logits, y, loss_sum.item(), count)
                step += 1
                bar.set_postfix(loss=f"{running.loss_sum / max(running.count, 1):.3f}")
                if should_stop is not None and should_stop() and step < len(batches):
                    bar.close()
                    interrupted = state()
                    if on_checkpoint is not None:
                        on_checkpoint(interrupted)
                    raise TrainingInterrupted(interrupted)
            bar.close()
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "lr": optimizer.param_groups[0]["lr"],
                **{f"train_{k}": v for k, v in running.result().items() if k != "iou"},
            }
            val = evaluate(
                model,
                val_set,
                task,
                num_classes,
                ignore_index=ignore_index,
                batch_size=eval_bs,
                device=dev,
                num_workers=settings.num_workers,
            )
            record.update({f"val_{k}": v for k, v in val.items()})
            record["time_s"] = time.perf_counter() - start
            if on_epoch_end is not None:
                record.update(on_epoch_end(dict(record)) or {})
            history.append(record)
            log.info("%s", format_record(record))
            epoch, step = epoch + 1, 0
            running = Scores(task, num_classes, ignore_index)
            current = state()
            if on_checkpoint is not None:
                on_checkpoint(current)
            if should_stop is not None and should_stop() and epoch < settings.epochs:
                raise TrainingInterrupted(current)
        return state()


def format_record(record: dict[str, Any]) -> str:
    """One log line for an epoch record."""
    parts = [f"epoch {record['epoch']}"]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_mean_iou"):
        if key in record:
            parts.append(f"{key} {record[key]:.4f}")
    if "erf_size" in record:
        parts.append(f"ERF size {record['erf_size']:.2f}")
    parts.append(f"{record.get('time_s', 0.0):.1f}s")
    return ", ".join(parts)


def _get_rng(dev: torch.device) -> dict[str, torch.Tensor]:
    rng = {"cpu": torch.get_rng_state()}
    if dev.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(dev)
    return rng


def _set_rng(rng: dict[str, torch.Tensor], dev: torch.device) -> None:
    torch.set_rng_state(rng["cpu"])
    if dev.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], dev)
