"""Segmentation scores from confusion matrices, against hand-computed values."""

import math

import numpy as np
import pytest

from erf.training.scores import class_iou, mean_iou, pixel_accuracy

# rows: true class, columns: predicted class
CM = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])


def test_pixel_accuracy_is_the_trace_over_the_total():
    assert pixel_accuracy(CM) == pytest.approx(8 / 11)


def test_class_iou_is_tp_over_tp_fp_fn_and_nan_for_an_absent_class():
    iou = class_iou(CM)
    # class 0: tp 5, fn 1, fp 2 -> 5/8; class 1: tp 3, fn 2, fp 1 -> 3/6; class 2: empty union
    assert iou[0] == pytest.approx(5 / 8) and iou[1] == pytest.approx(1 / 2)
    assert math.isnan(iou[2])


def test_mean_iou_skips_classes_with_an_empty_union():
    assert mean_iou(CM) == pytest.approx((5 / 8 + 1 / 2) / 2)


def test_a_predicted_but_absent_class_counts_with_iou_zero():
    cm = np.array([[2, 2], [0, 0]])  # class 1 never true, predicted twice
    assert class_iou(cm).tolist() == [0.5, 0.0]
    assert mean_iou(cm) == pytest.approx(0.25)


def test_empty_and_malformed_matrices():
    assert math.isnan(pixel_accuracy(np.zeros((2, 2))))
    assert math.isnan(mean_iou(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="square"):
        pixel_accuracy(np.zeros((2, 3)))
