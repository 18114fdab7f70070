"""Windows + detector with the real shipped model and real ONNX Runtime: feature mapping by name, unit
checks (a mismatched board is not scored, with one warning), sampling per period, batching equals one by one."""

import logging

import numpy as np
import pytest

from edge.detector import Detector
from edge.frames import Reading
from edge.windows import Windows


@pytest.fixture(scope="module")
def detector():
    return Detector(threads=1)


def reading(device="b1", seq=0, uptime_ms=None, ch4=0.5, unit="VOL", flow=10.0, flow_unit="m3/min", state="NORMAL"):
    return Reading(device, seq, seq * 1000 if uptime_ms is None else uptime_ms, ch4, unit, flow, flow_unit, 1.0,
                   state, 1, 0, 0)


def test_features_follow_the_model_metadata_and_units_convert_exactly(detector):
    spec = detector.spec
    w = Windows(spec, detector.new_state)
    stream, row = w.add(reading(ch4=0.7, flow=12.0))
    assert len(row) == len(spec.features)
    values = {"ch4": 0.7, "flow": 12.0 if spec.units[spec.features.index("flow")] == "m3/min" else 12000.0}
    assert row == [values[f] for f in spec.features]
    # the same flow sent in L/min is converted to the model's m3/min
    _, row2 = w.add(reading(device="b2", ch4=0.7, flow=12000.0, flow_unit="L/min"))
    assert row2 == pytest.approx(row)
    _, row3 = w.add(reading(device="b3", ch4=None))
    assert np.isnan(row3[spec.features.index("ch4")])


def test_a_board_whose_units_do_not_match_gets_no_scoring_and_one_warning(detector, caplog):
    w = Windows(detector.spec, detector.new_state)
    with caplog.at_level(logging.WARNING, logger="firedamp.windows"):
        for i in range(3):
            assert w.add(reading(device="plant", seq=i, unit="LEL", ch4=12.0)) is None
    assert w.unscored == 3
    warnings = [r for r in caplog.records if "plant" in r.getMessage()]
    assert len(warnings) == 1 and "%lel" in warnings[0].getMessage() and "%vol" in warnings[0].getMessage()


def test_extra_frames_inside_a_period_are_not_fed_and_a_long_gap_restarts_the_state(detector):
    w = Windows(detector.spec, detector.new_state, max_gap_samples=5)
    assert w.add(reading(seq=0, uptime_ms=1000)) is not None
    assert w.add(reading(seq=1, uptime_ms=1100, state="ALARM")) is None  # sent at once on a state change
    assert w.add(reading(seq=2, uptime_ms=2000)) is not None
    first = w.streams["b1"].state
    assert w.add(reading(seq=3, uptime_ms=60_000)) is not None
    assert w.streams["b1"].state is not first and w.resets == 1


def test_batched_scoring_equals_scoring_each_device_alone(detector):
    rng = np.random.default_rng(1)
    n_dev, steps = 6, 80
    data = [[(0.4 + 0.05 * rng.standard_normal(), 10 + rng.standard_normal()) for _ in range(steps)] for _ in range(n_dev)]
    wb = Windows(detector.spec, detector.new_state)
    batched = {d: [] for d in range(n_dev)}
    for t in range(steps):
        due = [wb.add(reading(device=f"d{d}", seq=t, ch4=data[d][t][0], flow=data[d][t][1])) for d in range(n_dev)]
        for d, r in enumerate(detector.score(due)):
            batched[d].append(r.score)
    calls_batched = detector.calls
    for d in range(n_dev):
        ws = Windows(detector.spec, detector.new_state)
        alone = [detector.score([ws.add(reading(device="x", seq=t, ch4=data[d][t][0], flow=data[d][t][1]))])[0].score
                 for t in range(steps)]
        assert alone == pytest.approx(batched[d], rel=1e-4, abs=1e-5)
    assert calls_batched == steps  # one ONNX Runtime call per round for all six devices


def test_two_samples_of_one_device_in_a_batch_are_scored_in_order(detector):
    w = Windows(detector.spec, detector.new_state)
    due = [w.add(reading(seq=0)), w.add(reading(seq=1)), w.add(reading(device="b2", seq=0))]
    before = detector.calls
    out = detector.score(due)
    assert len(out) == 3 and detector.calls - before == 2
    assert w.streams["b1"].state.count == 2
