"""``erf.analysis.draw_stats.pool_draws``: how draws are weighed when they are pooled."""

import numpy as np
import pytest

from erf.analysis.draw_stats import pool_draws
from erf.result import ERFResult


def _draw(m: np.ndarray, n: int = 4) -> ERFResult:
    """A draw of ``n`` samples whose per-sample maps all equal ``m``."""
    groups = np.stack([m * (n // 2), m * (n - n // 2)])
    return ERFResult(m * n, m**2 * n, n, (1, *m.shape), None, (1, *m.shape), (1, 1), None,
                     "abs", groups=groups, group_n=np.array([n // 2, n - n // 2]))  # fmt: skip


A = np.array([[0.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 0.0]])  # sum 6
B = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])  # sum 9


def test_gain_weighting_is_the_plain_mean_where_a_louder_draw_counts_more():
    pooled = pool_draws([_draw(A), _draw(10 * B)])
    np.testing.assert_allclose(pooled.map, (A + 10 * B) / 2)
    assert pooled.meta["draw_weight"] == "gain"


def test_equal_weighting_gives_every_draw_a_unit_sum_map_first():
    pooled = pool_draws([_draw(A), _draw(10 * B), _draw(0 * A)], "equal")
    np.testing.assert_allclose(pooled.map, (A / 6 + B / 9 + 0 * A) / 3)  # the dead draw stays 0
    np.testing.assert_allclose(pooled.groups[1], 4 * B / 9)  # its bootstrap group scaled alike
    assert pooled.meta["draw_weight"] == "equal"


def test_an_unknown_weighting_is_one_line_naming_the_option():
    with pytest.raises(ValueError, match=r"probe.draw_weight='loud' .* gain, equal"):
        pool_draws([_draw(A)], "loud")
