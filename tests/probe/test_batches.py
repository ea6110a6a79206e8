"""A sample alone in its batch gets the right input gradient (erf.probe.batches.with_twin).

torch 2.14.1 on CPU returns a wrong input gradient through an eval-mode BatchNorm2d for a
batch of one when the gradient reaching it is not contiguous (a token readout); the probe
never runs a batch of one. Oracles: the analytic gradient of an affine net, and central
finite differences in float64."""

import pytest
import torch
from helpers.files import write_tree
from torch import nn

from erf import measure_erf
from erf.probe.batches import with_twin


class TokenBN(nn.Module):
    """A 3 x 3 conv (or nothing) and an eval BatchNorm2d, read out as tokens [B, H*W, C]."""

    def __init__(self, conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1) if conv else nn.Identity()
        self.bn = nn.BatchNorm2d(4 if conv else 1)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 2)
            self.bn.bias.uniform_(-1, 1)
        self.eval()

    def forward(self, x):
        return self.bn(self.conv(x)).flatten(2).transpose(1, 2)


def test_a_batch_of_one_gets_a_twin_and_larger_batches_stay_as_they_are():
    x = torch.arange(6.0).view(1, 2, 3)
    twin, n = with_twin(x)
    assert n == 1 and twin.shape == (2, 2, 3) and torch.equal(twin[1], x[0])
    pair = torch.zeros(3, 1, 2)
    assert with_twin(pair, dim=1)[0].shape == (3, 2, 2) and with_twin(torch.zeros(2, 5))[1] == 2


@pytest.mark.parametrize(("n_samples", "batch_size"), [(1, 1), (3, 2), (3, 16)])
def test_a_sample_alone_in_its_batch_reads_the_batchnorm_gain_at_its_pixel(n_samples, batch_size):
    model = TokenBN(conv=False)
    result = measure_erf(
        model, (1, 5, 5), n_samples=n_samples, batch_size=batch_size, grid=(5, 5), prefix_tokens=0
    )
    gain = (model.bn.weight / torch.sqrt(model.bn.running_var + model.bn.eps)).abs()
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[2, 2] = gain.item()  # |dy/dx| of the centre token: its own pixel, times the gain
    torch.testing.assert_close(torch.as_tensor(result.map), expected)


def test_the_map_of_one_sample_equals_central_finite_differences():
    torch.manual_seed(3)
    model = TokenBN(conv=True).double()
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    result = measure_erf(
        model, (1, 6, 6), n_samples=1, batch_size=1, inputs=[x], dtype=torch.float64,
        grid=(6, 6), prefix_tokens=0,
    )  # fmt: skip

    def unit(z):  # the centre token (3, 3), every channel: the probe's default seed
        return model(z)[0, 3 * 6 + 3].sum()

    fd = torch.zeros(6, 6, dtype=torch.float64)
    eps = 1e-6
    for r in range(6):
        for c in range(6):
            step = torch.zeros_like(x)
            step[0, 0, r, c] = eps
            with torch.no_grad():
                fd[r, c] = (unit(x + step) - unit(x - step)) / (2 * eps)
    torch.testing.assert_close(torch.as_tensor(result.map), fd.abs(), atol=1e-7, rtol=1e-6)


def test_per_channel_seeds_of_a_sample_alone_read_the_units_3x3_window():
    # per-channel seeds go through a batched backward (is_grads_batched); alone in its batch,
    # the sample's map came back shifted by a row: rows 1-3 instead of the conv's rows 2-4
    torch.manual_seed(0)
    model = TokenBN(conv=True)
    x = torch.randn(1, 1, 6, 6)
    kw = dict(seeding="per_channel_normalised", grid=(6, 6), prefix_tokens=0, progress=False)
    alone = measure_erf(model, (1, 6, 6), n_samples=1, batch_size=1, inputs=[x], **kw)
    pair = measure_erf(
        model, (1, 6, 6), n_samples=2, batch_size=2, inputs=[x.repeat(2, 1, 1, 1)], **kw
    )
    rows, cols = torch.nonzero(torch.as_tensor(alone.map), as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 4, 2, 4)
    torch.testing.assert_close(torch.as_tensor(alone.map), torch.as_tensor(pair.map))


# --------------------------------------------------------------------------- memory


def test_a_v2_cgroup_limit_leaves_its_limit_minus_its_usage(tmp_path):
    from erf.probe.batches import cgroup_room

    root = write_tree(
        tmp_path, {"job/memory.max": "3221225472\n", "job/memory.current": "1073741824\n"}
    )
    (tmp_path / "self").write_text("0::/job\n")
    assert cgroup_room(root, tmp_path / "self") == 2 << 30


def test_a_v1_cgroup_limit_counts_and_an_unlimited_one_does_not(tmp_path):
    from erf.probe.batches import cgroup_room

    v1 = {
        "memory/memory.limit_in_bytes": "9223372036854771712",  # the root: no limit
        "memory/box/memory.limit_in_bytes": "2147483648",
        "memory/box/memory.usage_in_bytes": "1024",
    }
    (tmp_path / "self").write_text("9:name=systemd:/\n4:memory:/box\n0::/\n")
    assert cgroup_room(write_tree(tmp_path / "a", v1), tmp_path / "self") == (2 << 30) - 1024
    unlimited = {"memory.max": "max\n", "memory.current": "5\n"}
    assert cgroup_room(write_tree(tmp_path / "b", unlimited), tmp_path / "none") is None


def test_a_batch_that_would_not_fit_is_refused_in_one_line_naming_one_that_would(monkeypatch):
    import erf.probe.batches as batches
    from erf import ConvStack

    model = ConvStack(depth=3, kernel_size=3, channels=8, in_channels=1, init="random")
    monkeypatch.setattr(batches, "cpu_available_bytes", lambda: 200_000)  # 200 kB free
    with pytest.raises(ValueError, match=r"probe.batch_size=16 needs about .* free on cpu") as e:
        measure_erf(model, (1, 32, 32), n_samples=16, batch_size=16, progress=False)
    message = str(e.value)
    assert "use probe.batch_size=" in message and "\n" not in message
    fits = int(message.split("use probe.batch_size=")[1].split()[0])
    assert 1 <= fits < 16
    measure_erf(model, (1, 32, 32), n_samples=4, batch_size=fits, progress=False)


def test_a_stream_with_no_sample_left_estimates_a_batch_of_one_without_running_the_model():
    """Nothing to try the model on (the run's samples are all done): the estimate is the
    smallest batch and nothing is refused; the model is never called."""
    from erf.probe.batches import BatchStream, estimate_batch_size, memory_refusal

    def step(x):
        raise AssertionError("no sample: the model must not run")

    stream = BatchStream("gaussian", (1, 8, 8), 4, "auto", seed=0, start=4, auto=True)
    assert stream.first_sample() is None
    assert estimate_batch_size(step, stream, torch.device("cpu"), 4) == 1
    assert memory_refusal(step, stream, torch.device("cpu"), 1024) is None


@pytest.mark.parametrize("meminfo", [None, "MemTotal:       1024 kB\n"], ids=["none", "no-line"])
def test_without_memavailable_the_host_is_assumed_to_have_4_gib(tmp_path, monkeypatch, meminfo):
    """No /proc/meminfo (macOS, Windows) or no MemAvailable line (old kernels): 4 GiB, or
    less when the cgroup leaves less."""
    import builtins
    import io

    import erf.probe.batches as batches

    def fake_open(path, *args, **kwargs):
        if str(path) != "/proc/meminfo":
            return builtins.open(path, *args, **kwargs)
        if meminfo is None:
            raise FileNotFoundError(path)
        return io.StringIO(meminfo)

    monkeypatch.setattr(batches, "open", fake_open, raising=False)
    assert batches.cpu_available_bytes(tmp_path / "no-cgroup") == 4 << 30
    limited = write_tree(tmp_path, {"memory.max": str(3 << 30), "memory.current": str(1 << 30)})
    assert batches.cpu_available_bytes(limited) == 2 << 30
