"""A user-style model for the `model=custom` tests (importable with PYTHONPATH=tests)."""

from torch import nn


class TinyNet(nn.Module):
    """Two branches joined by a residual add, then a classifier head."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.body(x)
        return self.head(x)


class BranchyNet(nn.Module):
    """Data-dependent Python control flow (an ``if`` on a tensor value): torch.fx cannot trace
    it. Both branches are 3x3 convs after a 3x3 stem, so the TRF is 5x5 either way."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.a = nn.Conv2d(width, width, 3, padding=1)
        self.b = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        x = self.stem(x).tanh()
        return self.a(x) if x.mean() > 0 else self.b(x)
