"""The scenario simulator: reproducible by seed, plausible physics, and a label span for every anomaly."""

import numpy as np
import pytest

from models import scenarios
from models.metrics import runs


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (scenarios.make("ventilation_loss", s, duration_s=1800) for s in (3, 3, 4))
    assert np.array_equal(a.ch4, b.ch4) and np.array_equal(a.flow, b.flow) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.ch4, c.ch4)


def test_unknown_name_and_bad_period_are_refused():
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        scenarios.make("nope")
    with pytest.raises(ValueError, match="period_s"):
        scenarios.make("normal", period_s=0)


def test_normal_has_no_labels_and_stays_in_a_plausible_range():
    sc = scenarios.make("normal", 0, duration_s=8 * 3600)
    assert sc.label.sum() == 0
    assert 0.1 < sc.ch4.min() and sc.ch4.max() < 1.0  # below the board's 1 % alarm
    assert 600 < sc.flow.min() and sc.flow.max() < 1400
    # production shifts: emission (and so CH4) rises and falls by more than the sensor noise
    assert np.percentile(sc.ch4, 95) - np.percentile(sc.ch4, 5) > 0.1


@pytest.mark.parametrize("name", scenarios.ANOMALIES)
def test_every_anomaly_has_one_label_span_starting_at_its_onset(name):
    sc = scenarios.make(name, 7, duration_s=3 * 3600)
    spans = runs(sc.label.astype(bool))
    assert len(spans) >= 1
    onset = int(sc.info["onset_s"] / sc.period_s)
    assert spans[0][0] == onset
    assert sc.label[:onset].sum() == 0
    s = sc.sample(onset * sc.period_s)
    assert (s.label, s.event) == (1, name)
    assert sc.sample(0).event == ""


def test_ventilation_loss_flow_drops_first_then_methane_climbs():
    sc = scenarios.make("ventilation_loss", 2, duration_s=3 * 3600)
    i0 = int(sc.info["onset_s"])
    before_flow, before_ch4 = sc.flow[i0 - 300:i0].mean(), sc.ch4[i0 - 300:i0].mean()
    flow_low = np.flatnonzero(sc.flow[i0:] < 0.8 * before_flow)[0]
    ch4_high = np.flatnonzero(sc.ch4[i0:] > before_ch4 + 0.2)[0]
    assert flow_low < ch4_high
    assert sc.ch4[i0:].max() > 1.0  # a slow accumulation that reaches the board's alarm


def test_drainage_leak_raises_flow_and_lowers_methane():
    sc = scenarios.make("drainage_leak", 1, duration_s=3 * 3600)
    i0, i1 = int(sc.info["onset_s"]), int(sc.info["restore_s"])
    mid = slice(i0 + (i1 - i0) // 2, i1)
    assert sc.flow[mid].mean() > 1.15 * sc.flow[i0 - 600:i0].mean()
    assert sc.ch4[mid].mean() < sc.ch4[i0 - 600:i0].mean()


def test_stuck_sensor_repeats_one_value_while_labelled():
    sc = scenarios.make("stuck_sensor", 0, duration_s=3 * 3600)
    s, e = runs(sc.label.astype(bool))[0]
    stuck_end = int(sc.info["restore_s"])
    assert np.unique(sc.ch4[s:stuck_end]).size == 1
    assert np.unique(sc.ch4[s - 600:s]).size > 3  # the live sensor flickers with noise


def test_sensor_readings_have_the_board_resolution():
    sc = scenarios.make("normal", 5, duration_s=600)
    assert np.allclose(sc.ch4, np.round(sc.ch4, 2))
    assert np.allclose(sc.flow, np.round(sc.flow, 1))


@pytest.mark.parametrize("duration", [300.0, 900.0, 3600.0])
def test_story_passes_one_and_one_and_a_half_percent_then_recovers(duration):
    sc = scenarios.make("story", 0, duration_s=duration)
    peak = int(np.argmax(sc.ch4))
    i0 = int(sc.info["onset_s"] / sc.period_s)
    assert sc.ch4[:i0].max() < 1.0
    flow_drop = np.flatnonzero(sc.flow[i0:] < 0.6 * sc.flow[:i0].mean())[0] + i0
    above_1 = np.flatnonzero(sc.ch4 >= 1.0)[0]
    assert flow_drop < above_1 < np.flatnonzero(sc.ch4 >= 1.5)[0] < peak
    assert sc.ch4[-1] < 1.0  # ventilation restored, methane back below the alarm
    assert abs(sc.duration_s - duration) < 1e-6


def test_sample_at_time_t_matches_the_arrays_at_any_period():
    sc = scenarios.make("spikes", 2, period_s=0.5, duration_s=600)
    assert len(sc) == 1200
    for t in (0.0, 0.49, 0.5, 123.7, 599.9, 10_000.0):
        i = min(int(t / 0.5), len(sc) - 1)
        s = sc.sample(t)
        assert (s.ch4, s.flow, s.label) == (sc.ch4[i], sc.flow[i], sc.label[i])
