"""Toy graphs for tests/rf/test_graph.py.

The ``TFNet*`` modules are fresh PyTorch ports of the test networks of google-research/
receptive_field (receptive_field/python/util/receptive_field_computation_test.py and
graph_compute_order_test.py). TF's 'VALID' is PyTorch's padding 0; TF's input-size-dependent
'SAME' padding (total = max((ceil(n/s) - 1) s + k - n, 0), total // 2 on the left/top) is
emulated by ``TFSame``, which computes the pads from the input shape inside forward, so the
graph analysis must read shape arithmetic done during the trace. Each docstring gives the
expected (RF, effective stride, effective padding) as (rows, cols) where they differ.
"""

import torch
import torch.nn.functional as F
from torch import fx, nn


def conv(k, s=1, p=0, d=1, cin=1, cout=1):
    return nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, bias=False)


def tf_same_pads(n_h: int, n_w: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """F.pad tuple (left, right, top, bottom) of TF 'SAME' for an n_h x n_w input."""

    def one(n: int) -> tuple[int, int]:
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        return total // 2, total - total // 2

    (top, bottom), (left, right) = one(n_h), one(n_w)
    return (left, right, top, bottom)


fx.wrap("tf_same_pads")  # a leaf function for fx: its result is shape arithmetic


class TFSame(nn.Module):
    """A VALID conv/max-pool ``op`` behind TF 'SAME' padding computed from the input size."""

    def __init__(self, op: nn.Module, kernel: int, stride: int, value: float = 0.0):
        super().__init__()
        self.op, self.kernel, self.stride, self.value = op, kernel, stride, value

    def forward(self, x):
        pads = tf_same_pads(x.shape[-2], x.shape[-1], self.kernel, self.stride)
        return self.op(F.pad(x, pads, value=self.value))


class TFNet1(nn.Module):
    """create_test_network_1 (aligned): L1 conv1 s4 | pad(1,0) + L2 conv3 s2 + L3 conv1 s2, add.

    Left [4u, 4u], right [4u-1, 4u+1]: RF 3, stride 4, padding 1. ``pool=True`` is network 2
    (L2/L3 max pools, same numbers), ``dropout=True`` network 6 (dropout on the right branch),
    ``assert_shape=True`` network 7 (an assert on L1's shape, for an 8x8 input).
    """

    def __init__(self, pool=False, dropout=False, assert_shape=False):
        super().__init__()
        self.l1 = conv(1, 4)
        self.l2 = nn.MaxPool2d(3, 2) if pool else conv(3, 2)
        self.l3 = nn.MaxPool2d(1, 2) if pool else conv(1, 2)
        self.dropout = nn.Dropout() if dropout else nn.Identity()
        self.assert_shape = assert_shape

    def forward(self, x):
        left = self.l1(x)
        if self.assert_shape:
            torch._assert(left.shape[2] == 2, "L1 output must be 2x2")
        right = self.dropout(self.l3(self.l2(F.pad(x, (1, 0, 1, 0)))))
        return torch.relu(left + right)


class TFNet3(nn.Module):
    """create_test_network_3 (misaligned): pad(2,1) + L1 conv5 s2 | L2 conv3 + L3 conv3, add.

    Left [2u-2, 2u+2] (stride 2), right [u, u+4] (stride 1): must raise "not aligned".
    """

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = conv(5, 2), conv(3), conv(3)

    def forward(self, x):
        return torch.relu(self.l1(F.pad(x, (2, 1, 2, 1))) + self.l3(self.l2(x)))


class TFNet4(nn.Module):
    """create_test_network_4: L1 conv1 s4 | L2 conv3 s2 'SAME' + L3 conv1 s2, add.

    9x9 input: SAME pads 1 on the left, right branch [4u-1, 4u+1]: RF 3, stride 4, padding 1.
    8x8 input: SAME pads 0 on the left, right branch [4u, 4u+2]: not aligned.
    """

    def __init__(self):
        super().__init__()
        self.l1 = conv(1, 4)
        self.l2 = TFSame(conv(3, 2), 3, 2)
        self.l3 = conv(1, 2)

    def forward(self, x):
        return torch.relu(self.l1(x) + self.l3(self.l2(x)))


class TFNet5(nn.Module):
    """create_test_network_5 (non-square): conv [3, 5] s2 then conv [3, 1] s2, VALID.

    Rows 3 + 2*2 = 7, cols 5 + 0 = 5; stride 4, padding 0 (TF's x is our cols).
    """

    def __init__(self):
        super().__init__()
        self.l1, self.l2 = conv((3, 5), 2), conv((3, 1), 2)

    def forward(self, x):
        return torch.relu(self.l2(self.l1(x)))


class TFNet8(nn.Module):
    """create_test_network_8: network 1, then L5 conv1 s2 | pad(1,0) + L6 conv3 s2, add.

    L5 [8u-1, 8u+1], L6 [8u-5, 8u+5]: RF 11, stride 8, padding 5. Paths (per axis):
    L1-L5 1, L2L3-L5 3, L1-L6 1 + 2*4 = 9, L2L3-L6 3 + 2*4 = 11, one each.
    ``same=True`` is network 9 (every layer TF 'SAME', no explicit pads; 17x17 input).
    """

    def __init__(self, same=False):
        super().__init__()
        wrap = (lambda op, k, s: TFSame(op, k, s)) if same else (lambda op, k, s: op)
        self.same = same
        self.l1 = wrap(conv(1, 4), 1, 4)
        self.l2 = wrap(conv(3, 2), 3, 2)
        self.l3 = wrap(conv(1, 2), 1, 2)
        self.l5 = wrap(conv(1, 2), 1, 2)
        self.l6 = wrap(conv(3, 2), 3, 2)

    def forward(self, x):
        pad = (lambda t: t) if self.same else (lambda t: F.pad(t, (1, 0, 1, 0)))
        l4 = torch.relu(self.l1(x) + self.l3(self.l2(pad(x))))
        return torch.relu(self.l5(l4) + self.l6(pad(l4)))


class TFComputeOrderNet(nn.Module):
    """graph_compute_order_test.create_test_network: L1 conv1 s4 | L2_pad + L2 conv3 s2 + L3
    max-pool 3 s2 'SAME', L4 relu(add), L5 conv1 s2 'SAME' | L6 conv3 s2 'SAME', L7 add.

    At 224: L1 56, L2_pad 225, L2 112, L3 56, L4 56, L5 28, L6 28, L7 28 (the TF test's output
    sizes). Not aligned at L4: left [4u, 4u], right [4u-1, 4u+5] (the TF test only checks the
    order and sizes).
    """

    def __init__(self):
        super().__init__()
        self.l1 = conv(1, 4)
        self.l2_pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.l2 = conv(3, 2)
        self.l3 = TFSame(nn.MaxPool2d(3, 2), 3, 2, value=float("-inf"))
        self.l4 = nn.ReLU()
        self.l5 = TFSame(conv(1, 2), 1, 2)
        self.l6 = TFSame(conv(3, 2), 3, 2)

    def forward(self, x):
        l4 = self.l4(self.l1(x) + self.l3(self.l2(self.l2_pad(x))))
        return self.l5(l4) + self.l6(l4)


class ResidualStack(nn.Module):
    """``n`` blocks x + conv3(x) (padding 1): path spans 2j + 1 with C(n, j) paths."""

    def __init__(self, n: int):
        super().__init__()
        self.convs = nn.ModuleList(conv(3, 1, 1) for _ in range(n))

    def forward(self, x):
        for c in self.convs:
            x = x + c(x)
        return x


class SEBlock(nn.Module):
    """conv3 -> squeeze-excitation gate (global average, 1x1 convs, sigmoid) -> conv3."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = conv(3, 1, 1, cout=4), conv(3, 1, 1, cin=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 1), nn.Sigmoid())

    def forward(self, x):
        y = self.conv1(x)
        return self.conv2(y * self.fc(self.pool(y)))


class Classifier(nn.Module):
    """conv3 s2 -> adaptive average pool to 1 -> flatten -> linear."""

    def __init__(self):
        super().__init__()
        self.conv = conv(3, 2, 1, cout=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


class ChannelsLast(nn.Module):
    """ConvNeXt-style block on a transposed map: rows and cols are swapped, so the (3, 1)
    kernel of ``conv`` runs along image cols; then permute to channels-last, LayerNorm and
    Linear over channels, GELU, permute back, residual add with the (un-transposed) input.

    Per image axis: rows [u, u] from ``conv``'s kernel width 1, cols [u-1, u+1]: TRF (1, 3)
    from the block branch; the skip adds [u, u]: hull (1, 3), stride 1, padding (0, 1).
    """

    def __init__(self, channels: int = 4):  # LayerNorm over 2 channels outputs +-1: no gradient
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0), bias=False)
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, channels)

    def forward(self, x):
        y = self.conv(x.transpose(2, 3)).transpose(2, 3)
        y = self.fc(self.norm(y.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + torch.nn.functional.gelu(y)


class SliceCat(nn.Module):
    """Spatial slicing and concatenation: every other column from col 1, a conv, then the
    first four rows glued below the map (cat along height)."""

    def __init__(self):
        super().__init__()
        self.conv = conv(3, 1, 1)

    def forward(self, x):
        y = self.conv(x[:, :, :, 1::2])
        return torch.cat([y, y[:, :, :4]], dim=2)


class CumSum(nn.Module):
    """torch.cumsum along the rows of the feature map: no receptive-field rule."""

    def forward(self, x):
        return torch.cumsum(x, dim=2)


class DataDependent(nn.Module):
    """Control flow on tensor values: torch.fx cannot trace it."""

    def forward(self, x):
        return x if x.sum() > 0 else -x


class TwoCalls(nn.Module):
    """The same conv module applied twice."""

    def __init__(self):
        super().__init__()
        self.conv = conv(3, 1, 1)

    def forward(self, x):
        return self.conv(self.conv(x))


class ChunkCat(nn.Module):
    """ShuffleNet-style unit on 4 channels: two pass, two go through conv3; concatenated and
    channel-shuffled. TRF: hull of the identity and conv paths = 3 x 3."""

    def __init__(self):
        super().__init__()
        self.conv = conv(3, 1, 1, cin=2, cout=2)
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return self.shuffle(torch.cat([a, self.conv(b)], dim=1))


class UNet(nn.Module):
    """One U-Net level: fine = conv3; coarse = conv3 s2 of fine, upsampled x2 (``mode``);
    cat(fine, coarse) along channels -> conv3. With nearest upsampling the coarse branch's
    centre 2 (u // 2) meets the fine branch's u on even units (period 2): aligned. Bilinear
    (align_corners=False) samples coarse positions u/2 - 1/4: half a fine pixel off, not aligned.
    """

    def __init__(self, mode: str = "nearest"):
        super().__init__()
        self.fine, self.down = conv(3, 1, 1, cout=2), conv(3, 2, 1, cin=2, cout=2)
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.head = conv(3, 1, 1, cin=4)

    def forward(self, x):
        fine = self.fine(x)
        return self.head(torch.cat([fine, self.up(self.down(fine))], dim=1))


def numpy_gain(weight: torch.Tensor) -> torch.Tensor:
    """A gain computed through numpy: impossible on the meta device."""
    return torch.as_tensor(weight.detach().abs().numpy().mean() * 0 + 1.0)


fx.wrap("numpy_gain")


class NumpyGain(nn.Module):
    """conv3 scaled by a gain computed with numpy from its own weight (a constant)."""

    def __init__(self):
        super().__init__()
        self.conv = conv(3, 1, 1)

    def forward(self, x):
        return self.conv(x) * numpy_gain(self.conv.weight)
