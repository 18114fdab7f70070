"""STUCK on the real RP2040 port (issue 12, section 3): under the ADC noise model a live 4-20 mA reading with
its own 0.01 % CH4 noise is never STUCK, and the same transmitter frozen is STUCK after stuck_s and about one
block of 16 samples. The CPython twin's leg (faster, more levels) is tests/firmware/test_stuck_under_noise.py."""

import random

from hardware.rp2040.board import ready

STUCK = 0x0008
STUCK_S = 5
CODES = 1024  # a fresh noisy code for every read of these runs (the default 64-code cycle repeats each 4 samples)


def test_a_live_reading_is_never_stuck_and_a_frozen_one_is(board):
    b = board("ma", "coal_face", seed=5)
    ready(b.probe)
    assert b.probe.console("unlock 1234").status == "OK"
    assert b.probe.console(f"set stuck_s {STUCK_S}").status == "OK"
    noise, inst, pico, rng = b.pico.noise, b.inst, b.pico, random.Random(11)
    adc = {"op": "adc", "ch": 0}

    def level(ch4):
        return dict(adc, raw=noise.codes(inst.level(ch4), CODES))

    # until now the input was held at clean air since boot, i.e. frozen: it may well be STUCK already.
    # live: a new sensor value every emulated second (each `at` returns when it ran); the first 3 s let a
    # STUCK from the frozen start clear (one block of 1.6 s, one report period), then 3 x stuck_s judged
    t0 = pico.now_ns()
    for k in range(3):
        pico.at(t0 + k * 1_000_000_000, level(0.3 + rng.gauss(0.0, 0.01)))
    start = b.probe.mark()
    for k in range(3, 3 + 3 * STUCK_S):
        pico.at(t0 + k * 1_000_000_000, level(0.3 + rng.gauss(0.0, 0.01)))
    live = [f for f in b.probe.frames[start:] if f.type == "R"]
    # frames reach the host a little after the emulated instant they were sent: one sent before the feed's
    # first 3 s were over may still carry the STUCK of the frozen start
    while live and live[0].faults & STUCK and live[0].uptime_ms < live[-1].uptime_ms - 3 * STUCK_S * 1000 + 500:
        live.pop(0)
    assert len(live) >= 3 * STUCK_S - 2, len(live)
    assert len({r.ch4 for r in live}) > 1  # the reading did move
    assert not [r for r in live if r.faults & STUCK], [(r.uptime_ms, r.ch4, r.faults) for r in live]

    # frozen: the transmitter's output held from here (the ADC's noise stays)
    pico.at(t0 + (3 + 3 * STUCK_S) * 1_000_000_000, level(0.3))
    frozen_at = b.probe.reading(lambda r: r.uptime_ms >= 0).uptime_ms
    stuck = b.probe.reading(lambda r: r.faults & STUCK, timeout_s=600, what="STUCK on the frozen input")
    waited_s = (stuck.uptime_ms - frozen_at) / 1000
    assert STUCK_S - 1.0 <= waited_s <= STUCK_S + 2 * 1.6 + 1.0, waited_s  # report period 1 s either side
    assert stuck.relay == 0 and stuck.state == "FAULT"
