"""The probe's input sources (erf.probe.inputs): random samples by (seed, index), and iterables
of batches checked batch by batch (tensors, the probed input shape, a batch dim or not)."""

import numpy as np
import pytest
import torch

from erf import ConvStack, measure_erf
from erf.probe.inputs import input_batches, random_sample

SHAPE = (1, 6, 6)


def test_an_unknown_random_source_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown random input 'poisson'; allowed: \['gaussian'"):
        random_sample("poisson", SHAPE, 0, 0)
    batches = input_batches("poisson", SHAPE, 4, 2)  # refused at the first batch, not later
    with pytest.raises(ValueError, match=r"unknown random input 'poisson'; allowed: \['gaussian'"):
        next(batches)


def test_an_iterable_of_single_samples_gives_the_map_of_the_same_samples_in_batches():
    """A sample without its batch dim is a batch of one: the probe sees the same inputs."""
    samples = [random_sample("gaussian", SHAPE, 0, i) for i in range(4)]
    batches = list(input_batches(iter(samples), SHAPE, 4, 2))
    assert [tuple(b.shape) for b in batches] == [(1, *SHAPE)] * 4
    assert torch.equal(torch.cat(batches), torch.stack(samples))
    model = ConvStack(2, init="random", activation="relu")
    kw = dict(n_samples=4, device="cpu", dtype=torch.float64)
    alone = measure_erf(model, SHAPE, inputs=samples, batch_size=1, **kw)
    stacked = measure_erf(model, SHAPE, inputs=[torch.stack(samples)], batch_size=4, **kw)
    np.testing.assert_allclose(alone.total, stacked.total, rtol=1e-12, atol=0)
    assert alone.n_samples == stacked.n_samples == 4


def test_a_batch_that_is_not_a_tensor_is_refused_naming_its_type():
    with pytest.raises(TypeError, match="input batches must be tensors, got ndarray"):
        next(input_batches([(np.zeros((2, *SHAPE)), [0, 1])], SHAPE, 2, 2))


def test_a_batch_of_another_shape_is_refused_naming_both_shapes():
    wrong = [torch.zeros(2, 1, 4, 4)]
    with pytest.raises(
        ValueError, match=r"input batch has shape \(1, 4, 4\), expected \(1, 6, 6\)"
    ):
        measure_erf(ConvStack(2), SHAPE, inputs=wrong, n_samples=2, device="cpu")
