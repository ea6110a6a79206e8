"""The two trained networks: shapes, the ERF target, inits, and TRFs derived by hand."""

import numpy as np
import pytest
import torch

from erf import measure_erf, theoretical_rf
from erf.nets.luo import ResidualClassifier, ResidualSegmenter, ResidualStack


def _segmenter_trf_by_hand(blocks: int, subsample_at, k: int = 3) -> int:
    """r = 1 + (k - 1) * sum over convs of the stride product before that conv: the stem,
    then per block conv1 (stride 2 in subsampling blocks) and conv2."""
    r, stride = 1 + (k - 1), 1  # stem
    for b in range(blocks):
        r += (k - 1) * stride  # conv1 sees the stride before it
        if b in subsample_at:
            stride *= 2
        r += (k - 1) * stride  # conv2
    return r


def test_classifier_trf_is_one_plus_k_minus_one_times_one_plus_two_blocks():
    model = ResidualClassifier(10, blocks=17, channels=2)
    assert theoretical_rf(model, (3, 32, 32), target="body").size == (71, 71)
    for blocks in (1, 4):
        trf = theoretical_rf(ResidualClassifier(3, blocks=blocks, channels=2), (3, 16, 16), "body")
        assert trf.size == (1 + 2 * (1 + 2 * blocks),) * 2


def test_segmenter_trf_matches_the_hand_derivation_453_for_the_paper_layout():
    assert _segmenter_trf_by_hand(16, {0, 4, 8, 12}) == 453  # 3 + 6 + 24 + 12 + 48 + ...
    model = ResidualSegmenter(11, blocks=16, channels=2)
    trf = theoretical_rf(model, (3, 64, 64), target="body")
    assert trf.size == (453, 453) and trf.stride == (16, 16)


@pytest.mark.parametrize("blocks, subsample_at", [(3, [0]), (4, [1, 3]), (5, [0, 1, 4])])
def test_segmenter_trf_equals_the_closed_form_of_its_conv_chain(blocks, subsample_at):
    # Second route: the longest path is the plain chain stem, conv1, conv2, ... (closed form).
    layers = [(3, 1, 1)]
    for b in range(blocks):
        layers += [(3, 2 if b in subsample_at else 1, 1), (3, 1, 1)]
    chain = theoretical_rf(layers)
    model = ResidualSegmenter(2, blocks=blocks, channels=2, subsample_at=subsample_at)
    graph = theoretical_rf(model, (3, 64, 64), target="body")
    assert graph.size == chain.size == (_segmenter_trf_by_hand(blocks, set(subsample_at)),) * 2
    assert graph.stride == chain.stride


def test_segmenter_gradient_support_is_its_trf():
    # Uniform positive weights, no nonlinearity: every pixel inside the TRF has a positive
    # gradient, every pixel outside exactly zero (the skip paths are shorter, inside it).
    model = ResidualSegmenter(2, blocks=3, channels=1, in_channels=1, subsample_at=[1],
                              init="uniform", activation="none")  # fmt: skip
    size = 48
    trf = theoretical_rf(model, (1, size, size), target="body")
    result = measure_erf(model, (1, size, size), target="body", n_samples=1, device="cpu",
                         dtype=torch.float64)  # fmt: skip
    (r0, r1), (c0, c1) = trf.interval(result.position)
    support = np.zeros((size, size), dtype=bool)
    support[max(r0, 0) : r1 + 1, max(c0, 0) : c1 + 1] = True
    assert np.array_equal(result.map > 0, support)


def test_outputs_are_logits_and_full_resolution_score_maps():
    assert ResidualClassifier(5, blocks=2, channels=4)(torch.zeros(2, 3, 20, 20)).shape == (2, 5)
    seg = ResidualSegmenter(7, blocks=4, channels=4, subsample_at=[0, 2])
    assert seg(torch.zeros(1, 3, 36, 52)).shape == (1, 7, 36, 52)
    assert seg.output_stride == 4


def test_the_erf_target_is_the_body_whose_output_is_the_last_block():
    model = ResidualClassifier(3, blocks=3, channels=4)
    assert model.ERF_TARGET == "body" and isinstance(model.body, ResidualStack)
    x = torch.randn(1, 3, 12, 12)
    features = model.stem_act(model.stem(x))
    for block in model.body:
        features = block(features)
    assert torch.equal(model.features(x), features)


def test_branch_scale_multiplies_the_last_conv_of_every_branch_only():
    a = ResidualClassifier(3, blocks=3, channels=4, seed=2)
    b = ResidualClassifier(3, blocks=3, channels=4, seed=2, branch_scale=0.25)
    for block_a, block_b in zip(a.body, b.body):
        assert torch.equal(block_a.conv1.weight, block_b.conv1.weight)
        assert torch.allclose(block_a.conv2.weight * 0.25, block_b.conv2.weight)
    assert torch.equal(a.stem.weight, b.stem.weight) and torch.equal(a.head.weight, b.head.weight)


def test_inits_are_seeded_and_named_inits_reach_the_stem():
    a, b = ResidualSegmenter(3, seed=4), ResidualSegmenter(3, seed=4)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    uniform = ResidualClassifier(3, blocks=1, channels=4, init="uniform")
    assert torch.all(uniform.stem.weight == 1 / 27)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"classes": 1}, "classes"), ({"activation": "gelu"}, "activation"),
     ({"branch_scale": 0}, "branch_scale"), ({"kernel_size": 2}, "kernel_size"),
     ({"classes": None}, "classes is null: set model.classes"),
     ({"channels": 0}, "channels and in_channels must be >= 1"),
     ({"in_channels": 0}, "channels and in_channels must be >= 1")],
)  # fmt: skip
def test_bad_arguments_are_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResidualClassifier(**{"classes": 3, **kwargs})
