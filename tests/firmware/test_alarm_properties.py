"""Property tests (hypothesis) on the alarm state machine and the settings parser (CPython)."""

import alarm
import settings
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

PROFILES = [n for n in settings.PROFILE_NAMES if n != "custom"]


@st.composite
def levels(draw):
    name = draw(st.sampled_from(PROFILES + ["custom"]))
    if name != "custom":
        return alarm.profile_levels(name, {})
    r = draw(st.integers(10, 400))
    a = draw(st.integers(r, 400))
    p = draw(st.integers(a, 400))
    return ("VOL", a, a, p, r, draw(st.booleans()))


FAULTS = [0] * 30 + [1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100]  # faults are rare: they latch
MOSTLY = [True] * 9 + [False]


@st.composite
def scenario(draw):
    """Levels, then up to 80 iterations whose readings cluster on those levels (where bugs live)."""
    lv = draw(levels())
    _unit, warn, al, off, rest, _auto = lv
    near = [v + d for v in (warn, al, off, rest) for d in (-1, 0, 1)]
    reading = st.one_of(st.sampled_from(near), st.integers(-60, 2500))
    # one loop iteration's inputs: reading (hundredths), valid, fault mask, warming, low flow, ack request
    step = st.tuples(reading, st.sampled_from(MOSTLY), st.sampled_from(FAULTS),
                     st.sampled_from(MOSTLY).map(lambda b: not b), st.booleans(), st.booleans())
    return lv, draw(st.lists(step, min_size=1, max_size=80))


@hsettings(max_examples=400, deadline=None)
@given(scenario())
def test_alarm_invariants(case):
    lv, seq = case
    a = alarm.Alarm()
    a.set_levels(*lv)
    for x, valid, faults, warming, flow_low, ack in seq:
        was_latched = a.latched
        if ack:
            a.request_ack(x, valid, faults)
        a.update(x, valid, faults, warming, flow_low)
        if faults:                                   # any fault cuts
            assert a.relay == 0 and a.state == alarm.FAULT
        if valid and not warming and x >= a.poweroff:  # always cuts at or above power-off
            assert a.relay == 0
        if was_latched and a.relay == 1:             # never restores at or above the restore level
            assert valid and x < a.restore and (ack or a.auto)
        if a.restored:
            assert x < a.restore
        if a.relay == 1:                             # power only with a valid, fault-free, settled reading
            assert valid and not faults and not warming and x < a.poweroff
        if warming or not valid:
            assert a.relay == 0


@hsettings(max_examples=300, deadline=None)
@given(st.sampled_from(settings.KEYS), st.text(max_size=12))
def test_settings_parse_accepts_only_values_in_range(key, text):
    row = settings.row_of(key)
    try:
        value = settings.parse(key, text)
    except ValueError as exc:
        assert str(exc).startswith(key + " must be ")
        return
    kind, lo, hi = row[1], row[3], row[4]
    if kind in (0, 1):
        assert lo <= value <= hi
    elif kind == 3:
        assert value in lo
    else:
        assert lo <= len(value) <= hi
