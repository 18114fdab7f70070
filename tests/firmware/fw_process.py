"""Pressure, temperature and standard flow (process.py); the battery (battery.py); the A frame and the
settings added after 0.1.0. Plain asserts: runs on CPython and on the MicroPython unix port."""

import fwkit

PT = {"pt_input": "analog", "k_pulses_per_l": 0.0, "k_pulses_per_m3": 10.0}
BATTERY = {"battery_low_mv": 3500, "battery_cutoff_mv": 3300, "battery_full_mv": 4200, "supply_min_mv": 3000}
A_P, A_T, A_STD, A_UNIT, A_TOTAL, A_MV, A_RUN = 4, 5, 6, 7, 8, 9, 10   # A frame fields (type first)


def merged(*dicts):
    out = {}
    for d in dicts:
        for k in d:
            out[k] = d[k]
    return out


def test_standard_flow_against_a_hand_computation():
    rig = fwkit.Rig(PT)
    try:
        rig.set_pct(0.2)
        rig.boot()
        for kpa, t_c in ((101.325, 0.0), (98.4, 21.5), (150.0, -10.0), (60.0, 45.0), (190.0, 90.0)):
            rig.set_pt(kpa, t_c)
            rig.pulses("flow_pulse", 100, 2000)          # 100 Hz / 10 pulses per m3 = 600 m3/min
            rig.frames()
            rig.pulses("flow_pulse", 100, 2100)          # P and T measured over a whole report period
            frames = [f for f in rig.frames() if f[0] in "RA"]
            a = frames[-1]
            r = float(frames[-2][6])                     # the R frame's flow, sent just before this A frame
            assert a[0] == "A" and frames[-2][0] == "R" and r > 500, frames
            hand = r * (kpa / 101.325) * (273.15 / (t_c + 273.15))   # ideal gas, base 101.325 kPa and 0 C
            assert abs(float(a[A_P]) - kpa) <= 0.02, (a, kpa)
            assert abs(float(a[A_T]) - t_c) <= 0.1, (a, t_c)        # NTC table: 0.07 C over -30..100 C
            std = float(a[A_STD])
            assert abs(std - hand) <= hand * 0.0005, (std, hand)
            assert a[A_UNIT] == "Nm3/min" and a[A_MV] == "" and a[A_RUN] == ""
    finally:
        rig.close()


def test_standard_totaliser_integrates_the_actual_one_times_the_correction():
    rig = fwkit.Rig(PT)
    try:
        rig.set_pct(0.2)
        rig.set_pt(150.0, 20.0)
        rig.boot()
        rig.run_ms(1000)
        pr = rig.ctl.auxiliary.process
        corr = pr.corr / 16384.0
        assert abs(corr - (150.0 / 101.325) * (273.15 / 293.15)) < 0.0005, corr
        t0, s0 = rig.ctl.flow.total_x1000, pr.std_x1000
        rig.pulses("flow_pulse", 50, 20000)             # 1000 pulses = 100 m3
        d, ds = rig.ctl.flow.total_x1000 - t0, pr.std_x1000 - s0
        assert d == 100000, d
        assert abs(ds - d * pr.corr // 16384) <= 1, (ds, d)
    finally:
        rig.close()


def test_at_base_conditions_the_standard_total_counts_exactly_the_actual_one():
    import machine
    import process

    class Totaliser:
        total_m = 0
        total_r = 0

    fl = Totaliser()
    adc = machine.ADC(27)
    pr = process.Process(adc, adc)
    pr.valid = True
    pr.corr = 16384                                      # p = base_kpa, T = base_c: the correction is 1.0
    pr.sample(fl)
    total = 0
    for i in range(2000):
        add = (i * 7919) % 40000 + 1                     # thousandths per loop iteration, irregular
        total += add
        fl.total_m, fl.total_r = total // 1000000, total % 1000000
        pr.sample(fl)
    assert pr.std_x1000 == total, (pr.std_x1000, total)


def test_failed_pt_input_flags_empties_std_and_stops_its_total_but_not_the_gas_safety():
    rig = fwkit.Rig(PT)
    try:
        rig.set_pct(0.2)
        rig.set_pt(100.0, 15.0)
        rig.boot()
        rig.pulses("flow_pulse", 20, 3000)
        rig.frames()
        for fail in ((27, fwkit.ma_counts(2.0)), (28, 65535), (28, 0)):   # loop open; NTC open; NTC shorted
            import machine

            machine.ADC.set(fail[0], fail[1])
            rig.pulses("flow_pulse", 20, 2000)
            pr = rig.ctl.auxiliary.process
            assert not pr.valid
            frames = rig.frames()
            rs = [f for f in frames if f[0] == "R"]
            a = [f for f in frames if f[0] == "A"][-1]
            events = [f[5] for f in frames if f[0] == "E" and f[4] == "PT"]
            last = rs[-1]
            assert int(last[12], 16) & 0x10 and last[9] == "NORMAL" and last[10] == "1" and last[11] == "0000"
            assert rig.relay == 1
            assert a[A_P] == a[A_T] == a[A_STD] == "" and a[A_TOTAL] != "", a
            assert events and "failed" in events[0], events
            stopped = pr.std_x1000
            rig.pulses("flow_pulse", 20, 2000)             # flow goes on: the standard total does not
            assert pr.std_x1000 == stopped and rig.ctl.flow.rate_x1000 > 0
            rig.set_pt(100.0, 15.0)                         # repaired
            rig.run_ms(2100)
            frames = rig.frames()
            assert [f for f in frames if f[0] == "E" and f[4] == "PT" and "ok" in f[5]]
            assert not int([f for f in frames if f[0] == "R"][-1][12], 16) & 0x10
            rig.pulses("flow_pulse", 20, 2000)
            assert pr.std_x1000 > stopped
    finally:
        rig.close()


def test_no_pt_and_no_battery_sends_exactly_the_old_frames():
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.2)
        rig.boot()
        rig.run_ms(3000)
        kinds = [f[0] for f in rig.frames()]
        assert kinds and "A" not in kinds and rig.ctl.auxiliary is None
    finally:
        rig.close()


def test_an_a_frame_follows_each_periodic_r_only():
    rig = fwkit.Rig(merged(PT, BATTERY))
    try:
        rig.set_pct(0.2)
        rig.set_pt(101.0, 10.0)
        rig.set_battery(3900)
        rig.boot()
        rig.run_ms(3000)
        rig.frames()
        rig.run_ms(3000)
        rig.set_pct(1.2)                                  # ALARM: an R frame at once, no A after it
        rig.step()
        rig.run_ms(2000)
        kinds = "".join(f[0] for f in rig.frames() if f[0] in "RA")
        assert kinds.startswith("RARARA") and "RR" in kinds and "AA" not in kinds, kinds
        assert kinds.count("A") == kinds.count("R") - 1, kinds
    finally:
        rig.close()


def test_status_shows_pressure_temperature_both_flows_and_totals_and_the_battery():
    rig = fwkit.Rig(merged(PT, BATTERY))
    try:
        rig.set_pct(0.2)
        rig.set_pt(98.4, 21.5)
        rig.set_battery(3900)
        rig.boot()
        rig.pulses("flow_pulse", 100, 3000)
        status, text = rig.said("status")
        assert status == "OK"
        for part in ("pressure 98.4", "kPa, temperature 21.", "base 101.32 kPa, 0.00 C", "600.000 m3/min =",
                     "Nm3/min", "total ", "std total ", " Nm3", "battery 3", " mV, charge ", "low 3500, cut-off 3300",
                     "estimating"):
            assert part in text, (part, text)
        import machine

        machine.ADC.set(27, 0)
        rig.run_ms(2100)
        status, text = rig.said("status")
        assert "P/T FAILED (pressure loop" in text and "std flow --" in text, text
    finally:
        rig.close()
