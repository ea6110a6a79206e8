"""The graph-TRF rules on a map split into windows (erf.rf.digit_rules), one op at a time.

Each model cuts a 2-channel 8 x 8 map into four 4 x 4 windows the way Swin does (view,
permute, reshape to [windows, tokens, channels]), applies the op under test, and puts the
windows back. Oracle: the gradient support of a float64 copy with positive weights (nothing
cancels) for the corners, the centre and an inner unit. A refused op names itself and why in
one line."""

import pytest
import torch
from helpers.gradient_support import mask_bounds, positive_float64
from helpers.gradient_support import support_boxes as unit_support_boxes
from torch import nn
from torch.nn import functional as F

from erf.rf.graph import graph_rf
from erf.rf.tensor_rules import GATE_NOTE, TOKEN_ERROR

C, N = 2, 8  # channels, rows = cols; windows of 4 x 4: 2 x 2 windows of 16 tokens
SHAPE = (C, N, N)
UNITS = [(0, 0), (0, N - 1), (N - 1, 0), (N - 1, N - 1), (N // 2, N // 2), (2, 5)]


def partition(x):
    """[1, c, 8, 8] -> [4 windows, 16 tokens, c] (window index row-major, tokens row-major)."""
    c = x.shape[1]
    return x.view(1, c, 2, 4, 2, 4).permute(0, 2, 4, 3, 5, 1).reshape(4, 16, c)


def reverse(t):
    """The inverse of ``partition``: [4, 16, c] -> [1, c, 8, 8]."""
    c = t.shape[-1]
    return t.view(1, 2, 2, 4, 4, c).permute(0, 5, 1, 3, 2, 4).reshape(1, c, N, N)


class Windowed(nn.Module):
    """``fn(self, x)`` with a few parameters it may use: ``lin`` (a linear layer over the
    channels), ``tokens`` (a 16 x 16 matrix over a window's tokens), ``chan`` (a C x C matrix)
    ``kv`` (constant keys/values of a window attention) and a softmax without a dim."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.lin = nn.Linear(C, 3 * C)
        self.tokens = nn.Parameter(torch.rand(16, 16))
        self.chan = nn.Parameter(torch.rand(C, C))
        self.kv = nn.Parameter(torch.rand(4, 16, C))
        self.softmax = nn.Softmax(dim=None)

    def forward(self, x):
        return self.fn(self, x)


def window_box(r, c):
    """The input box of the 4 x 4 window holding pixel (r, c)."""
    return ((r // 4 * 4, r // 4 * 4 + 3), (c // 4 * 4, c // 4 * 4 + 3))


def support_boxes(model, units=UNITS):
    """Per unit (row, col) of the [1, C', 8, 8] output: the bounding box of the input pixels
    its gradient reaches, in a float64 copy with positive weights."""
    return unit_support_boxes(model, SHAPE, units)


def engine_boxes(model, units=UNITS):
    graph = graph_rf(model, SHAPE)
    return [graph.unit_interval(None, u, clipped=True) for u in units]


def assert_exact(fn):
    """The engine's box of every probed unit is the gradient support's; returns the boxes."""
    engine = engine_boxes(Windowed(fn))
    assert engine == support_boxes(Windowed(fn))
    return engine


def attend(t):
    """Window self-attention: each token reads every token of its window."""
    return F.scaled_dot_product_attention(t, t, t)


# ---- rules that compute


def test_window_attention_reads_exactly_the_window():
    assert assert_exact(lambda m, x: reverse(attend(partition(x)))) == [
        window_box(*u) for u in UNITS
    ]


@pytest.mark.parametrize(
    "qkv",
    [
        lambda t: t.chunk(3, dim=-1),
        lambda t: t.split(C, dim=2),
        lambda t: t.view(4, 16, 3, C).unbind(2),
    ],
    ids=["chunk", "split", "unbind"],
)
def test_queries_keys_and_values_split_off_the_channels_keep_the_windows(qkv):
    def fn(m, x):
        q, k, v = qkv(m.lin(partition(x)))
        return reverse(F.scaled_dot_product_attention(q, k, v))

    assert assert_exact(fn) == [window_box(*u) for u in UNITS]


def test_indexing_that_keeps_the_window_dims_whole_keeps_the_windows():
    # a None adds a dim, an int drops one, a slice of channels keeps the window digits
    def fn(m, x):
        t = attend(partition(x))[:, None, :, :1][:, 0]
        return reverse(t[..., None][..., 0])

    assert assert_exact(fn) == [window_box(*u) for u in UNITS]


def test_padding_the_channels_of_a_split_map_keeps_each_token_in_place():
    boxes = assert_exact(lambda m, x: reverse(F.pad(partition(x), (0, 2))))
    assert boxes == [((r, r), (c, c)) for r, c in UNITS]


def test_a_constant_matrix_over_a_windows_tokens_reads_the_whole_window():
    boxes = assert_exact(lambda m, x: reverse(torch.matmul(m.tokens, partition(x))))
    assert boxes == [window_box(*u) for u in UNITS]


def test_a_constant_matrix_over_the_channels_keeps_each_token_in_place():
    # chan @ t^T: A's rows are channels, B's columns the tokens: each token reads itself
    def fn(m, x):
        t = partition(x).transpose(-1, -2)
        return reverse(torch.matmul(m.chan, t).transpose(-1, -2))

    assert assert_exact(fn) == [((r, r), (c, c)) for r, c in UNITS]


def test_a_vector_over_the_channels_of_a_split_map_drops_them_and_keeps_each_token():
    # found by the fuzzer's tensor_algebra family (it crashed: IndexError): t @ w, w [C],
    # sums each token's channels away; unsqueezed back to one channel, each token reads itself
    boxes = assert_exact(lambda m, x: reverse((partition(x) @ m.chan[0]).unsqueeze(-1)))
    assert boxes == [((r, r), (c, c)) for r, c in UNITS]


def test_attention_to_constant_keys_and_values_reads_each_query_alone():
    boxes = assert_exact(
        lambda m, x: reverse(F.scaled_dot_product_attention(partition(x), m.kv, m.kv))
    )
    assert boxes == [((r, r), (c, c)) for r, c in UNITS]


def test_a_window_mean_added_back_makes_each_token_read_its_window():
    def fn(m, x):
        t = partition(x)
        return reverse(t + t.mean(1, keepdim=True))

    assert assert_exact(fn) == [window_box(*u) for u in UNITS]


def test_the_larger_of_a_token_and_its_window_mean_reads_what_their_sum_reads():
    # max's gradient picks one argument: the oracle is the sum's (it reads both)
    def fn(pair):
        def f(m, x):
            t = partition(x)
            return reverse(pair(t, t.mean(1, keepdim=True)))

        return f

    boxes = engine_boxes(Windowed(fn(torch.max)))
    assert boxes == support_boxes(Windowed(fn(torch.add))) == [window_box(*u) for u in UNITS]


def test_two_paths_of_the_same_windows_meet_token_by_token():
    def fn(m, x):
        t = partition(x)
        return reverse(t + t.sigmoid())

    assert assert_exact(fn) == [((r, r), (c, c)) for r, c in UNITS]


def test_reductions_and_norms_over_the_channels_keep_the_windows():
    # sum keeping the dim, amax dropping it, functional layer_norm over the channels
    def fn(m, x):
        t = F.layer_norm(attend(partition(x)), (C,))
        t = t.sum(-1, keepdim=True) + t.amax(-1)[..., None]
        return reverse(t)

    assert assert_exact(fn) == [window_box(*u) for u in UNITS]


def test_a_map_of_window_means_meets_the_windows_position_by_position():
    # [1, C, 2, 4, 2, 4]: the mean over the offsets is an ordinary 2 x 2 map (stride 4)
    def fn(m, x):
        t = x.view(1, C, 2, 4, 2, 4)
        return (t + t.mean((3, 5), keepdim=True)).view(1, C, N, N)

    assert assert_exact(fn) == [window_box(*u) for u in UNITS]


def test_a_map_of_one_row_broadcast_over_split_rows_reads_its_column():
    # rows split into 2 x 4, cols whole; the column means broadcast over every row
    def fn(m, x):
        t = x.view(1, C, 2, 4, N)
        return (t * x.mean(2, keepdim=True).unsqueeze(2)).view(1, C, N, N)

    assert assert_exact(fn) == [((0, N - 1), (c, c)) for _, c in UNITS]


def test_windows_entered_from_a_flattened_grid_read_exactly_the_window():
    def fn(m, x):
        tokens = x.flatten(2).transpose(1, 2)  # [1, 64, C], rows then cols
        t = tokens.view(1, 2, 4, 2, 4, C).permute(0, 1, 3, 2, 4, 5).reshape(4, 16, C)
        return reverse(attend(t))

    assert assert_exact(fn) == [window_box(*u) for u in UNITS]


def test_a_per_sample_gate_on_the_windows_is_global_context():
    def fn(m, x):
        gate = x.mean((2, 3)).view(1, 1, C)
        return reverse(attend(partition(x)) * gate)

    graph = graph_rf(Windowed(fn), SHAPE)
    trf = graph.for_target(None)
    assert trf.global_context
    assert any(n.startswith(GATE_NOTE) for n in trf.notes)
    assert graph.unit_interval(None, (5, 2)) == window_box(5, 2)  # the local convention


def test_mixing_every_digit_of_the_windows_is_global():
    model = Windowed(lambda m, x: x.view(1, C, 2, 4, 2, 4).sum((2, 3, 4, 5)))
    trf = graph_rf(model, SHAPE).for_target(None)
    assert trf.is_global and any("mixes every digit of the map" in n for n in trf.notes)
    x = (torch.rand(1, *SHAPE, dtype=torch.float64) + 0.5).requires_grad_()
    (grad,) = torch.autograd.grad(positive_float64(model)(x).sum(), x)
    assert trf.size == tuple(b - a + 1 for a, b in mask_bounds(grad[0, 0].numpy() != 0))


# ---- refusals


def _tokens_with_prefix(m, x):
    """[1, 65, C]: a class token, then the grid's tokens row-major."""
    return torch.cat([m.kv[:1, :1], x.flatten(2).transpose(1, 2)], 1)


REFUSED = {
    "its arguments split the map differently": lambda m, x: (
        x.view(1, C, 4, 2, 8) + x.transpose(2, 3).reshape(1, C, 4, 2, 8)
    ),
    "a reshape that cuts a window's digits unevenly": lambda m, x: (
        x[:, :, :6, :6].reshape(1, C, 2, 3, 2, 3).reshape(1, C, 4, 9)
    ),
    "a global value meets a map split into windows": lambda m, x: torch.matmul(
        partition(x), x.mean((2, 3)).view(1, C, 1)
    ),
    "prefix tokens meet a map split into windows": lambda m, x: torch.matmul(
        partition(x), _tokens_with_prefix(m, x).transpose(1, 2)
    ),
    "its first argument is not the map split into windows": lambda m, x: F.linear(
        m.chan, partition(x).reshape(64, C)
    ),
    "an ordinary map meets a map split into windows": lambda m, x: (
        x.view(1, C, 2, 4, 2, 4) + x.view(1, C, 2, 4, 2, 4).mean((3, 5), True).transpose(2, 4)
    ),
    "softmax without a dim": lambda m, x: m.softmax(partition(x)),
    "a reduction over all dims or with several results": lambda m, x: partition(x).sum(),
    "a matrix product with a vector": lambda m, x: torch.matmul(
        partition(x)[..., 0], partition(x)[..., 0].sum(0)
    ),
    "its operands split the map into windows differently": lambda m, x: torch.matmul(
        partition(x), partition(x.transpose(2, 3)).transpose(1, 2)
    ),
    "constant queries": lambda m, x: F.scaled_dot_product_attention(
        m.kv, partition(x), partition(x)
    ),
    "keys or values split into other windows": lambda m, x: F.scaled_dot_product_attention(
        partition(x), partition(x.transpose(2, 3)), partition(x)
    ),
    "indexing with tensors or booleans": lambda m, x: partition(x)[:, torch.arange(3)],
    "indexing a dim that holds window digits": lambda m, x: partition(x)[:, :8],
    "it splits a dim that holds window digits": lambda m, x: partition(x).chunk(2, 1)[0],
    "it pads a dim that holds window digits": lambda m, x: F.pad(partition(x), (0, 0, 1, 1)),
}


@pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax")
@pytest.mark.parametrize("why", list(REFUSED))
def test_an_op_a_window_rule_cannot_follow_is_refused_in_one_line_saying_why(why):
    with pytest.raises(TypeError, match="unsupported op") as e:
        graph_rf(Windowed(REFUSED[why]), SHAPE)
    assert f"({why})" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "fn",
    [
        lambda m, x: _tokens_with_prefix(m, x).reshape(1, 65 * C),  # prefix tokens before the grid
        lambda m, x: x[:, :, :6, :6].reshape(1, C, 4, 9),  # 6 rows do not cut into 4
    ],
    ids=["prefix-tokens", "uneven-cut"],
)
def test_a_reshape_into_windows_the_rules_cannot_follow_leaves_a_token_sequence(fn):
    graph = graph_rf(Windowed(fn), SHAPE)
    with pytest.raises(ValueError, match=TOKEN_ERROR.split(":")[0]):
        graph.for_target(None)
