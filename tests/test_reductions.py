"""The reduction registry: every registered reduction's per-image map against a numpy oracle,
and what a registration carries (name, label, signed) to the probe, options and figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from erf import reductions
from erf.io.figure_style import REDUCTIONS as FIGURE_LABELS
from erf.probe.options import ProbeOptions, seeding_problem
from erf.result import ERFResult

# Independent oracles: g [B, C, H, W] -> [B, H, W], written with numpy from the definitions.
ORACLES = {
    "abs": lambda g: np.abs(g).sum(1),
    "relu": lambda g: np.maximum(g, 0).sum(1),
    "clamp_after_mean": lambda g: g.sum(1),
    "clamp_per_image": lambda g: np.maximum(g.mean(1), 0),
    "square": lambda g: (g**2).sum(1),
    "max_abs": lambda g: np.abs(g).max(1),
}


def test_every_registered_reduction_has_an_oracle_here():
    assert set(reductions.names()) == set(ORACLES)


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_a_reductions_per_image_map_is_its_definition(name):
    g = np.random.default_rng(0).normal(size=(2, 3, 5, 4))
    got = reductions.get(name).per_image(torch.from_numpy(g)).numpy()
    np.testing.assert_allclose(got, ORACLES[name](g), rtol=1e-12)


def test_only_a_signed_reductions_mean_is_clamped_after_averaging():
    total = np.array([[-2.0, 4.0]])
    for name in reductions.names():
        result = ERFResult(total, total**2, 2, (1, 1, 2), None, (1, 1, 2), (0, 0), None, name)
        expected = np.array([[0.0, 2.0]]) if reductions.get(name).signed else total / 2
        np.testing.assert_array_equal(result.map, expected)


def test_a_legacy_name_reads_as_what_it_meant():
    assert reductions.get("signed_clamp").name == "clamp_after_mean"
    assert reductions.is_signed("signed_clamp")


def test_an_unknown_reduction_is_a_one_line_error_naming_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown reduction 'max'; allowed: \['abs'"):
        reductions.get("max")


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="'abs' is already registered"):
        reductions.reduction("abs", label="x", help="x")(lambda g: g)


def test_every_reduction_is_a_valid_option_and_has_a_figure_label():
    for name in reductions.names():
        assert ProbeOptions(reduce=name).reduce == name
        assert FIGURE_LABELS[name] == reductions.get(name).label


def test_a_signed_reduction_is_refused_by_a_seeding_that_scales_maps_to_sum_one():
    signed = [n for n in reductions.names() if reductions.is_signed(n)]
    assert signed == ["clamp_after_mean"]
    assert "is signed" in seeding_problem("clamp_after_mean", "per_channel_normalised", None)
    assert seeding_problem("abs", "per_channel_normalised", None) is None
