"""Alarm state machine: every profile row of the regulation table, latching, acknowledgement, faults."""

import alarm

# the table, in % CH4: (profile, alarm at, power-off at, restore below)
TABLE = (
    ("coal_face", 1.00, 1.50, 1.00),
    ("return_airway", 1.00, 1.00, 1.00),
    ("heading_face", 1.00, 1.50, 1.00),
    ("intake_air", 0.50, 0.50, 0.50),
    ("drainage", 2.50, 2.50, 2.50),
)


def make(name, settings=None):
    a = alarm.Alarm()
    a.set_levels(*alarm.profile_levels(name, settings or {}))
    return a


def feed(a, x, faults=0, flow_low=False):
    a.update(x, True, faults, False, flow_low)
    return a.state, a.relay


def test_every_mine_profile_row():
    for name, at, off, restore in TABLE:
        a_, off_, rest_ = int(round(at * 100)), int(round(off * 100)), int(round(restore * 100))
        a = make(name)
        assert a.unit == "VOL"
        assert feed(a, a_ - 1) == (alarm.NORMAL, 1), name
        if off_ > a_:
            assert feed(a, a_) == (alarm.ALARM, 1), name
            assert feed(a, off_ - 1) == (alarm.ALARM, 1), name
        assert feed(a, off_) == (alarm.POWEROFF, 0), name
        # latched: falling to the restore level is not enough, nor is below it without an ack
        assert feed(a, rest_) == (alarm.POWEROFF, 0), name
        assert not a.ack_awaited
        assert feed(a, rest_ - 1) == (alarm.POWEROFF, 0), name
        assert a.ack_awaited
        assert a.request_ack(rest_ - 1, True, 0) is None
        assert feed(a, rest_ - 1) == (alarm.NORMAL, 1), name
        assert a.restored


def test_ack_refused_at_or_above_restore_and_when_nothing_latched():
    a = make("coal_face")
    assert "nothing to acknowledge" in a.request_ack(50, True, 0)
    feed(a, 150)
    err = a.request_ack(100, True, 0)
    assert err is not None and "below the restore level 1.00" in err
    feed(a, 100)
    assert a.state == alarm.POWEROFF
    assert "fault" in a.request_ack(50, True, 0x0001)


def test_ack_lapses_if_the_reading_rises_again():
    a = make("coal_face")
    feed(a, 160)
    feed(a, 90)
    assert a.request_ack(90, True, 0) is None
    assert feed(a, 120) == (alarm.POWEROFF, 0)   # ack consumed by an update above restore
    assert feed(a, 90) == (alarm.POWEROFF, 0)    # needs a new one


def test_plant_profile_in_lel():
    a = make("plant")
    assert a.unit == "LEL"
    assert feed(a, 999) == (alarm.NORMAL, 1)
    assert feed(a, 1000) == (alarm.WARNING, 1)   # low alarm 10 % LEL
    assert feed(a, 1999) == (alarm.WARNING, 1)
    assert feed(a, 2000) == (alarm.POWEROFF, 0)  # high alarm and trip 20 % LEL
    assert feed(a, 1500) == (alarm.POWEROFF, 0)
    assert feed(a, 999) == (alarm.POWEROFF, 0) and a.ack_awaited


def test_custom_profile_and_auto_restore():
    s = {"ch4_alarm_pct": 0.8, "ch4_poweroff_pct": 1.2, "ch4_restore_pct": 0.6, "auto_restore": 1}
    a = make("custom", s)
    assert (a.alarm, a.poweroff, a.restore, a.auto) == (80, 120, 60, True)
    assert feed(a, 80) == (alarm.ALARM, 1)
    assert feed(a, 120) == (alarm.POWEROFF, 0)
    assert feed(a, 60) == (alarm.POWEROFF, 0)
    assert feed(a, 59) == (alarm.NORMAL, 1)       # auto-restore: no ack needed


def test_custom_levels_are_validated():
    a = alarm.Alarm()
    for levels in ((90, 90, 80, 85), (100, 100, 150, 160), (100, 200, 150, 100)):
        warn, al, off, rest = levels
        try:
            a.set_levels("VOL", warn, al, off, rest, False)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (levels,))


def test_any_fault_cuts_and_latches():
    a = make("coal_face")
    assert feed(a, 10) == (alarm.NORMAL, 1)
    assert feed(a, 10, faults=0x0008) == (alarm.FAULT, 0)
    assert feed(a, 10) == (alarm.POWEROFF, 0) and a.ack_awaited  # cleared fault still needs an ack
    a.request_ack(10, True, 0)
    assert feed(a, 10) == (alarm.NORMAL, 1)


def test_warmup_and_invalid_reading_keep_power_off():
    a = make("coal_face")
    a.update(10, True, 0, True, False)
    assert (a.state, a.relay) == (alarm.WARMUP, 0)
    a.update(10, False, 0, False, False)
    assert (a.state, a.relay) == (alarm.WARMUP, 0)
    a.update(10, True, 0x0001, True, False)   # a fault during warm-up shows, but does not latch
    assert (a.state, a.relay, a.latched) == (alarm.FAULT, 0, False)


def test_low_flow_is_a_warning_with_power_on():
    a = make("coal_face")
    assert feed(a, 10, flow_low=True) == (alarm.WARNING, 1)


def test_patterns_differ_per_state():
    seen = set()
    for s in (alarm.WARNING, alarm.ALARM, alarm.POWEROFF, alarm.FAULT):
        seen.add((alarm.BUZZER[s], alarm.BEACON[s]))
        assert alarm.BUZZER[s] != 0
    assert len(seen) == 4
    a = make("coal_face")
    feed(a, 200)
    buzz, beacon = alarm.BUZZER[a.state], alarm.BEACON[a.state]   # what the controller drives, step by step
    assert (buzz & 1, beacon & 1) == (1, 1) and ((buzz >> 2) & 1, (beacon >> 2) & 1) == (1, 0)
    assert alarm.BUZZER[alarm.NORMAL] == 0 and alarm.BEACON[alarm.NORMAL] == 0
