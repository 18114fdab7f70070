"""NAB scoring (models.nab) on small cases worked by hand from NAB's definition."""

import math

import numpy as np
import pytest

from models import nab


def sig(y):
    return 2 / (1 + math.exp(5 * y)) - 1


T = np.arange(100, dtype=float)  # one row per second
WIN = [(10, 19)]  # a 10-row window


def score(det, wins=WIN, profile="standard"):
    p = nab.raw_score(np.array(det, dtype=int), wins, profile)
    return p, nab.normalised([p])


def test_scaled_sigmoid_matches_nab_reference_points():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == -1.0


def test_windows_lie_to_the_right_and_overlapping_ones_merge():
    assert nab.windows(np.array([10]), T, 9.0) == [(10, 19)]
    assert nab.windows(np.array([10, 15, 50]), T, 9.0) == [(10, 24), (50, 59)]
    t = np.array([0, 1, 2, 5, 6, 20], dtype=float)  # a gap: the window is in seconds, not rows
    assert nab.windows(np.array([1]), t, 4.0) == [(1, 3)]


def test_perfect_null_and_late_detection():
    p, n = score([10])  # first row of the window: exactly A_tp
    assert p["raw"] == pytest.approx(1.0) and n == pytest.approx(100.0)
    p, n = score([])  # nothing detected: the null detector
    assert p["raw"] == -1.0 and n == 0.0 and p["fn"] == 1
    p, n = score([19])  # last row: y = -(19 - 19 + 1) / 10 = -0.1
    assert p["raw"] == pytest.approx(sig(-0.1) / sig(-1.0))
    assert n == pytest.approx(100 * (sig(-0.1) / sig(-1.0) + 1) / 2)  # 62.41
    assert n == pytest.approx(62.41, abs=0.01)


def test_only_the_earliest_detection_in_a_window_counts():
    p, _ = score([12, 13, 18])
    assert p["raw"] == pytest.approx(sig(-(19 - 12 + 1) / 10) / sig(-1.0)) and p["tp"] == 1 and p["fp"] == 0


def test_false_positives_before_and_after_a_window():
    p, n = score([5])  # before any window: -A_fp, and the window is missed: -A_fn
    assert p["raw"] == pytest.approx(-0.11 - 1.0) and n == pytest.approx(-5.5)
    p, _ = score([10, 21])  # 2 rows past the right edge of a 10-row window: y = 2 / 9
    assert p["raw"] == pytest.approx(1.0 + 0.11 * sig(2 / 9)) and p["fp"] == 1
    p, _ = score([10, 90])  # far past (y >= 3): the full -A_fp
    assert p["raw"] == pytest.approx(1.0 - 0.11)


@pytest.mark.parametrize("profile,fp_raw", [("standard", -0.11), ("low_fp", -0.22), ("low_fn", -0.11)])
def test_profiles(profile, fp_raw):
    a_tp, a_fp, a_fn = nab.PROFILES[profile]
    p, n = score([5], profile=profile)  # one FP before the window, the window missed
    assert p["raw"] == pytest.approx(fp_raw - a_fn)
    assert n == pytest.approx(100 * fp_raw / (a_tp + a_fn))
    assert score([], profile=profile)[1] == 0.0 and score([10], profile=profile)[1] == pytest.approx(100)


def test_low_fn_weighs_a_miss_double():
    p = nab.raw_score(np.array([]), [(10, 19), (50, 59)], "low_fn")
    assert p["raw"] == -4.0 and p["null"] == -4.0 and p["perfect"] == 2.0
    half = nab.raw_score(np.array([10]), [(10, 19), (50, 59)], "low_fn")
    assert nab.normalised([half]) == pytest.approx(100 * (1 - 2 + 4) / 6)


def test_corpus_normalisation_sums_files_before_normalising():
    a = nab.raw_score(np.array([10]), WIN, "standard")  # 100 alone
    b = nab.raw_score(np.array([]), [(10, 19), (30, 39), (50, 59)], "standard")  # 0 alone
    assert nab.normalised([a, b]) == pytest.approx(100 * (1 - 3 + 4) / 8)  # 25, not the mean 50
    assert nab.normalised([nab.raw_score(np.array([3]), [], "standard")]) is None


def test_changes_are_rises_and_falls():
    assert nab.changes(np.array([0, 0, 1, 1, 0, 1])).tolist() == [2, 4, 5]
    assert nab.changes(np.array([1, 1, 0])).tolist() == [2]
