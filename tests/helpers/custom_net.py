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
