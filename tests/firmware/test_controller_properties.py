"""Property test on the whole controller (CPython): whatever the sensor does, the relay pin obeys the rules."""

import fwkit
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

# loop-current values around every interesting point: line-fault band, 1.00 % and 1.50 % (coal face, nominal
# 4-20 mA over 4 %: 1.00 % = 8 mA, 1.50 % = 10 mA), plus anything in 0..24 mA
MA = st.one_of(st.sampled_from([3.0, 3.59, 3.61, 4.0, 7.98, 8.0, 8.02, 9.98, 10.0, 10.02, 20.9, 21.1]),
               st.floats(0.0, 24.0))
STEP = st.tuples(MA, st.sampled_from(["", "", "", "", "ack", "unlock 1234", "selftest"]))


@hsettings(max_examples=40, deadline=None)
@given(st.lists(STEP, min_size=10, max_size=60))
def test_relay_pin_follows_the_rules(seq):
    rig = fwkit.Rig()
    try:
        for ma, command in seq:
            rig.set_ma(ma)
            if command:
                rig.stream.feed((command + "\n").encode())
            was = rig.ctl.alarm.latched
            rig.step()
            ctl = rig.ctl
            m = ctl.methane
            booting = ctl.selftest.boot or ctl.uptime.s < ctl.warmup_s
            if rig.relay and not booting:
                # power allowed only on a valid, fault-free reading below power-off (1.50 %)...
                assert ctl.faults == 0 and m.valid and m.x100 < 150, (ma, ctl.faults, m.x100)
                # ...and never straight out of a latched power-off unless below restore (1.00 %)
                if was:
                    assert m.x100 < 100
            if ctl.faults and not booting:
                assert rig.relay == 0
            rig.frames()
    finally:
        rig.close()
