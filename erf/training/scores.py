"""Segmentation scores from a confusion matrix. Pure numpy, no torch.

Convention: ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p`` (ignored
pixels are never counted).
"""

from __future__ import annotations

import numpy as np


def _matrix(cm) -> np.ndarray:
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square [K, K], got shape {cm.shape}")
    return cm


def pixel_accuracy(cm) -> float:
    """Correct pixels / counted pixels; NaN when nothing was counted."""
    cm = _matrix(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def class_iou(cm) -> np.ndarray:
    """Per-class intersection over union ``tp / (tp + fp + fn)``; NaN for a class that is
    neither present nor predicted (its union is empty)."""
    cm = _matrix(cm)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(cm) -> float:
    """Mean of ``class_iou`` over classes with a non-empty union (NaN if there are none)."""
    iou = class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
