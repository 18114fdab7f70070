"""Methane front ends (4-20 mA, voltage, frequency), line/rail/range/stuck faults, on the whole board."""

import fwkit


def reading(rig):
    r = rig.readings()[-1]
    return r["ch4"], r["state"], r["faults"]


def test_four_to_twenty_ma_nominal_scale_and_line_faults():
    rig = fwkit.Rig()
    try:
        rig.set_ma(12.0)
        rig.boot()
        rig.run_ms(1000)
        assert abs(rig.ctl.methane.x100 - 200) <= 1
        rig.set_ma(3.5)
        rig.step()
        ch4, state, faults = reading(rig)
        assert (ch4, state, faults & 1, rig.relay) == ("", "FAULT", 1, 0)
        rig.set_ma(21.5)
        rig.step()
        assert rig.ctl.faults & 1 and rig.relay == 0
    finally:
        rig.close()


def test_voltage_front_end_and_rails():
    rig = fwkit.Rig({"front_end": "volt"})
    try:
        import machine
        machine.ADC.set(26, 1200 * 65535 // 3300 + 1)   # 1.2 V: nominal 0.4..2.0 V -> 2.00 %
        rig.boot()
        rig.run_ms(1000)
        assert abs(rig.ctl.methane.x100 - 200) <= 1
        machine.ADC.set(26, 0)
        rig.step()
        assert reading(rig)[2] & 0x2 and rig.relay == 0
        machine.ADC.set(26, 65535)
        rig.step()
        assert rig.ctl.faults & 0x2
    finally:
        rig.close()


def test_frequency_front_end_maps_200_to_1000_hz():
    for hz, want in ((200, 0), (600, 200), (1000, 400)):
        rig = fwkit.Rig({"front_end": "freq", "profile": "drainage", "range_vol_pct": 4.0})
        try:
            rig.pulses("ch4_freq", hz, 2000)
            assert rig.ctl.methane.valid, hz
            assert abs(rig.ctl.methane.x100 - want) <= 1, (hz, rig.ctl.methane.x100)
        finally:
            rig.close()


def test_frequency_line_faults_no_pulses_and_out_of_band():
    rig = fwkit.Rig({"front_end": "freq"})
    try:
        rig.pulses("ch4_freq", 300, 2000)
        assert rig.ctl.faults == 0 and rig.relay == 1
        rig.run_ms(600)                       # pulses stop
        assert rig.ctl.faults & 1 and rig.relay == 0
        rig.pulses("ch4_freq", 50, 2000)      # far below 200 Hz
        assert rig.ctl.faults & 1
        rig.pulses("ch4_freq", 1500, 1000)    # far above 1000 Hz
        assert rig.ctl.faults & 1
    finally:
        rig.close()


def test_range_fault_above_full_scale():
    rig = fwkit.Rig({"range_vol_pct": 2.0})
    try:
        rig.set_ma(20.95)                 # 2.12 % on a 2 % scale: over range, but no line fault yet
        rig.boot()
        assert rig.ctl.faults == 0x4 and rig.relay == 0
    finally:
        rig.close()


def test_range_fault_has_hysteresis_near_full_scale():
    rig = fwkit.Rig({"range_vol_pct": 2.0})
    try:
        rig.set_pct(0.5, full=2.0)
        rig.boot()
        rig.set_ma(20.95)                 # 2.12 %: beyond the 5 % margin -> RANGE
        rig.run_ms(300)
        assert rig.ctl.faults & 0x4 and rig.relay == 0
        for _ in range(5):                # noise around 2.05 %: inside the margin, above the range
            rig.set_ma(20.45)
            rig.run_ms(200)
            assert rig.ctl.faults & 0x4, "RANGE must not clear above full scale"
            rig.set_ma(20.95)
            rig.run_ms(200)
        rig.set_pct(1.8, full=2.0)        # back inside the range: the fault clears, power-off stays latched
        rig.run_ms(300)
        assert rig.ctl.faults & 0x4 == 0 and rig.relay == 0
    finally:
        rig.close()


def test_stuck_sensor_is_a_fault():
    rig = fwkit.Rig({"stuck_s": 5})
    try:
        rig.set_pct(0.3)
        rig.boot()
        rig.run_ms(4000)
        assert rig.ctl.faults == 0 and rig.relay == 1
        rig.run_ms(3000)  # stuck_s, plus at most one block of 16 samples (1.6 s)
        assert rig.ctl.faults & 0x8 and rig.relay == 0
    finally:
        rig.close()


def test_warm_up_keeps_power_off_and_hides_sensor_faults():
    rig = fwkit.Rig({"warmup_s": 5})
    try:
        rig.set_ma(2.0)                  # sensors often sit below 4 mA while warming up
        rig.step(30)
        assert rig.relay == 0 and rig.ctl.faults == 0
        r = rig.readings()[-1]
        assert (r["ch4"], r["state"], r["relay"]) == ("", "WARMUP", "0")
        rig.set_pct(0.2)
        rig.run_ms(3000)
        assert rig.relay == 1 and rig.readings()[-1]["state"] == "NORMAL"
    finally:
        rig.close()
