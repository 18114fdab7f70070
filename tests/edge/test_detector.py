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
    w = Windows(spec, detector)
    stream, row = w.add(reading(ch4=0.7, flow=12.0))
    assert len(row) == len(spec.features)
    values = {"ch4": 0.7, "flow": 12.0 if spec.units[spec.features.index("flow")] == "m3/min" else 12000.0}
    assert list(row) == [values[f] for f in spec.features]  # a tuple when no unit needs converting
    # the same flow sent in L/min is converted to the model's m3/min
    _, row2 = w.add(reading(device="b2", ch4=0.7, flow=12000.0, flow_unit="L/min"))
    assert row2 == pytest.approx(row)
    _, row3 = w.add(reading(device="b3", ch4=None))
    assert np.isnan(row3[spec.features.index("ch4")])


def test_a_board_whose_units_do_not_match_gets_no_scoring_and_one_warning(detector, caplog):
    w = Windows(detector.spec, detector)
    with caplog.at_level(logging.WARNING, logger="firedamp.windows"):
        for i in range(3):
            assert w.add(reading(device="plant", seq=i, unit="LEL", ch4=12.0)) is None
    assert w.unscored == 3
    warnings = [r for r in caplog.records if "plant" in r.getMessage()]
    assert len(warnings) == 1 and "%lel" in warnings[0].getMessage() and "%vol" in warnings[0].getMessage()


def test_extra_frames_inside_a_period_are_not_fed_and_a_long_gap_restarts_the_state(detector):
    w = Windows(detector.spec, detector, max_gap_samples=5)
    assert w.add(reading(seq=0, uptime_ms=1000)) is not None
    assert w.add(reading(seq=1, uptime_ms=1100, state="ALARM")) is None  # sent at once on a state change
    assert w.add(reading(seq=2, uptime_ms=2000)) is not None
    slot = w.streams["b1"].slot
    assert detector.model.arena.count[slot] == 0  # not scored yet: add() only prepares the row
    detector.score([w.add(reading(seq=4, uptime_ms=3000))])
    assert detector.model.arena.count[slot] == 1
    stream, _ = w.add(reading(seq=3, uptime_ms=60_000))
    assert w.resets == 1 and detector.model.arena.count[stream.slot] == 0  # a fresh slot (maybe the same number)
    stream, _ = w.add(reading(seq=5, uptime_ms=100))  # a reboot: uptime went back
    assert w.resets == 2 and detector.model.arena.count[stream.slot] == 0


def test_batched_scoring_equals_scoring_each_device_alone(detector):
    rng = np.random.default_rng(1)
    n_dev, steps = 6, 80
    data = [[(0.4 + 0.05 * rng.standard_normal(), 10 + rng.standard_normal()) for _ in range(steps)] for _ in range(n_dev)]
    wb = Windows(detector.spec, detector)
    batched = {d: [] for d in range(n_dev)}
    before = detector.calls
    for t in range(steps):
        due = [wb.add(reading(device=f"d{d}", seq=t, ch4=data[d][t][0], flow=data[d][t][1])) for d in range(n_dev)]
        for d, r in enumerate(detector.score(due)):
            batched[d].append(r.score)
    calls_batched = detector.calls - before
    for d in range(n_dev):
        ws = Windows(detector.spec, detector)
        alone = [detector.score([ws.add(reading(device="x", seq=t, ch4=data[d][t][0], flow=data[d][t][1]))])[0].score
                 for t in range(steps)]
        assert alone == pytest.approx(batched[d], rel=1e-4, abs=1e-5)
    assert calls_batched == steps  # one ONNX Runtime call per round for all six devices


def test_two_samples_of_one_device_in_a_batch_are_scored_in_order(detector):
    w = Windows(detector.spec, detector)
    due = [w.add(reading(seq=0)), w.add(reading(seq=1)), w.add(reading(device="b2", seq=0))]
    before = detector.calls
    out = detector.score(due)
    assert len(out) == 3 and detector.calls - before == 2
    assert detector.model.arena.count[w.streams["b1"].slot] == 2
    assert out[0].ready is False and out[1].score != out[0].score  # the second sample saw the first's state


def test_results_are_arrays_and_each_row_reads_as_a_result(detector):
    w = Windows(detector.spec, detector)
    due = [w.add(reading(device=f"r{i}", ch4=0.4 + 0.1 * i)) for i in range(4)]
    out = detector.score(due)
    assert len(out) == 4 and out.arrays.score.shape == (4,) and out.arrays.ready.dtype == bool
    r = out[2]
    assert r.score == out.arrays.score[2] and r.threshold == detector.spec.threshold
    assert r.forecast == out.arrays.forecast[2] and r.top_channel in detector.spec.features
    assert type(r.score) is float and type(r.ready) is bool  # what the policy and the JSON payload expect
    assert out.as_list() == [out[k] for k in range(4)]  # the pipeline's way: all rows at once


def test_a_board_that_falls_silent_gives_its_slot_back(detector):
    w = Windows(detector.spec, detector, max_gap_samples=5)
    arena = detector.model.arena
    in_use = arena.in_use
    for i in range(3):
        w.add(reading(device=f"s{i}"), t=1000.0)
    assert arena.in_use == in_use + 3
    for k in range(1, 200):  # s0 keeps sending; s1 and s2 went away (removed, or powered off)
        w.add(reading(device="s0", seq=k), t=1000.0 + k)
    assert w.expired == 2 and set(w.streams) == {"s0"} and arena.in_use == in_use + 1
    stream, _ = w.add(reading(device="s1", seq=500), t=1210.0)  # it comes back: a fresh stream
    assert arena.count[stream.slot] == 0 and arena.in_use == in_use + 2


@pytest.mark.parametrize("order", ["same order each round", "uneven"])
def test_a_batch_of_many_rounds_scores_exactly_as_its_rounds_one_by_one(order):
    """A batch of several samples per board (a 512-line batch of 32 boards is 16 rounds): the same bits as
    handing the detector each round as its own batch, whether the boards' rows repeat in one order (one slot
    list for every round) or not (rounds found row by row)."""
    rng = np.random.default_rng(3)
    boards, rounds = 5, 6
    rows = [[(f"d{d}", t, float(0.4 + 0.05 * rng.standard_normal()), float(10 + rng.standard_normal()))
             for d in range(boards)] for t in range(rounds)]
    if order == "uneven":
        for t in range(rounds):
            rng.shuffle(rows[t])
        rows[-1] = rows[-1][:3]  # two boards have one sample fewer
    got, want = Detector(), Detector()
    wg, ww = Windows(got.spec, got), Windows(want.spec, want)
    batch = [wg.add(reading(device=d, seq=t, ch4=c, flow=f)) for rnd in rows for d, t, c, f in rnd]
    before = got.calls
    out = got.score(batch)
    assert got.calls - before == rounds
    expected = []
    for rnd in rows:
        expected += list(want.score([ww.add(reading(device=d, seq=t, ch4=c, flow=f)) for d, t, c, f in rnd]))
    assert [tuple(r) for r in out] == [tuple(r) for r in expected]
