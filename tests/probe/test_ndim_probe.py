"""Sequences ``(C, L)`` and volumes ``(C, D, H, W)`` through the probe (layouts NCL, NCDHW).

Oracles are Luo et al.'s uniform-weight theory, computed here with numpy alone: a linear stack
of n k-tap layers whose weights all equal 1/fan_in has the same input gradient for every
input, the n-fold convolution of a length-k box (``np.convolve``); in 3-D it is the outer
product of three such profiles.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import erf
from erf.nets.luo import ConvStack


def box_profile(n: int, k: int = 3) -> np.ndarray:
    """The n-fold convolution of a length-k box, normalised to sum 1 (numpy only)."""
    p = np.ones(1)
    for _ in range(n):
        p = np.convolve(p, np.ones(k))
    return p / p.sum()


def centred(profile: np.ndarray, length: int) -> np.ndarray:
    """``profile`` (odd length) placed with its middle at ``length // 2`` of a zero line."""
    out = np.zeros(length)
    start = length // 2 - len(profile) // 2
    out[start : start + len(profile)] = profile
    return out


@pytest.fixture(scope="module")
def sequence_result():
    model = ConvStack(5, kernel_size=3, channels=2, dims=1, init="uniform")
    return erf.measure_erf(model, (2, 24), n_samples=2, bootstrap_groups=0)


@pytest.fixture(scope="module")
def volume_result():
    model = ConvStack(3, kernel_size=3, channels=1, dims=3, init="uniform")
    return erf.measure_erf(model, (1, 9, 10, 11), n_samples=2, bootstrap_groups=0)


def test_uniform_sequence_stack_map_is_the_n_fold_box_convolution(sequence_result):
    erf_map = sequence_result.map
    assert erf_map.shape == (24,)
    np.testing.assert_allclose(erf_map / erf_map.sum(), centred(box_profile(5), 24), atol=1e-7)


def test_uniform_volume_stack_map_is_the_outer_product_of_three_box_profiles(volume_result):
    p = box_profile(3)
    oracle = np.einsum(
        "i,j,k->ijk", centred(p, 9), centred(p, 10), centred(p, 11)
    )  # the unit sits at (4, 5, 5)
    erf_map = volume_result.map
    assert erf_map.shape == (9, 10, 11)
    np.testing.assert_allclose(erf_map / erf_map.sum(), oracle, atol=1e-8)


def test_sequence_result_records_its_layout_position_and_shapes(sequence_result):
    r = sequence_result
    assert (r.input_shape, r.target_shape, r.position, r.ndim) == ((2, 24), (2, 24), (12,), 1)
    assert r.meta["layout"] == "NCL" and r.meta["grid"] == [24]
    assert r.meta["unit_in_input"] == [12.0]


def test_volume_result_records_ncdhw_and_the_centre_voxel(volume_result):
    r = volume_result
    assert r.position == (4, 5, 5) and r.target_shape == (1, 9, 10, 11)
    assert r.meta["layout"] == "NCDHW" and r.meta["layout_decided_by"].endswith("(Conv3d output)")


def test_explicit_position_on_a_sequence_moves_the_box():
    model = ConvStack(2, kernel_size=3, channels=1, dims=1, init="uniform")
    r = erf.measure_erf(model, (1, 16), position=(3,), n_samples=2, bootstrap_groups=0)
    np.testing.assert_allclose(r.map / r.map.sum(), np.r_[np.zeros(1), box_profile(2), [0] * 10])


def test_layout_is_read_from_the_graph_when_the_last_module_is_an_activation():
    model = ConvStack(2, kernel_size=3, channels=2, dims=1, activation="relu", init="kaiming")
    r = erf.measure_erf(model, (2, 12), n_samples=2, bootstrap_groups=0)
    assert r.meta["layout_decided_by"] == "NCL: the graph analysis"


def test_per_channel_normalised_seeding_works_on_sequences():
    model = ConvStack(2, kernel_size=3, channels=3, dims=1, init="random", seed=1)
    r = erf.measure_erf(
        model, (3, 12), n_samples=2, seeding="per_channel_normalised", bootstrap_groups=0
    )
    assert r.map.shape == (12,)
    assert r.map.sum() == pytest.approx(1.0)


class ChannelsLastSequence(nn.Module):
    """A Conv1d whose output is returned as [B, L, C]: nothing says which dim is channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x).transpose(1, 2)


@pytest.mark.parametrize(
    "model, shape, settings, message",
    [
        (ChannelsLastSequence(), (2, 8), {}, "nothing says which dim holds the channels"),
        (ConvStack(1, channels=2, dims=1), (2, 8), {"layout": "NHWC"}, "probe.layout=NHWC"),
        (ConvStack(1, channels=2, dims=1), (2, 8), {"layout": "NCDHW"}, "does not fit a 1-D"),
        (ConvStack(1, channels=2), (2, 8, 8), {"layout": "NCL"}, "needs a 1-D input"),
        (ConvStack(1, channels=2, dims=1), (2, 8), {"crop": "on"}, "crop=on is for images"),
        (
            ConvStack(1, channels=2, dims=3),
            (2, 4, 4, 4),
            {"channels_last": True},
            "channels_last is for",
        ),
        (
            ConvStack(1, channels=2, dims=1),
            (2, 8),
            {"grid": (2, 4)},
            "is for images, not a sequence",
        ),
        (ConvStack(1, channels=2, dims=1), (2, 8), {"position": (3, 4)}, "has 2 indices"),
        (ConvStack(1, channels=2, dims=1), (2, 8), {"position": (9,)}, "outside the 8 target"),
    ],
)
def test_undecidable_or_two_d_settings_on_sequences_and_volumes_fail_in_one_line(
    model, shape, settings, message
):
    with pytest.raises(ValueError, match=message) as info:
        erf.measure_erf(model, shape, n_samples=1, **settings)
    assert "\n" not in str(info.value)


def test_conv_stack_dims_builds_conv1d_and_conv3d_layers():
    assert isinstance(ConvStack(2, dims=1)[0], nn.Conv1d)
    assert isinstance(ConvStack(2, dims=3, pool_at=[0])[1], nn.AvgPool3d)
    with pytest.raises(ValueError, match="dims must be 1, 2 or 3"):
        ConvStack(2, dims=4)
    with pytest.raises(ValueError, match="rim_heavy"):
        ConvStack(2, dims=1, init="rim_heavy")


def test_uniform_init_of_a_volume_stack_averages_its_window():
    conv = ConvStack(1, kernel_size=3, channels=2, dims=3)[0]
    x = torch.ones(1, 2, 5, 5, 5)
    assert conv(x)[0, :, 2, 2, 2].tolist() == pytest.approx([1.0, 1.0])


def test_an_iterable_of_sequence_batches_is_read_as_batches_not_as_one_sample():
    model = ConvStack(2, kernel_size=3, channels=2, dims=1, init="uniform")
    batches = [torch.randn(3, 2, 12), torch.randn(3, 2, 12)]
    r = erf.measure_erf(model, (2, 12), inputs=batches, n_samples=5, bootstrap_groups=0)
    assert r.n_samples == 5
    np.testing.assert_allclose(r.map / r.map.sum(), centred(box_profile(2), 12), atol=1e-7)


def test_the_atlas_refuses_a_sequence_input_in_one_line():
    with pytest.raises(ValueError, match=r"the atlas maps units of images \(C, H, W\)"):
        erf.measure_atlas(ConvStack(1, channels=2, dims=1), (2, 8), units="row", n_samples=1)


def _edge_profile(length: int) -> np.ndarray:
    """How many taps of a zero-padded 3-tap layer read each sample: 2 at the ends, else 3."""
    return np.convolve(np.ones(length), np.ones(3), mode="same")


def test_a_pooled_vector_output_of_a_sequence_model_is_one_unit_reading_every_tap():
    """A [B, C] output of a sequence model is a vector (one unit per channel); its ERF under
    uniform weights is the tap count of each sample, the same for every input (was a crash:
    the seed index unpacked the 1-axis position as (row, col))."""
    stack = ConvStack(1, kernel_size=3, channels=2, dims=1, init="uniform")
    model = nn.Sequential(stack, nn.AdaptiveAvgPool1d(1), nn.Flatten())
    r = erf.measure_erf(model, (2, 10), n_samples=2, bootstrap_groups=0)
    assert r.meta["layout"] == "vector" and r.position == (0,) and r.target_shape == (2, 1)
    np.testing.assert_allclose(r.map / r.map.max(), _edge_profile(10) / 3, rtol=1e-6)


def test_a_pooled_vector_output_of_a_volume_model_is_the_outer_product_of_tap_counts():
    stack = ConvStack(1, kernel_size=3, channels=1, dims=3, init="uniform")
    model = nn.Sequential(stack, nn.AdaptiveAvgPool3d(1), nn.Flatten())
    r = erf.measure_erf(model, (1, 4, 5, 6), n_samples=1, bootstrap_groups=0)
    oracle = np.einsum("i,j,k->ijk", _edge_profile(4), _edge_profile(5), _edge_profile(6))
    assert r.meta["layout"] == "vector" and r.position == (0, 0, 0)
    np.testing.assert_allclose(r.map / r.map.max(), oracle / oracle.max(), rtol=1e-6)


def test_center_upper_left_on_an_even_sequence_is_the_left_middle_sample():
    model = ConvStack(2, kernel_size=3, channels=1, dims=1, init="uniform")
    r = erf.measure_erf(model, (1, 16), position="center_upper_left", n_samples=1)
    assert r.position == (7,)
    oracle = np.r_[np.zeros(5), box_profile(2), np.zeros(6)]  # samples 5..9 around 7
    np.testing.assert_allclose(r.map / r.map.sum(), oracle, atol=1e-7)


def test_the_layout_option_on_a_sequence_is_recorded_as_what_decided():
    model = ConvStack(1, channels=2, dims=1, init="uniform")
    r = erf.measure_erf(model, (2, 8), layout="NCL", n_samples=1)
    assert (r.meta["layout"], r.meta["layout_decided_by"]) == ("NCL", "probe.layout")


class SequenceToImage(nn.Module):
    """A Conv1d whose [B, C, L] output is viewed as [B, C, 2, L / 2]: no sequence map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x).unflatten(2, (2, -1))


@pytest.mark.parametrize(
    "model, shape, settings, message",
    [
        (ConvStack(1, channels=2, dims=1), (2, 8), {"position": "cls"}, "use 'center' or one"),
        (SequenceToImage(), (2, 8), {}, r"is \[2, 2, 4\] per sample; on a 1-D input"),
        (ConvStack(1, channels=2, dims=1), (2, 8), {"channel": 2}, r"channel 2 is outside 0\.\.1"),
    ],
)
def test_a_bad_position_output_or_channel_on_a_sequence_fails_in_one_line(
    model, shape, settings, message
):
    with pytest.raises(ValueError, match=message) as info:
        erf.measure_erf(model, shape, n_samples=1, **settings)
    assert "\n" not in str(info.value)
