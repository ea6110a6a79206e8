"""Training: schedules, optimizers, losses and scores, and bitwise resume on CPU."""

import io
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from erf.nets.luo import ResidualClassifier, ResidualSegmenter
from erf.training.data import crop_flip
from erf.training.loop import (
    Scores,
    TrainingInterrupted,
    TrainSettings,
    epoch_order,
    evaluate,
    fit,
    lr_factor,
    make_optimizer,
)


def _classification_data(n=24, size=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=gen)
    y = (x[:, 0].mean((1, 2)) > 0).long()  # learnable: the sign of channel 0's mean
    return TensorDataset(x, y)


def _tiny_classifier(**kwargs):
    return ResidualClassifier(2, blocks=2, channels=4, branch_scale=0.5, seed=1, **kwargs)


def _snapshot(state):
    """A checkpoint as the job stores it: serialised and read back with weights_only."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _run(settings, resume=None, model=None, **kwargs):
    model = model or _tiny_classifier(dropout=0.2)
    final = fit(
        model,
        _classification_data(),
        _classification_data(8, seed=1),
        task="classification",
        num_classes=2,
        settings=settings,
        augment=crop_flip(pad=1),
        resume=resume,
        **kwargs,
    )
    return model, final


SETTINGS = dict(epochs=2, batch_size=5, optimizer="sgd", lr=0.05, schedule="cosine",
                warmup_epochs=0.5, seed=3, progress=False)  # fmt: skip


def _assert_same_states(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------- schedules


def test_lr_factor_warms_up_linearly_then_follows_the_schedule():
    s = TrainSettings(epochs=10, schedule="step", milestones=(4, 8), gamma=0.1, warmup_epochs=2)
    assert lr_factor(0, 10, s) == 0.0
    assert lr_factor(10, 10, s) == pytest.approx(0.5)  # 1 of 2 warmup epochs
    assert lr_factor(20, 10, s) == 1.0
    assert lr_factor(39, 10, s) == 1.0
    assert lr_factor(40, 10, s) == pytest.approx(0.1)  # at the first milestone
    assert lr_factor(85, 10, s) == pytest.approx(0.01)


def test_cosine_falls_from_one_to_zero_after_warmup():
    s = TrainSettings(epochs=5, schedule="cosine", warmup_epochs=1)
    assert lr_factor(4, 4, s) == pytest.approx(1.0)
    assert lr_factor(12, 4, s) == pytest.approx(0.5)  # half-way through epochs 1..5
    assert lr_factor(20, 4, s) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(7, 4, TrainSettings(schedule="none")) == 1.0


def test_optimizers_get_their_settings():
    model = nn.Linear(2, 2)
    sgd = make_optimizer(model, TrainSettings(optimizer="sgd", lr=0.1, momentum=0.8,
                                              weight_decay=1e-4))  # fmt: skip
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["weight_decay"] == 1e-4
    assert isinstance(make_optimizer(model, TrainSettings(optimizer="adam")), torch.optim.Adam)
    assert isinstance(make_optimizer(model, TrainSettings(optimizer="adamw")), torch.optim.AdamW)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"optimizer": "lbfgs"}, "optimizer"), ({"schedule": "poly"}, "schedule"), ({"lr": 0}, "lr")],
)
def test_bad_settings_are_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**kwargs)


def test_the_data_order_is_a_seeded_permutation_per_epoch():
    assert sorted(epoch_order(10, 0, 0)) == list(range(10))
    assert epoch_order(10, 0, 1) == epoch_order(10, 0, 1)
    assert epoch_order(10, 0, 0) != epoch_order(10, 0, 1)


# --------------------------------------------------------------------------- losses and scores


def test_segmentation_loss_and_scores_leave_ignored_pixels_out():
    scores = Scores("segmentation", 3, ignore_index=9)
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    y[0, 0, :] = 9
    loss, count = scores.loss(logits, y)
    keep = y != 9
    log_p = torch.log_softmax(logits, 1).permute(0, 2, 3, 1)[keep]  # oracle: by hand
    expected = -log_p[torch.arange(int(keep.sum())), y[keep]].sum()
    assert count == 28 and loss.item() == pytest.approx(expected.item(), rel=1e-6)
    scores.update(logits, y, loss.item(), count)
    pred = logits.argmax(1)[keep]
    assert scores.result()["accuracy"] == pytest.approx((pred == y[keep]).float().mean().item())
    assert int(scores.confusion.sum()) == 28


class _Oracle(nn.Module):
    """Predicts the label map exactly: one-hot logits of the class stored in channel 0."""

    def forward(self, x):
        return nn.functional.one_hot(x[:, 0].long(), 3).permute(0, 3, 1, 2).float() * 10


def test_a_perfect_segmenter_scores_one():
    y = torch.randint(0, 3, (4, 6, 6), generator=torch.Generator().manual_seed(2))
    x = y[:, None].float().repeat(1, 3, 1, 1)
    out = evaluate(_Oracle(), TensorDataset(x, y), "segmentation", 3, batch_size=3)
    assert out["accuracy"] == 1.0 and out["mean_iou"] == 1.0 and out["iou"] == [1.0] * 3


# --------------------------------------------------------------------------- the loop


def test_each_epoch_logs_train_and_val_metrics_and_the_callback_can_add_to_them():
    seen = []
    _, final = _run(TrainSettings(**SETTINGS), on_epoch_end=lambda r: seen.append(r) or {"x": 1})
    history = final["history"]
    assert [r["epoch"] for r in history] == [1, 2] and len(seen) == 2
    for r in history:
        for key in ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "time_s"):
            assert math.isfinite(r[key]), key
        assert r["x"] == 1
    assert final["epoch"] == 2 and final["step"] == 0


def test_training_reduces_the_loss_on_a_learnable_task():
    settings = TrainSettings(epochs=6, batch_size=8, optimizer="adam", lr=0.01, progress=False)
    model = _tiny_classifier()
    data = _classification_data(48)
    before = evaluate(model, data, "classification", 2)["loss"]
    fit(model, data, data, task="classification", num_classes=2, settings=settings)
    assert evaluate(model, data, "classification", 2)["loss"] < 0.8 * before


def test_two_epochs_equal_one_epoch_checkpoint_resume_one_epoch_bitwise():
    checkpoints = []
    model_a, final_a = _run(
        TrainSettings(**SETTINGS), on_checkpoint=lambda s: checkpoints.append(_snapshot(s))
    )
    after_one = checkpoints[0]
    assert after_one["epoch"] == 1 and after_one["step"] == 0
    model_b, final_b = _run(TrainSettings(**SETTINGS), resume=after_one)
    _assert_same_states(model_a.state_dict(), model_b.state_dict())
    assert final_a["history"][1] | {"time_s": 0} == final_b["history"][1] | {"time_s": 0}


def test_a_stop_mid_epoch_checkpoints_and_resumes_bitwise():
    model_a, _ = _run(TrainSettings(**SETTINGS))
    calls = iter(range(1000))
    saved = []
    with pytest.raises(TrainingInterrupted) as info:
        _run(
            TrainSettings(**SETTINGS),
            # polled after each of the 5 batches of epoch 1 and at its end, then after batch 1
            should_stop=lambda: next(calls) >= 6,
            on_checkpoint=lambda s: saved.append(_snapshot(s)),
        )
    state = info.value.state
    assert (state["epoch"], state["step"]) == (1, 1)
    assert saved[-1]["step"] == 1
    model_b, _ = _run(TrainSettings(**SETTINGS), resume=saved[-1])
    _assert_same_states(model_a.state_dict(), model_b.state_dict())


def test_a_checkpoint_from_other_settings_is_refused():
    checkpoints = []
    _run(TrainSettings(**SETTINGS), on_checkpoint=checkpoints.append)
    with pytest.raises(ValueError, match="lr: 0.05 -> 0.1"):
        _run(TrainSettings(**{**SETTINGS, "lr": 0.1}), resume=checkpoints[0])


def test_training_leaves_the_global_rng_alone():
    model = _tiny_classifier(dropout=0.2)  # (building modules draws from the global RNG)
    before = torch.get_rng_state()
    _run(TrainSettings(**{**SETTINGS, "epochs": 1}), model=model)
    assert torch.equal(torch.get_rng_state(), before)


def test_segmentation_training_runs_with_an_ignore_index_and_reports_miou():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 16, 16, generator=gen)
    y = (x[:, 1] > 0).long()
    y[:, :2] = 7  # void rows
    model = ResidualSegmenter(2, blocks=2, channels=4, subsample_at=[0], seed=0)
    final = fit(
        model,
        TensorDataset(x, y),
        TensorDataset(x, y),
        task="segmentation",
        num_classes=2,
        ignore_index=7,
        settings=TrainSettings(epochs=1, batch_size=3, progress=False),
    )
    record = final["history"][0]
    assert 0 <= record["val_mean_iou"] <= 1 and len(record["val_iou"]) == 2
    assert math.isfinite(record["train_loss"])


def _stop_from(first_poll):
    """A ``should_stop`` that turns true at its ``first_poll``-th call (0-based) and stays so."""
    calls = iter(range(1000))
    return lambda: next(calls) >= first_poll


def test_a_stop_in_the_last_batch_of_an_epoch_stops_at_its_end_with_a_whole_epoch_saved():
    # polls: epoch 1 after each of its 5 batches (0-4) and at its end (5)
    with pytest.raises(TrainingInterrupted) as info:
        _run(TrainSettings(**SETTINGS), should_stop=_stop_from(4))
    assert (info.value.state["epoch"], info.value.state["step"]) == (1, 0)


def test_a_stop_in_the_last_batch_of_training_finishes_it_unchanged():
    """Nothing is left to checkpoint: training returns its final state (the job then writes
    its files, and ``erf.app.signals`` stops the sweep before the next job)."""
    model_a, final_a = _run(TrainSettings(**SETTINGS))
    stop = _stop_from(10)  # epoch 2's polls are 6-10 (batches) and 11 (its end)
    model_b, final_b = _run(TrainSettings(**SETTINGS), should_stop=stop)
    _assert_same_states(model_a.state_dict(), model_b.state_dict())
    assert len(final_b["history"]) == 2 and stop()  # the request is still there
