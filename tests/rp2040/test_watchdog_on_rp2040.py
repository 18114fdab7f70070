"""The RP2040's hardware watchdog on the real port: a hung main loop (the CPU frozen, timers running) resets
the chip; the relay is off after the reset, and a power-off latched before it is still latched after."""

from hardware.rp2040.board import ready

RELAY = 16


def _hang_until_reset(pico):
    before = len(pico.boots)
    t_hang = pico.hang()
    pico.wait_for(lambda: len(pico.boots) > before, 120, "a watchdog reset")
    return t_hang, pico.boots[-1]


def test_a_hung_loop_is_reset_by_the_watchdog_and_the_power_off_latch_survives(board):
    b = board("ma", "coal_face")
    pico, probe = b.pico, b.probe
    ready(probe)
    assert pico.level(RELAY) == 1
    # 1. hung with power on: the relay stays as it was (documented limit) until the watchdog resets the chip
    mark = probe.mark()
    t_hang, boot = _hang_until_reset(pico)
    assert boot["reason"] == "watchdog"
    hung_s = (boot["t_ns"] - t_hang) / 1e9
    print(f"hung loop reset by the watchdog after {hung_s:.3f} s (emulated)")
    # 1.5 s from the last feed, which came at most one loop period (100 ms) before the loop froze
    assert 1.35 < hung_s <= 1.55, hung_s
    assert not [t for t, g, v in pico.changes if g == RELAY and t_hang <= t < boot["t_ns"]]  # unchanged while hung
    # a reset chip does not drive the relay: de-energised from the reset on
    pico.wait_for(lambda: any(g == RELAY and v == 0 and t >= boot["t_ns"] for t, g, v in pico.changes), 10,
                  "the relay released at the reset")
    ev = probe.wait(lambda f: f.type == "E" and f.code == "BOOT", 120, "the BOOT event after the reset", mark)
    assert "watchdog" in ev.text, ev
    ready(probe)  # nothing was latched: power returns after the boot self-test
    # 2. power-off latched, then hung: after the reset the latch is still there, the relay stays off
    mark = probe.mark()
    b.inst.gas(1.65)
    probe.reading(lambda r: r.state == "POWEROFF" and r.relay == 0, 60, "POWEROFF", start=mark)
    b.inst.gas(0.1)
    # the next iteration says the latch awaits an ack: the trip iteration has written it to flash by then
    probe.reading(lambda r: r.flags & 0x04, 60, "acknowledgement awaited", start=mark)
    t_hang, boot = _hang_until_reset(pico)
    assert all(v == 0 for t, g, v in pico.changes if g == RELAY and t >= t_hang)
    mark = probe.mark()
    r = probe.reading(lambda r: r.state != "WARMUP", 120, "a reading after the reset", start=mark)
    assert r.state == "POWEROFF" and r.relay == 0 and r.flags & 0x04, r  # latched: waits for an acknowledgement
    assert all(v == 0 for t, g, v in pico.changes if g == RELAY and t >= t_hang)
