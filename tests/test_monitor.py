"""erf.ERFMonitor in a plain PyTorch loop: it leaves training bitwise as it was, logs a CSV
and TensorBoard events, resumes from its state without duplicates, measures only on rank 0,
and refuses bad input in one line before training starts."""

import copy
import csv
import io

import numpy as np
import pytest
import torch
from helpers.monitor_net import SHAPE, TARGET, TinyNet, data, train
from helpers.optional import require
from PIL import Image
from torch import nn

import erf

OPTIONS = erf.ProbeOptions(n_samples=4, batch_size=4)


def _monitor(**kwargs):
    return erf.ERFMonitor(TARGET, kwargs.pop("every", 1), OPTIONS, input_shape=SHAPE, **kwargs)


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _numbers(row):
    return {k: v for k, v in row.items() if k != "probe_time_s"}


# --------------------------------------------------------------------- no disturbance


def test_training_with_the_monitor_is_bitwise_training_without_it():
    """BatchNorm statistics, dropout masks (torch), the data order (python) and the noise
    (numpy) all follow the generators; the monitor measures in each epoch's last batch
    between backward and the optimizer step, in float64 (the model's float32 tensors and
    their gradients must come back as they were)."""
    plain, plain_rng = train(None)
    options = erf.ProbeOptions.of(OPTIONS, dtype="float64")
    monitor = erf.ERFMonitor(TARGET, 1, options, input_shape=SHAPE)
    watched, watched_rng = train(monitor)
    assert monitor.measured == [0, 1, 2]
    a, b = plain.state_dict(), watched.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(plain_rng["torch"], watched_rng["torch"])
    assert np.array_equal(plain_rng["numpy"], watched_rng["numpy"])
    assert plain_rng["python"] == watched_rng["python"]
    assert watched.training and all(m.training for m in watched.modules())


# --------------------------------------------------------------------- the plain loop


def test_a_plain_loop_logs_every_due_epoch_to_the_csv_and_draws_the_figure(tmp_path):
    monitor = _monitor(every=2, log_dir=tmp_path)
    model = TinyNet()
    found = [monitor.step(model, epoch) for epoch in range(5)]
    assert [m is not None for m in found] == [True, False, True, False, True]
    rows = _csv(tmp_path / "erf_monitor.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 2, 4]
    # the oracle: the public probe of a copy of the model, sized by erf.erf_size
    again = erf.measure_erf(copy.deepcopy(model), SHAPE, OPTIONS, target=TARGET)
    assert np.array_equal(again.total, found[4].result.total)
    size = erf.erf_size(again, trf=erf.theoretical_rf(model, SHAPE, target=TARGET))
    assert float(rows[-1]["erf_size"]) == pytest.approx(size, rel=1e-5)
    assert float(rows[-1]["trf_size"]) == 5.0  # two 3x3 convolutions
    low, high = float(rows[-1]["erf_size_ci_low"]), float(rows[-1]["erf_size_ci_high"])
    assert low <= float(rows[-1]["erf_size"]) <= high
    assert [p.name for p in monitor.close()] == ["erf_monitor.png"]
    assert (tmp_path / "erf_monitor.png").stat().st_size > 0


def test_a_fixed_batch_is_probed_at_every_measurement():
    batch = data(3)[0]
    monitor = erf.ERFMonitor(TARGET, 1, inputs=batch)
    model = TinyNet()
    first, second = monitor.step(model, 0), monitor.step(model, 1)
    expected = erf.measure_erf(copy.deepcopy(model), SHAPE, target=TARGET, inputs=[batch])
    assert first.result.n_samples == 3
    assert np.array_equal(first.result.total, expected.total)
    assert np.array_equal(second.result.total, expected.total)


def test_an_image_folder_gives_the_same_images_at_every_measurement(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        (tmp_path / "a").mkdir(exist_ok=True)
        image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / "a" / f"{i}.png")
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1))
    monitor = erf.ERFMonitor("2", 1, OPTIONS, input_shape=(3, 16, 16), inputs=tmp_path)
    first, second = monitor.step(net, 0), monitor.step(net, 1)
    assert first.result.n_samples == 4  # a seeded choice of 4 of the 6 images
    assert np.array_equal(first.result.total, second.result.total)


# --------------------------------------------------------------------- TensorBoard


def test_tensorboard_events_hold_size_interval_ratio_r2_and_the_heatmap(tmp_path):
    accumulator = require("tensorboard.backend.event_processing.event_accumulator", "tensorboard")
    writer = require("torch.utils.tensorboard", "tensorboard").SummaryWriter(str(tmp_path))
    monitor = _monitor(writer=writer)
    model = TinyNet()
    rows = [monitor.step(model, epoch).row() for epoch in (0, 1)]
    writer.close()
    events = accumulator.EventAccumulator(str(tmp_path), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"erf/size", "erf/size_ci_low", "erf/size_ci_high", "erf/trf_ratio",
            "erf/fit_r2"} <= scalars  # fmt: skip
    for tag, key in (("erf/size", "erf_size"), ("erf/trf_ratio", "erf_trf_ratio")):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [0, 1]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in rows], rel=1e-6)
    images = events.Images("erf/heatmap")
    assert [e.step for e in images] == [0, 1]
    assert (images[0].height, images[0].width) == SHAPE[1:]
    # the CSV lies beside the run: in the writer's folder
    assert [int(r["epoch"]) for r in _csv(tmp_path / "erf_monitor.csv")] == [0, 1]


# --------------------------------------------------------------------- resume and DDP


def test_a_resumed_monitor_continues_the_csv_without_duplicates(tmp_path):
    model = TinyNet()
    whole = _monitor(log_dir=tmp_path / "whole")
    for epoch in range(4):
        whole.step(model, epoch)
    first = _monitor(log_dir=tmp_path / "resumed")
    first.step(model, 0)
    first.step(model, 1)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # into the user's checkpoint
    first.step(model, 2)  # logged after the checkpoint, then the run dies
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["measured"] == [0, 1]
    resumed = _monitor(log_dir=tmp_path / "resumed")
    resumed.load_state_dict(state)
    assert [int(r["epoch"]) for r in _csv(tmp_path / "resumed" / "erf_monitor.csv")] == [0, 1]
    assert resumed.step(model, 1) is None  # measured before the checkpoint
    for epoch in (2, 3):
        resumed.step(model, epoch)
    got = [_numbers(r) for r in _csv(tmp_path / "resumed" / "erf_monitor.csv")]
    assert got == [_numbers(r) for r in _csv(tmp_path / "whole" / "erf_monitor.csv")]


def test_a_state_from_another_target_or_probe_is_refused_and_every_may_change():
    state = _monitor().state_dict()
    options = erf.ProbeOptions.of(OPTIONS, n_samples=8)
    other = erf.ERFMonitor("body.0", 1, options, input_shape=SHAPE)
    with pytest.raises(ValueError) as err:
        other.load_state_dict(state)
    assert _one_line(err) == (
        "the monitor state was made with other settings "
        "(target: 'body.5' -> 'body.0', probe.n_samples: 4 -> 8)"
    )
    _monitor(every=3).load_state_dict(state)  # measuring more or less often is fine


class _Untouchable(nn.Module):
    def forward(self, x):
        raise AssertionError("rank 1 ran the model")


def test_a_rank_other_than_0_measures_nothing_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    monitor = erf.ERFMonitor(None, 1, OPTIONS, input_shape=SHAPE, log_dir=tmp_path)
    assert monitor.step(_Untouchable(), 0) is None
    assert monitor.close() == [] and monitor.measured == []
    assert list(tmp_path.iterdir()) == []


def test_rank_0_of_a_one_process_gloo_group_measures(tmp_path):
    dist = torch.distributed
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model = nn.parallel.DistributedDataParallel(TinyNet())
        monitor = _monitor(log_dir=tmp_path)
        assert monitor.step(model, 0) is not None  # the target is the wrapped module's
    finally:
        dist.destroy_process_group()
    assert [int(r["epoch"]) for r in _csv(tmp_path / "erf_monitor.csv")] == [0]


# --------------------------------------------------------------------- bad input


def _one_line(error):
    assert "\n" not in str(error.value), str(error.value)
    return str(error.value)


def test_every_0_is_refused_at_construction():
    with pytest.raises(ValueError) as err:
        erf.ERFMonitor(TARGET, every=0, input_shape=SHAPE)
    assert _one_line(err) == "every=0 is not allowed: expected an integer >= 1"


def test_a_target_the_model_lacks_is_refused_before_training(tmp_path):
    monitor = erf.ERFMonitor("body.9", 1, OPTIONS, input_shape=SHAPE, log_dir=tmp_path)
    model = TinyNet()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError) as err:
        monitor.check(model)
    assert _one_line(err).startswith("model has no module named 'body.9' (did you mean")
    with pytest.raises(ValueError):
        monitor.step(model, 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(tmp_path.iterdir()) == []


def test_a_model_on_another_device_than_the_monitors_is_refused():
    options = erf.ProbeOptions.of(OPTIONS, device="cpu")
    monitor = erf.ERFMonitor(TARGET, 1, options, input_shape=SHAPE)
    with pytest.raises(ValueError) as err:
        monitor.check(TinyNet().to("meta"))
    assert _one_line(err) == (
        "the model is on meta but the monitor probes on cpu; pass ProbeOptions(device='meta') "
        "or move the model"
    )


def test_noise_inputs_without_an_input_shape_are_refused():
    with pytest.raises(ValueError) as err:
        erf.ERFMonitor(TARGET)
    assert "input_shape=(C, H, W) is needed" in _one_line(err)


def test_a_missing_image_folder_is_refused_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        erf.ERFMonitor(TARGET, inputs=tmp_path / "nope", input_shape=(3, 16, 16))
    assert "does not exist" in _one_line(err)


# --------------------------------------------------------------------- inputs, units, devices


@pytest.mark.parametrize(
    "inputs", ["uniform", [torch.rand(2, *SHAPE), torch.rand(2, *SHAPE)]], ids=["name", "batches"]
)
def test_named_noise_or_an_iterable_of_batches_is_what_the_monitor_probes(inputs):
    monitor = _monitor(inputs=inputs)
    model = TinyNet()
    found = monitor.step(model, 0)
    expected = erf.measure_erf(copy.deepcopy(model), SHAPE, OPTIONS, target=TARGET, inputs=inputs)
    assert np.array_equal(found.result.total, expected.total)
    assert found.result.n_samples == 4


def test_the_model_output_is_probed_as_measure_erf_does():
    monitor = erf.ERFMonitor(None, 1, OPTIONS, input_shape=SHAPE)
    model = TinyNet()
    found = monitor.step(model, 0)
    expected = erf.measure_erf(copy.deepcopy(model), SHAPE, OPTIONS)
    assert found.result.meta["layout"] == "vector"  # the logits
    assert np.array_equal(found.result.total, expected.total)


def test_a_listed_position_is_the_probed_unit():
    monitor = _monitor(position=[0, 1])
    found = monitor.step(TinyNet(), 0)
    assert monitor.settings.position == (0, 1) and found.result.position == (0, 1)


def test_a_named_position_of_the_target_is_probed():
    monitor = _monitor(position="center_upper_left")
    model = TinyNet()
    found = monitor.step(model, 0)
    assert found.result.position == (7, 7)  # (16 - 1) // 2 on the 16 x 16 map


def test_the_users_progress_setting_is_kept():
    monitor = erf.ERFMonitor(
        TARGET, 1, erf.ProbeOptions.of(OPTIONS, progress=True), input_shape=SHAPE
    )
    assert monitor.probe.options.progress is True
    assert _monitor().probe.options.progress is False  # unset: no bar inside a training loop


@pytest.mark.parametrize("epoch", [-1, True, 1.0])
def test_an_epoch_that_is_not_a_count_is_refused(epoch):
    with pytest.raises(ValueError) as err:
        _monitor().step(TinyNet(), epoch)
    assert _one_line(err) == f"epoch={epoch!r} is not allowed: expected an integer >= 0"


def test_a_state_that_is_not_a_monitors_is_refused():
    with pytest.raises(ValueError) as err:
        _monitor().load_state_dict({"format": "adam"})
    assert _one_line(err) == "not an ERFMonitor state (format 'adam')"


def test_a_model_spread_over_two_devices_is_refused():
    model = TinyNet()
    model.head = model.head.to("meta")
    with pytest.raises(ValueError) as err:
        _monitor().check(model)
    assert _one_line(err) == "the model spans several devices (cpu, meta); the monitor needs one"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"inputs": torch.zeros(5)}, "a fixed batch must be a tensor [B, C, H, W] or [C, H, W]"),
        (
            {"inputs": torch.zeros(2, 1, 8, 8), "input_shape": SHAPE},
            "input_shape=[1, 16, 16] but the fixed batch has images of [1, 8, 8]",
        ),
        ({"inputs": "."}, "an image folder needs input_shape=(3, H, W)"),
    ],
)
def test_a_bad_fixed_batch_or_a_folder_without_shape_is_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError) as err:
        erf.ERFMonitor(TARGET, 1, OPTIONS, **kwargs)
    assert _one_line(err) == message


# --------------------------------------------------------------------- the Lightning callback


def test_without_lightning_the_callback_names_the_extra_to_install(monkeypatch):
    import sys

    import erf.monitor

    monkeypatch.setattr(erf.monitor, "_CALLBACK", {})  # no class made by an earlier test
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)
    with pytest.raises(ImportError) as err:
        _monitor().callback()
    assert "pip install 'erf-lab[lightning]'" in _one_line(err)


def _trainer(log_dir):
    """What the callback reads of a Lightning Trainer: no logger, a log_dir, epoch 0."""
    from types import SimpleNamespace

    return SimpleNamespace(logger=None, log_dir=str(log_dir), current_epoch=0)


def test_the_callback_keeps_the_users_log_dir_over_the_trainers(tmp_path):
    require("lightning.pytorch", "lightning")
    monitor = _monitor(log_dir=tmp_path / "mine")
    monitor.callback().on_fit_start(_trainer(tmp_path / "trainer"), TinyNet())
    assert monitor.measured == [0] and monitor.writer is None
    assert [int(r["epoch"]) for r in _csv(tmp_path / "mine" / "erf_monitor.csv")] == [0]
    assert not (tmp_path / "trainer").exists()


def test_the_callback_on_a_rank_other_than_0_takes_nothing_from_the_trainer(tmp_path, monkeypatch):
    require("lightning.pytorch", "lightning")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    monitor = _monitor()
    monitor.callback().on_fit_start(_trainer(tmp_path), TinyNet())
    assert monitor.log_dir is None and monitor.measured == []


def test_a_rank_other_than_0_loads_the_state_but_writes_no_csv(tmp_path, monkeypatch):
    source = _monitor()
    source.step(TinyNet(), 0)
    state = source.state_dict()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    monitor = _monitor(log_dir=tmp_path)
    monitor.load_state_dict(state)
    assert monitor.measured == [0] and list(tmp_path.iterdir()) == []
