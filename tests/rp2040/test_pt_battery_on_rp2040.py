"""Pressure, temperature and battery on the real RP2040 port (issue 12 s.4): ADC1, ADC2 and ADC3 through the
RP2040 ADC noise model, set up at the console as a technician would; the A frame's standard flow, a failed
pressure loop (PT_FAULT, state and relay unchanged), then the battery at its cut-off (BATTERY, relay off).
Kept short (one board, ~15 emulated s); the CPython twin's legs are tests/firmware/fw_process.py, fw_battery.py
and test_battery_runtime.py."""

from hardware.rp2040.board import ready

PT_FAULT, BATTERY_LOW, BATTERY = 0x10, 0x20, 0x0200


def test_standard_flow_a_failed_pressure_loop_and_a_flat_battery(board):
    b = board("ma", "coal_face", seed=7)
    inst, probe = b.inst, b.probe
    inst.pt(98.4, 21.5)
    inst.flow(600.0)                                          # m3/min: 100 Hz at 10 pulses per m3
    ready(probe)                                              # on USB power (VSYS 5 V) until set up
    for line in ("unlock 1234", "set pt_input analog", "set supply_min_mv 3000", "set battery_low_mv 3500"):
        reply = probe.console(line)
        assert reply.status == "OK", (line, reply)
    inst.vsys(3900)                                           # now on the cell
    a = probe.wait(lambda f: f.type == "A" and f.p_kpa is not None and f.battery_mv is not None, 30, "an A frame")
    a = probe.wait(lambda f: f.type == "A", 30, "a second A frame", probe.frames.index(a) + 1)
    i = probe.frames.index(a)
    r = probe.frames[i - 1]
    assert r.type == "R" and r.seq == a.seq - 1 and r.state == "NORMAL" and r.relay == 1
    assert abs(a.p_kpa - 98.4) <= 0.3 and abs(a.t_c - 21.5) <= 0.3, a      # 2 LSB of ADC noise, averaged
    corr = a.p_kpa / 101.325 * 273.15 / (a.t_c + 273.15)
    assert abs(a.std_flow - r.flow * corr) <= 0.001 * r.flow + 0.01, (a, r)
    assert a.std_unit == "Nm3/min" and abs(a.battery_mv - 3900) <= 10 and a.run_min is None   # still estimating
    # the pressure transmitter's loop opens: standard flow empty, PT_FAULT, gas safety unchanged
    inst.pt(98.4, 21.5, ma=2.0)
    failed = probe.wait(lambda f: f.type == "R" and f.flags & PT_FAULT, 30, "PT_FAULT", i)
    assert failed.state == "NORMAL" and failed.relay == 1 and failed.faults == 0
    a = probe.wait(lambda f: f.type == "A", 30, "an A frame with P/T failed", probe.frames.index(failed))
    assert a.p_kpa is None and a.t_c is None and a.std_flow is None and a.std_total is not None
    # the battery: low, then at the cut-off the board alarms and cuts power while it still can
    inst.vsys(3450)
    low = probe.wait(lambda f: f.type == "R" and f.flags & BATTERY_LOW, 30, "BATTERY_LOW")
    assert low.relay == 1 and not low.faults
    inst.vsys(3250)
    cut = probe.wait(lambda f: f.type == "R" and f.faults & BATTERY, 30, "the BATTERY fault")
    assert cut.state == "FAULT" and cut.relay == 0 and not cut.faults & 0x0080    # not yet a brown-out
    events = [f for f in probe.frames if f.type == "E" and f.code in ("PT", "BATTERY")]
    assert {f.code for f in events} == {"PT", "BATTERY"}, events
