"""Peaks-over-threshold calibration extrapolates the tail of normal scores to a rare-exceedance level."""

import math

import numpy as np
import pytest

from models.threshold import pot_threshold


@pytest.mark.parametrize("risk", [1e-3, 1e-4, 1e-5])
def test_exponential_tail_matches_the_true_quantile(risk):
    s = np.random.default_rng(0).exponential(1.0, 200_000)
    assert pot_threshold(s, risk=risk) == pytest.approx(-math.log(risk), rel=0.1)


def test_threshold_is_above_almost_all_normal_scores_and_needs_enough_data():
    s = np.abs(np.random.default_rng(1).normal(size=50_000))
    thr = pot_threshold(s, risk=1e-5)
    assert (s > thr).mean() < 1e-4
    with pytest.raises(ValueError, match="at least 50"):
        pot_threshold(np.ones(10))
