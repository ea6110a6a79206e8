"""Graph TRF through token stages: a grid flattened into tokens (with class, distillation or
register tokens in front) and back keeps every unit's exact box; attention over all tokens is
global. Oracle: the gradient support of a float64 copy with positive weights (nothing cancels),
read at the token of grid unit (r, c), index prefix + r * w + c."""

import pytest
import torch
from helpers.gradient_support import mask_bounds, positive_float64
from torch import nn

from erf.rf.graph import graph_rf


class _Stop(Exception):
    pass


def _token_support_box(model, shape, target, token):
    """Bounding box of the input pixels token ``token`` of ``target``'s [B, N, C] output (or a
    (row, col) of a [B, C, H, W] map) depends on."""
    model = positive_float64(model)
    x = (torch.rand(1, *shape, dtype=torch.float64) + 0.5).requires_grad_()

    def stop(module, args, output):
        raise _Stop(output)

    handle = dict(model.named_modules())[target].register_forward_hook(stop)
    try:
        model(x)
    except _Stop as e:
        y = e.args[0]
    finally:
        handle.remove()
    sel = y[0, token] if isinstance(token, int) else y[0, :, token[0], token[1]]
    sel.sum().backward()
    mask = (x.grad[0].abs().sum(0) != 0).numpy()
    return mask_bounds(mask), mask


class TokenRoundTrip(nn.Module):
    """Patch embedding (4 x 4, stride 4), tokens with ``prefix`` learned tokens in front, a
    per-token LayerNorm + Linear, the prefix dropped, back to a grid, a 3 x 3 conv."""

    def __init__(self, prefix: int = 1, dim: int = 4):
        super().__init__()
        self.embed = nn.Conv2d(1, dim, 4, stride=4)
        self.prefix = nn.Parameter(torch.zeros(1, prefix, dim))
        self.norm, self.mlp = nn.LayerNorm(dim), nn.Linear(dim, dim)
        self.grid = nn.Identity()
        self.head = nn.Conv2d(dim, 1, 3, padding=1)
        self.p = prefix

    def forward(self, x):
        t = self.embed(x)
        b, c, h, w = t.shape
        t = t.flatten(2).transpose(1, 2)
        t = torch.cat([self.prefix.expand(b, -1, -1), t], dim=1)
        t = self.mlp(self.norm(t))
        t = t[:, self.p :].transpose(1, 2).reshape(b, c, h, w)
        return self.head(self.grid(t))


@pytest.mark.parametrize("prefix", [1, 2])
def test_a_grid_through_tokens_and_back_gives_every_unit_its_exact_box(prefix):
    model = TokenRoundTrip(prefix)
    g = graph_rf(model, (1, 20, 24))
    rf = g.for_target(None)
    assert rf.size == (12, 12) and rf.stride == (4, 4) and not rf.varies_by_unit
    for r in range(5):
        for c in range(6):
            box, _ = _token_support_box(model, (1, 20, 24), "head", (r, c))
            assert g.unit_interval(None, (r, c), clipped=True) == box, (r, c)


def test_a_token_unit_reads_its_own_patch_behind_the_prefix_tokens():
    model = TokenRoundTrip(prefix=2)
    g = graph_rf(model, (1, 20, 24))
    rf = g.for_target("mlp")  # [B, 2 + 5 * 6, C]
    assert rf.out_shape == (5, 6) and rf.size == (4, 4)
    box, mask = _token_support_box(model, (1, 20, 24), "mlp", 2 + 3 * 6 + 4)
    assert rf.interval((3, 4)) == box == ((12, 15), (16, 19)) and mask.sum() == 16


@pytest.fixture(scope="module")
def vit():
    timm = pytest.importorskip("timm")
    return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=64)


def test_deit_tokens_before_attention_see_their_patch_and_after_it_everything(vit):
    g = graph_rf(vit, (3, 64, 64))
    before = g.for_target("blocks.0.norm1")  # class and distillation tokens in front
    assert before.out_shape == (4, 4) and before.size == (16, 16) and not before.is_global
    box, _ = _token_support_box(vit, (3, 64, 64), "blocks.0.norm1", 2 + 1 * 4 + 2)
    assert before.interval((1, 2)) == box == ((16, 31), (32, 47))
    after = g.for_target("blocks.0")
    assert after.is_global and after.global_from == "blocks.0.attn"
    _, mask = _token_support_box(vit, (3, 64, 64), "blocks.0", 2 + 5)
    assert mask.all()


class TokenOp(nn.Module):
    """A 4 x 4 patch embedding (stride 4) flattened into [B, N, C] tokens ``t``, then
    ``body(self, t)``; ``p`` is one learned prefix token, ``mha`` a batch-first attention
    whose embedding is 16 wide (the 16 tokens of a 16 x 16 input, read across), ``softmax``
    an nn.Softmax without dim."""

    def __init__(self, body, dim: int = 4):
        super().__init__()
        self.embed, self.body = nn.Conv2d(1, dim, 4, stride=4), body
        self.p = nn.Parameter(torch.zeros(1, 1, dim))
        self.mha = nn.MultiheadAttention(16, 1, batch_first=True)  # embeds 16 tokens
        self.softmax = nn.Softmax()  # no dim: torch's implicit dim

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return self.body(self, t)


def _with_prefix(m, t):
    return torch.cat([m.p.expand(t.shape[0], -1, -1), t], 1)


@pytest.mark.parametrize(
    "body, why",
    [
        (lambda m, t: t[0], "indexing before the token dim"),
        (lambda m, t: t[None], "indexing before the token dim"),
        (lambda m, t: _with_prefix(m, t)[:, 5], "integer index of a grid token"),
        (lambda m, t: _with_prefix(m, t)[:, 2:5], "a slice of grid tokens"),
        (lambda m, t: t.split(3, 1)[0], "it splits the tokens of a flattened grid"),
        (lambda m, t: torch.cat([t, m.p], 1), "only constant tokens may be put before a token"),
        (lambda m, t: torch.cat([t, t], 1), "only constant tokens may be put before a token"),
        (
            lambda m, t: m.mha(t.transpose(1, 2), t.transpose(1, 2), t.transpose(1, 2))[0],
            r"its spatial units are not the sequence dim \(1\)",
        ),
    ],
    ids=[
        "int-batch-index", "new-dim-before-tokens", "int-grid-token", "slice-of-grid-tokens",
        "split-tokens", "constant-after-grid", "two-grids", "attention-over-channels",
    ],
)  # fmt: skip
def test_token_ops_without_an_exact_box_are_refused_in_one_line_naming_the_node(body, why):
    with pytest.raises(TypeError, match=f"unsupported op .* at node '.*'.*{why}") as e:
        graph_rf(TokenOp(body), (1, 16, 16))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "body", [lambda m, t: _with_prefix(m, t)[:, 0], lambda m, t: _with_prefix(m, t)[:, :1]]
)
def test_a_prefix_token_picked_before_any_mixing_does_not_depend_on_the_input(body):
    g = graph_rf(TokenOp(body), (1, 16, 16))
    with pytest.raises(ValueError, match=r"node 'getitem_\d' does not depend on the input"):
        g.for_target(None)


def test_a_reshape_that_mixes_prefix_and_grid_tokens_is_refused_as_a_token_output():
    g = graph_rf(TokenOp(lambda m, t: _with_prefix(m, t).reshape(1, -1)), (1, 16, 16))
    with pytest.raises(ValueError, match=r"token outputs are not supported.*node 'reshape'"):
        g.for_target(None)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
def test_a_softmax_without_dim_on_tokens_runs_over_the_batch_so_a_token_reads_its_patch():
    # torch's implicit dim of a 3-D tensor is 0 (the batch), not the tokens: two samples make
    # the gradient of sample 0's token through the softmax nonzero, on its own patch only
    model = TokenOp(lambda m, t: m.softmax(t))
    rf = graph_rf(model, (1, 16, 16)).for_target("softmax")
    assert not rf.is_global and rf.size == (4, 4)
    x = (torch.rand(2, 1, 16, 16, dtype=torch.float64) + 0.5).requires_grad_()
    positive_float64(model)(x)[0, 1 * 4 + 2].sum().backward()
    assert rf.interval((1, 2)) == mask_bounds((x.grad[0, 0] != 0).numpy()) == ((4, 7), (8, 11))
