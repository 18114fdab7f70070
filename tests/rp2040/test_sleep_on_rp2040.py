"""Light sleep between loop iterations (setting `sleep 1`, main.py's LightSleep) on the real RP2040 port
(emulated; issue 12 s.4): the board really sleeps on the crystal, its frames keep coming over USB, gas over the
power-off level cuts the relay within one loop period, and flow pulses that wake it ~1000 times a second are
all counted. The figures of longer runs are in docs/safety.md s.3 (`relay_time --sleep 1`)."""

import random

import pytest

from hardware.rp2040.board import PINS, pulse_train, ready
from hardware.rp2040.relay_time import VSYS_CH, levels

ONE_PERIOD_MS = 130.0  # as test_relay_on_rp2040: one period (100 ms) plus the iteration's work
PULSES = 2000  # 2 emulated s at 1 kHz
HZ = 1000
HIGH_US = 50  # Instruments.flow's pulse width


def test_light_sleep_cuts_the_relay_within_one_period_and_counts_every_pulse(board):
    b = board("ma", "coal_face", seed=4)
    pico, probe, inst = b.pico, b.probe, b.inst
    ready(probe)
    assert probe.console("unlock 1234").status == "OK"
    assert probe.console("set sleep 1").status == "OK"  # in force from the next iteration, no reboot
    pico.adc_watch(VSYS_CH)  # one conversion per loop iteration: when each iteration ran

    # asleep on the crystal (PLL off) most of the time, and the frames still come over USB
    start = probe.reading().seq
    s0 = pico.sleep_stats()
    last = probe.reading(lambda r: r.seq >= start + 3, 60, "three more readings while asleep")
    s1 = pico.sleep_stats()
    crystal = (s1["slow_ns"] - s0["slow_ns"]) / (s1["t_ns"] - s0["t_ns"])
    assert crystal > 0.8, crystal  # sleep 0: 0 (clk_sys never leaves the PLL)
    assert last.state == "NORMAL" and last.relay == 1 and probe.bad == 0
    with pico._cond:  # noqa: SLF001
        loop = [t for t in pico.conversions if s0["t_ns"] <= t <= s1["t_ns"]]
    loop = [t for i, t in enumerate(loop) if i == 0 or t - loop[i - 1] > 5_000_000]  # one start per iteration
    gaps_ms = [(q - p) / 1e6 for p, q in zip(loop, loop[1:], strict=False)]
    # asleep, never past the next iteration: step() counts its own work in whole ms (ticks_ms), so a period is
    # 100 ms plus up to 1 ms of that rounding (seen: 101.086 ms when the test ran after another on this board)
    # plus the ~0.1 ms from step()'s return to the sleep; a lightsleep that overslept its ms would add more
    assert len(gaps_ms) >= 20 and max(gaps_ms) < 101.5, gaps_ms

    # gas over power-off at random instants of quiet iterations (not one that writes flash: see safety.md)
    over, clean = levels("coal_face")
    rng = random.Random(9)
    latencies = []
    for _ in range(2):
        seq = probe.reading(lambda r: r.relay == 1, 60, "power on").seq
        probe.reading(lambda r, seq=seq: r.seq >= seq + 2, 60, "two readings with power on")  # ack's writes done
        t_cross = pico.at(pico.now_ns() + rng.randrange(20_000_000, 220_000_000), inst.gas_command(over))
        t_drop = pico.wait_level(PINS["relay"], 0, 60, after_ns=t_cross)
        latencies.append((t_drop - t_cross) / 1e6)
        probe.reading(lambda r: r.state == "POWEROFF", 60, "a POWEROFF reading")
        inst.gas(clean)
        probe.reading(lambda r: r.flags & 0x04, 60, "acknowledgement awaited")
        assert probe.console("unlock 1234").status == "OK"
        assert probe.console("ack").status == "OK"
    print(f"sleep 1: relay cut {', '.join(f'{x:.1f}' for x in latencies)} ms after the crossing; "
          f"{crystal:.0%} of the time on the crystal")
    assert all(0 < x < ONE_PERIOD_MS for x in latencies), latencies

    # flow pulses at 1 kHz: each one ends a lightsleep; the totaliser must grow by exactly the edges made
    before = probe.reading(lambda r: r.relay == 1, 60, "power back on")
    before = probe.reading(lambda r, seq=before.seq: r.seq >= seq + 2, 60, "two quiet readings")
    boot_ns = pico.boots[-1]["t_ns"]
    pico.set_pin(PINS["flow"], 0)
    s2 = pico.sleep_stats()
    _, stop_at, stop_ns, made = pulse_train(pico, PINS["flow"], HZ, PULSES, HIGH_US)
    s3 = pico.sleep_stats()
    assert abs(stop_ns - stop_at) < 50_000, (stop_ns, stop_at)  # the stop came between two edges
    assert made == PULSES
    after_ms = (stop_ns - boot_ns) // 1_000_000 + 1000
    after = probe.reading(lambda r: r.uptime_ms >= after_ms, 60, "a reading after the pulses")
    counted = round((after.total - before.total) * inst.k, 6)
    asleep = (s3["slow_ns"] - s2["slow_ns"]) / (s3["t_ns"] - s2["t_ns"])
    print(f"{made} pulses at {HZ} Hz with sleep 1: counted {counted:g}; {asleep:.0%} of that time on the crystal")
    assert counted == made
    assert 0.3 < asleep < crystal  # still asleep between edges, if less than with no edges to wake it
    assert probe.bad == 0


@pytest.mark.long
def test_top_rate_pulses_with_the_1_khz_methane_input_are_counted_exactly_in_light_sleep(board):
    """test_pulses_on_rp2040's run with sleep 1: 12,000 flow pulses at 2 kHz (the meter's top rate) with
    1 kHz on the methane frequency input, both waking every lightsleep; the totaliser counts every one."""
    b = board("freq", "intake_air", seed=5)
    pico, probe, k = b.pico, b.probe, b.inst.k
    ready(probe)
    assert probe.console("unlock 1234").status == "OK"
    assert probe.console("set sleep 1").status == "OK"
    pico.wave(PINS["ch4_freq"], 1000)  # full scale: POWEROFF, its latch written before the pulses start
    before = probe.reading(lambda r: r.state == "POWEROFF", 60, "the power-off at 1 kHz")
    before = probe.reading(lambda r: r.seq > before.seq + 1, 60, "two more readings")
    boot_ns = pico.boots[-1]["t_ns"]
    pico.set_pin(PINS["flow"], 0)
    pulses = 12_000
    s0 = pico.sleep_stats()
    _, stop_at, stop_ns, made = pulse_train(pico, PINS["flow"], 2000, pulses, HIGH_US)
    s1 = pico.sleep_stats()
    assert abs(stop_ns - stop_at) < 50_000, (stop_ns, stop_at)
    assert made == pulses
    after_ms = (stop_ns - boot_ns) // 1_000_000 + 1000
    after = probe.reading(lambda r: r.uptime_ms >= after_ms, 60, "a reading after the stop")
    counted = round((after.total - before.total) * k, 6)
    asleep = (s1["slow_ns"] - s0["slow_ns"]) / (s1["t_ns"] - s0["t_ns"])
    print(f"{made} pulses at 2000 Hz with 1000 Hz on the methane input, sleep 1: counted {counted:g}; "
          f"{asleep:.0%} of the time on the crystal")
    assert counted == made
    assert probe.bad == 0
