"""Flow pulses at the meter's top rate together with the 1 kHz methane frequency input, on the real RP2040 port
(emulated): the firmware's hard-IRQ pulse counter misses and doubles none (issue 12, section 2.6).

The top rate is 2 kHz (hardware/README.md, "Flow input": the input filter and `debounce_us` are sized for a
2 kHz meter; the IRQ counter is what firmware 0.1.0 runs, PIO counting is not implemented). The host makes
both square waves on the emulated clock (rp2040js alarms, cycle-exact), starts the pulses at a known emulated
instant and stops them between two pulses, so the number of edges it made is exact; the board's totaliser
(K = 10 pulses per m3: one pulse is 0.100 m3, its frames carry thousandths) must have grown by exactly that.
"""

import time

from hardware.rp2040.board import PINS, pulse_train, ready

TOP_HZ = 2000  # the flow meter's top rate (hardware/README.md)
FREQ_HZ = 1000  # the methane frequency input at its top (1000 Hz = full scale)
PULSES = 12000  # 6 emulated seconds at 2 kHz (about 3 s wall here)
HIGH_US = 50  # Instruments.flow's pulse width: rising edges at start + (period - 50 us) + k * period


def test_2_khz_flow_pulses_with_the_1_khz_methane_input_are_counted_exactly(board):
    b = board("freq", "intake_air", seed=5)
    ready(b.probe)
    pico, probe, k = b.pico, b.probe, b.inst.k
    # 1 kHz on the methane input is full scale: the board alarms and latches the power off (its flash
    # write done before the pulses start, so the count below is the IRQ counter's alone)
    pico.wave(PINS["ch4_freq"], FREQ_HZ)
    before = probe.reading(lambda r: r.state == "POWEROFF", 60, "the power-off at 1 kHz")
    before = probe.reading(lambda r: r.seq > before.seq, 60, "one more reading")  # the latch is on flash
    assert before.flow == 0.0
    boot_ns = pico.boots[-1]["t_ns"]

    # the line idles low between pulses (driven, not left to the pull-up: else the wave's first rise is no edge)
    pico.set_pin(PINS["flow"], 0)
    wall = time.monotonic()
    mid = probe.mark()  # the frames from here on: those while both ran are the ones with flow
    # stopped 250 us after the last rising edge wanted (well clear of the next one, 250 us on)
    start_ns, stop_at, stop_ns, made = pulse_train(pico, PINS["flow"], TOP_HZ, PULSES, HIGH_US)
    assert abs(stop_ns - stop_at) < 50_000, (stop_ns, stop_at)  # the stop came between two edges
    assert made == PULSES

    # while both ran: the rate at 2 kHz (12,000 m3/min) and the methane input read at full scale
    during = [f for f in probe.frames[mid:] if f.type == "R"]
    busy = [r for r in during if r.flow > 0]
    assert busy, during[-3:]
    assert all(abs(r.flow - TOP_HZ * 60 / k) <= 0.001 * TOP_HZ * 60 / k for r in busy[1:]), [r.flow for r in busy]
    assert all(abs(r.ch4 - b.values["range_vol_pct"]) <= 0.02 for r in busy), [r.ch4 for r in busy]

    # the totaliser once the board has seen the last pulse (a reading 1 s of its clock after the stop)
    after_ms = (stop_ns - boot_ns) // 1_000_000 + 1000
    after = probe.reading(lambda r: r.uptime_ms >= after_ms, 60, "a reading after the stop")
    counted = round((after.total - before.total) * k, 6)
    print(f"{made} pulses at {TOP_HZ} Hz with {FREQ_HZ} Hz on the methane input over "
          f"{(stop_ns - start_ns) / 1e9:.3f} emulated s ({time.monotonic() - wall:.1f} s wall): counted {counted:g}")
    assert counted == made
    assert probe.bad == 0
