"""The state arena's step (models.runtime.Model.step on slots) against the old per-board step it replaced
(tests/models/reference_step.py): the same numbers bit for bit, NaN rows held, no state leaking between
boards when slots are freed and reused."""

import numpy as np
import pytest

from models import scenarios
from models.runtime import Model

from . import reference_step as ref

FIVE = ("normal", "outburst", "stuck_sensor", "spikes", "story")  # calm, a jump, s -> 0, spikes, the forecast


@pytest.fixture(scope="module")
def model():
    return Model()


def bits(a) -> bytes:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes()


def assert_same(model, got, want, slots=None):
    """Every output of one new step equals the old step's Results, bit for bit (NaN forecast included)."""
    names = model.spec.features
    assert bits(got.score) == bits([r.score for r in want])
    assert bits(got.forecast) == bits([r.forecast for r in want])
    assert got.ready.tolist() == [r.ready for r in want]
    assert got.anomalous.tolist() == [r.anomalous for r in want]
    assert [names[i] for i in got.top.tolist()] == [r.top_channel for r in want]


def assert_state_same(model, slot, st):
    a = model.arena
    assert a.hc[0, :, slot].tobytes() == st.h.tobytes() and a.hc[1, :, slot].tobytes() == st.c.tobytes()
    assert a.ewma[slot].tobytes() == st.ewma.tobytes() and int(a.count[slot]) == st.count
    if st.pred is not None:
        assert a.pred[slot].tobytes() == st.pred.tobytes()


@pytest.mark.parametrize("layout", ["gathered", "in place", "in place, state copied"])
def test_the_five_scenarios_score_bit_for_bit_as_the_old_step(model, layout):
    """"gathered": slots out of order and not from 0 (some allocated and freed first), so the step gathers and
    scatters; "in place": slots 0..4 in order, passed as a range whenever the boards stepping are a run of
    them, so the step reads and writes the arena's rows where they lie (the LSTM state bound to them in and
    out, where this onnxruntime allows it); "in place, state copied": the same with the state copied in and
    out (where it does not)."""
    data = np.stack([scenarios.make(name, 40 + i, duration_s=900).arrays() for i, name in enumerate(FIVE)])
    data[1, 300:310, 0] = np.nan  # a gas sensor fault, a flow channel gone infinite, and a reading at boot
    data[3, 500, 1] = np.inf
    data[4, 0] = np.nan
    taken, dropped = [], set()
    if layout == "gathered":
        taken = [model.alloc() for _ in range(9)]
        dropped = {1, 4, 5, 7, 8}
        for s in dropped:
            model.free(s)
        slots = np.array([model.alloc() for _ in range(5)])[::-1].copy()
    else:
        slots = np.array([model.alloc() for _ in range(5)])
        assert slots.tolist() == [0, 1, 2, 3, 4]
    states = [ref.State(model.spec) for _ in FIVE]
    rng = np.random.default_rng(5)
    aliasing = model._alias_ok()
    if layout == "in place":
        assert aliasing, "this onnxruntime no longer gives the same bits with the state bound in and out"
    model._aliasing = aliasing and layout == "in place"
    try:
        t = np.zeros(5, dtype=int)
        n = data.shape[1]
        while (t < n).any():
            # most rounds every board; some rounds a random subset (boards whose frame did not arrive yet)
            live = np.flatnonzero(t < n)
            u = rng.random()
            if u < 0.6:
                rows = live
            elif u < 0.8:  # a run of them (in place: a range that does not start at 0)
                a = rng.integers(0, live.size)
                rows = live[a:rng.integers(a + 1, live.size + 1)]
            else:
                rows = rng.permutation(live)[: rng.integers(1, live.size + 1)]
            x = data[rows, t[rows]]
            run = layout != "gathered" and rows.tolist() == list(range(rows[0], rows[-1] + 1))
            got = model.step(range(rows[0], rows[-1] + 1) if run else slots[rows], x)
            want = ref.step(model, [states[i] for i in rows], x)
            assert_same(model, got, want)
            t[rows] += 1
        for i in range(5):
            assert_state_same(model, slots[i], states[i])
        assert all(st.count > model.spec.warmup for st in states)
        assert any(st.last.anomalous for st in states)  # the comparison covered raised scores, not only calm
    finally:
        model._aliasing = aliasing
        for s in set(taken) - dropped | set(slots.tolist()):
            model.free(s)


def test_a_nan_row_leaves_the_slot_untouched_and_is_not_ready(model):
    x = scenarios.make("normal", 4, duration_s=300).arrays()
    a, b = model.alloc(), model.alloc()
    try:
        for t in range(200):
            model.step([a, b], np.stack([x[t], x[t]]))
        before = model.arena.hc[:, :, a].copy(), model.arena.row(a)
        last = model.step([a], x[200:201])
        for bad in ([np.nan, 900.0], [0.5, np.inf], [-np.inf, np.nan]):
            r = model.step([a, b], np.array([bad, x[200]]))
            assert not r.ready[0] and not r.anomalous[0] and r.ready[1]
            assert r.score[0] == last.score[0] and r.forecast[0] == last.forecast[0] and r.top[0] == last.top[0]
        after = model.arena.hc[:, :, a], model.arena.row(a)
        # the NaN rows changed nothing: the state is the one the valid sample at t=200 left
        stepped = model.arena.row(a)
        assert not np.array_equal(before[1], stepped)
        assert np.array_equal(after[1], stepped) and np.isfinite(after[0]).all()
        r = model.step([a], np.array([[np.nan, np.nan]]))
        assert not r.ready[0] and int(model.arena.count[a]) == 201
    finally:
        model.free(a)
        model.free(b)


def test_slots_freed_and_reused_under_a_random_schedule_never_leak_state(model):
    """Boards arrive, send, reboot or go away at random; each new board gets a slot (often one another board
    just left) and must score exactly as a fresh old-style State fed the same batches would, and close to the
    same samples scored alone in a fresh model."""
    rng = np.random.default_rng(15)
    pool = [scenarios.make(name, 100 + k, duration_s=400).arrays()
            for k, name in enumerate(rng.choice(scenarios.ANOMALIES + ["normal"], 24))]
    fresh = Model()  # a second model: its own arena, so the schedule below cannot disturb it
    live: dict[int, dict] = {}  # slot -> board
    finished: list[dict] = []
    next_id = 0
    grew = model.arena.capacity
    for tick in range(260):
        for _ in range(rng.integers(0, 3)):  # boards arrive (more at the start so the arena has to grow)
            if len(live) < (40 if tick < 60 else 12):
                series = pool[next_id % len(pool)]
                board = {"id": next_id, "x": series[rng.integers(0, 100):], "t": 0, "out": [],
                         "state": ref.State(model.spec)}
                slot = model.alloc()
                assert slot not in live
                live[slot] = board
                next_id += 1
        for slot in [s for s in live if rng.random() < 0.03 or live[s]["t"] >= len(live[s]["x"])]:
            finished.append(live.pop(slot))  # a reboot, a removed board, or its data ran out
            model.free(slot)
        due = [s for s in live if rng.random() < 0.9]
        if not due:
            continue
        rng.shuffle(due)
        x = np.array([live[s]["x"][live[s]["t"]] for s in due])
        got = model.step(due, x)
        want = ref.step(model, [live[s]["state"] for s in due], x)
        assert_same(model, got, want)
        for k, s in enumerate(due):
            live[s]["out"].append(got.score[k])
            live[s]["t"] += 1
    assert model.arena.capacity > grew and next_id > 60 and len(finished) > 40
    for board in finished + list(live.values()):
        if board["t"] >= 2:
            alone = fresh.score_series(board["x"][:board["t"]])["score"]
            np.testing.assert_allclose(board["out"], alone, rtol=1e-4, atol=1e-5)
    for s in list(live):
        model.free(s)
    assert model.arena.in_use == 0


def test_a_bad_slot_list_is_refused_before_any_state_changes(model):
    a = model.alloc()
    try:
        before = model.arena.row(a)
        with pytest.raises(ValueError, match="twice"):
            model.step([a, a], np.array([[0.5, 900.0], [0.5, 900.0]]))
        with pytest.raises(ValueError, match="not allocated"):
            model.step([a, a + 1], np.array([[0.5, 900.0], [0.5, 900.0]]))
        with pytest.raises(ValueError, match="out of range"):
            model.step([-1], np.array([[0.5, 900.0]]))
        assert np.array_equal(model.arena.row(a), before, equal_nan=True)
    finally:
        model.free(a)
    with pytest.raises(ValueError, match="not allocated"):
        model.free(a)


@pytest.mark.parametrize("iobinding", [True, False])
def test_io_binding_and_plain_run_give_the_same_bits(iobinding):
    m = Model(iobinding=iobinding)
    x = scenarios.make("spikes", 9, duration_s=200).arrays()
    slots = [m.alloc() for _ in range(3)]
    states = [ref.State(m.spec) for _ in range(3)]
    for t in range(200):
        rows = np.stack([x[t], x[(t + 50) % 200], x[(t + 100) % 200]])
        assert_same(m, m.step(slots, rows), ref.step(m, states, rows))
