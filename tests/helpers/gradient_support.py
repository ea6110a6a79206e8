"""The gradient-support oracle of the graph tests: a float64 copy whose weights cannot cancel."""

import numpy as np
import torch
from torch import nn


def positive_float64(model: nn.Module) -> nn.Module:
    """``model`` in float64 eval mode with every parameter in [0.5, 1.5] / fan-in (scores of an
    attention stay small: a saturated softmax would flush the gradient to zero; nothing
    cancels). Changes ``model`` in place and returns it."""
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_((torch.rand_like(p) + 0.5) / fan_in)
    return model


def mask_bounds(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Inclusive (rows, cols) bounding box of the True pixels of a 2-D mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


def support_boxes(model: nn.Module, shape: tuple[int, ...], units) -> list:
    """Per unit (row, col) of the model's [1, C', H', W'] output: the bounding box of the input
    pixels its gradient reaches, in a ``positive_float64`` copy on a positive input of
    ``shape`` (C, H, W). Changes ``model`` in place."""
    model = positive_float64(model)
    x = (torch.rand(1, *shape, dtype=torch.float64) + 0.5).requires_grad_()
    y = model(x)
    boxes = []
    for r, c in units:
        (grad,) = torch.autograd.grad(y[0, :, r, c].sum(), x, retain_graph=True)
        boxes.append(mask_bounds((grad[0].abs().sum(0) != 0).numpy()))
    return boxes
