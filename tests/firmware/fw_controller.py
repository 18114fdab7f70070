"""The control loop on the whole board: timing of the relay, watchdog, frames, boot, calibration due."""

import gc

import fwkit
import machine
import main


def test_relay_cut_in_the_same_iteration_as_the_over_limit_sample():
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.5)
        rig.boot()
        assert rig.relay == 1
        rig.frames()
        rig.set_pct(1.6)      # over power-off (1.50 %) for the coal-face profile
        rig.step()            # one iteration reads it...
        assert rig.relay == 0  # ...and has already cut power
        r = rig.readings()
        assert r and r[-1]["state"] == "POWEROFF" and r[-1]["relay"] == "0"   # sent at once, not at the next second
    finally:
        rig.close()


def test_boot_events_self_test_and_relay_stays_off_until_done():
    rig = fwkit.Rig()
    try:
        first = rig.frames()
        assert first[0][0] == "E" and first[0][4] == "BOOT" and first[0][2] == "0"
        assert first[0][5].startswith("fw ") and "reset=power" in first[0][5]
        assert first[0][1] == "pico-01"
    finally:
        rig.close()
    rig = fwkit.Rig({"device_id": "mine-7"})
    try:
        first = rig.frames()
        assert first[0][4] == "BOOT" and first[0][1] == "mine-7"   # the id from the settings, even at boot
        rig.set_pct(0.2)
        relay_seen = []
        buzzer_seen = []
        for _ in range(6):
            rig.step()
            relay_seen.append(rig.relay)
            buzzer_seen.append(rig.pin("buzzer").value())
        assert buzzer_seen[0] == 1 and relay_seen.count(1) == 0   # no valid reading yet: never energised
        rig.step(2)
        ev = [f for f in rig.frames() if f[0] == "E" and f[4] == "SELFTEST"]
        assert ev and ev[0][5] == "pass"
        assert rig.relay == 1
    finally:
        rig.close()


def test_self_test_fails_when_relay_sense_does_not_follow():
    rig = fwkit.Rig({"relay_sense": 1})
    try:
        rig.pin("relay_sense").set(1)     # contact never closes: the boot test (relay off) cannot see it...
        rig.set_pct(0.2)
        rig.step(8)
        ev = [f for f in rig.frames() if f[0] == "E" and f[4] == "SELFTEST"]
        assert [e[5] for e in ev] == ["pass"] and rig.relay == 1
        rig.step(2)                       # ...the first energising does: two periods without the contact
        ev = [f for f in rig.frames() if f[0] == "E" and f[4] == "SELFTEST"]
        assert ev and "relay sense" in ev[0][5]
        assert rig.ctl.faults & 0x40 and rig.relay == 0
        rig.step(5)
        assert rig.ctl.faults & 0x40 and rig.relay == 0   # stays a fault until a self-test passes
    finally:
        rig.close()
    rig = fwkit.Rig({"relay_sense": 1})
    try:
        rig.pin("relay_sense").set(0)     # welded contact: closed although the relay is off
        rig.set_pct(0.2)
        rig.step(10)
        ev = [f for f in rig.frames() if f[0] == "E" and f[4] == "SELFTEST"]
        assert ev and "relay sense" in ev[0][5]
        assert rig.ctl.faults & 0x40 and rig.relay == 0
    finally:
        rig.close()


def test_relay_sense_that_follows_keeps_power_on():
    rig = fwkit.Rig({"relay_sense": 1})
    try:
        rig.set_pct(0.2)
        sense = rig.pin("relay_sense")
        relay = rig.pin("relay")
        for _ in range(40):
            sense.set(1 - relay.value())  # a good relay: the contact closes to GND when energised
            rig.step()
        assert rig.ctl.faults == 0 and rig.relay == 1
        ev = [f[5] for f in rig.frames() if f[0] == "E" and f[4] == "SELFTEST"]
        assert ev == ["pass"]
    finally:
        rig.close()


def test_watchdog_fed_only_by_completed_iterations():
    rig = fwkit.Rig()
    try:
        wdt = machine.WDT.last
        rig.boot()
        fed = wdt.feeds
        rig.step(5)
        assert wdt.feeds == fed + 5

        class Broken:
            def read_u16(self):
                raise OSError(5)
        rig.ctl.methane.adc = Broken()
        try:
            rig.step()
        except OSError:
            pass
        else:
            raise AssertionError("a broken iteration must not pass silently")
        assert wdt.feeds == fed + 5
    finally:
        rig.close()


def test_periodic_frames_once_a_second_with_sequence_and_uptime():
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.3)
        rig.boot()
        rig.frames()
        rig.run_ms(5000)
        rs = rig.readings()
        assert len(rs) == 5
        seqs = [int(r["seq"]) for r in rs]
        assert seqs == list(range(seqs[0], seqs[0] + 5))
        ups = [int(r["uptime_ms"]) for r in rs]
        assert [b - a for a, b in zip(ups, ups[1:])] == [1000] * 4
        last = rs[-1]
        assert [last[k] for k in ("ch4", "unit", "flow", "flow_unit", "total", "state", "relay")] == [
            "0.30", "VOL", "0.000", "L/min", "0.000", "NORMAL", "1"]
        assert (last["faults"], last["flags"]) == (0, 1)    # calibration due: never calibrated
    finally:
        rig.close()


def test_state_changes_go_out_at_once():
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.3)
        rig.boot()
        rig.run_ms(1000)
        rig.frames()
        rig.set_pct(1.2)
        rig.step()
        r = rig.readings()
        assert len(r) == 1 and r[0]["state"] == "ALARM" and r[0]["relay"] == "1"
    finally:
        rig.close()


def test_calibration_due_after_fifteen_days():
    rig = fwkit.Rig()
    root = rig.root
    try:
        rig.boot()
        assert rig.last("unlock 1234")[0] == "OK"
        rig.set_pct(0.0)
        rig.step(2)
        assert rig.last("cal zero")[0] == "OK"
        rig.set_pct(2.0)
        rig.step(2)
        assert rig.last("cal span 2.00")[0] == "OK"
        rig.last("save")
        rig.step()
        assert rig.ctl.flags & 1 == 0
        # a runtime file says the calibration is 15 days old minus 30 s: due 30 s (of uptime) later
        import settings
        settings.Store(root, "runtime").save({"total_x1000": 0, "cal_age_s": 15 * 86400 - 30})
        rig = rig.reboot()
        rig.set_pct(0.5)
        rig.boot()
        assert rig.ctl.flags & 1 == 0
        rig.run_ms(61000)
        assert rig.readings()[-1]["flags"] & 1 == 1
    finally:
        rig.close()


def test_no_flow_fault_and_low_flow_warning():
    rig = fwkit.Rig({"flow_expected": 1, "flow_timeout_ms": 2000, "k_pulses_per_l": 1.0,
                     "flow_low_per_min": 300.0})
    try:
        rig.set_pct(0.2)
        rig.pulses("flow_pulse", 10, 3000)        # 600 L/min: fine
        assert rig.ctl.faults == 0 and rig.ctl.alarm.state == 1
        rig.pulses("flow_pulse", 2, 3000)         # 120 L/min: low flow -> WARNING, power stays on
        r = rig.readings()[-1]
        assert r["state"] == "WARNING" and r["flags"] & 2 and r["relay"] == "1"
        rig.run_ms(3000)                          # no pulses: NOFLOW fault cuts
        assert rig.ctl.faults & 0x10 and rig.relay == 0
    finally:
        rig.close()


def test_brown_out_is_a_power_fault():
    rig = fwkit.Rig(vsys=20000)                   # ~3.0 V supply
    try:
        rig.set_pct(0.2)
        rig.boot()
        assert rig.ctl.faults & 0x80 and rig.relay == 0
    finally:
        rig.close()


def test_loop_overrun_is_a_fault():
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.2)
        rig.boot()
        rig.clock.us += 900000                    # one iteration 900 ms late
        rig.ctl.step()
        assert rig.ctl.faults & 0x100 and rig.relay == 0
    finally:
        rig.close()


def test_step_returns_time_to_the_next_iteration():
    rig = fwkit.Rig()
    try:
        assert rig.ctl.period_ms == 100
        assert rig.ctl.step() == 100              # simulated clock: no time spent inside the step
    finally:
        rig.close()


def test_steady_iteration_allocates_nothing():
    """gc.mem_alloc() around iterations that send no frame (MicroPython only; CPython has no gc.mem_alloc)."""
    if not hasattr(gc, "mem_alloc"):
        return
    rig = fwkit.Rig({"report_period_ms": 60000, "k_pulses_per_l": 10.0})
    try:
        rig.set_pct(0.4)
        rig.pulses("flow_pulse", 40, 3000)
        rig.frames()
        worst = rig.worst_alloc()
        assert worst == 0, "steady iteration allocated %d bytes" % worst
    finally:
        rig.close()


def test_build_api_is_stable():
    assert callable(main.build) and callable(main.main)
    rig = fwkit.Rig()
    try:
        ctl = rig.ctl
        for name in ("step", "uptime_ms", "period_ms", "alarm", "methane", "flow", "faults", "flags"):
            assert hasattr(ctl, name), name
    finally:
        rig.close()


def test_calibration_age_is_kept_across_reboots_without_flow():
    rig = fwkit.Rig({"total_save_s": 60})
    try:
        rig.boot()
        rig.ctl.runtime.cal_age_s = 5000           # as if the board had run for 5000 s since its calibration
        rig.run_ms(61000)                  # no flow at all: the age must still be written
        rig = rig.reboot()
        assert rig.ctl.runtime.cal_age_s >= 5000
    finally:
        rig.close()


def test_uart_link_carries_frames_and_console():
    import board
    import settings

    root = fwkit.tmpdir()
    try:
        values = settings.defaults()
        values["warmup_s"] = 0
        values["display"] = 0
        settings.Store(root).save(values)
        machine.Pin.clear()
        machine.ADC.set(29, 33000)
        machine.ADC.set(26, fwkit.ma_counts(5.0))
        b = board.Board("pico", root=root, link="uart", baud=9600)
        uart = b.stream._uart
        clock = fwkit.SimClock(1000000)
        ctl = main.build(b, clock)
        for _ in range(10):
            clock.us += 100000
            ctl.step()
        uart.rx.extend(b"get link\n")
        clock.us += 100000
        ctl.step()
        out = bytes(uart.tx).decode()
        assert ",BOOT," in out and ",SELFTEST,pass" in out and ",NORMAL,1," in out
        assert ",C,pico-01," in out and ",OK,link=usb*" in out
    finally:
        fwkit.rmtree(root)


def calibrate(rig, save=True):
    """cal zero at 0 %, cal span at 2.00 % on a nominal 4-20 mA sensor (console unlocked here)."""
    assert rig.last("unlock 1234")[0] == "OK"
    rig.set_pct(0.0)
    rig.step(2)
    assert rig.last("cal zero")[0] == "OK"
    rig.set_pct(2.0)
    rig.step(2)
    assert rig.last("cal span 2.00")[0] == "OK"
    rig.set_pct(0.2)
    if save:
        assert rig.last("save")[0] == "OK"
    rig.step()


def test_calibration_age_restarts_only_when_the_calibration_is_saved():
    import settings

    rig = fwkit.Rig()
    try:
        rig.boot()
        calibrate(rig)
        assert rig.ctl.flags & 1 == 0
        settings.Store(rig.root, "runtime").save({"total_x1000": 0, "cal_age_s": 16 * 86400})
        rig = rig.reboot()
        rig.boot()
        assert rig.ctl.flags & 1                    # 16 days old: due
        calibrate(rig, save=False)
        assert rig.ctl.flags & 1                    # a new span that is not saved yet does not hide it...
        rig = rig.reboot()
        rig.boot()
        assert rig.ctl.flags & 1                    # ...nor after a reboot that lost the unsaved calibration
        calibrate(rig)
        assert rig.ctl.flags & 1 == 0
        rig = rig.reboot()
        rig.boot()
        assert rig.ctl.flags & 1 == 0 and rig.ctl.runtime.cal_age_s < 60
    finally:
        rig.close()


def test_runtime_file_with_bad_values_boots_and_unknown_age_is_due():
    import settings

    rig = fwkit.Rig()
    try:
        rig.boot()
        calibrate(rig)
        assert rig.ctl.flags & 1 == 0
        # a valid checksum around values that are not counts: the board must still boot
        settings.Store(rig.root, "runtime").save({"total_x1000": "lots", "cal_age_s": [5]})
        rig = rig.reboot()
        ev = [f[5] for f in rig.frames() if f[0] == "E" and f[4] == "SETTINGS"]
        assert ev and "total_x1000 or cal_age_s" in ev[0] and "calibration due" in ev[0], ev
        rig.boot()
        assert rig.ctl.flags & 1 and rig.ctl.flow.total_x1000 == 0 and rig.relay == 1
        # runtime.json and its backup unreadable: the calibration age is unknown, so due
        for name in ("runtime.json", "runtime.bak"):
            with open(rig.root + "/" + name, "w") as f:
                f.write("garbage")
        rig = rig.reboot()
        ev = [f[5] for f in rig.frames() if f[0] == "E" and f[4] == "SETTINGS"]
        assert ev and ev[0].startswith("runtime.json truncated, using defaults"), ev
        rig.boot()
        assert rig.ctl.flags & 1
    finally:
        rig.close()


def test_calibration_age_survives_frequent_reboots():
    rig = fwkit.Rig({"total_save_s": 60})
    try:
        for _ in range(3):                 # a board restarted every ~2 minutes still ages its calibration
            rig.run_ms(125000)
            rig = rig.reboot()
        assert rig.ctl.runtime.cal_age_s >= 360
    finally:
        rig.close()


def test_power_off_latch_survives_a_reboot():
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.2)
        rig.boot()
        rig.set_pct(1.6)
        rig.step()
        assert rig.relay == 0 and rig.ctl.alarm.latched
        rig.set_pct(0.2)
        rig.step()
        assert rig.relay == 0
        rig = rig.reboot()                  # a power cycle or watchdog reset is no acknowledgement
        rig.set_pct(0.2)
        rig.boot()
        rig.step(10)
        r = rig.readings()[-1]
        assert rig.relay == 0 and (r["state"], r["flags"] & 4) == ("POWEROFF", 4)
        rig.last("unlock 1234")
        assert rig.last("ack")[0] == "OK"
        rig.step()
        assert rig.relay == 1
        rig = rig.reboot()                  # acknowledged: the next boot powers up after the warm-up
        rig.set_pct(0.2)
        rig.boot()
        assert rig.relay == 1
        # an unreadable runtime file may have held a latch: safe side
        with open(rig.root + "/runtime.json", "w") as f:
            f.write("garbage")
        rig = rig.reboot()
        rig.set_pct(0.2)
        rig.boot()
        assert rig.relay == 0 and rig.ctl.alarm.state == 4
    finally:
        rig.close()


def test_a_slow_flash_write_after_ack_is_not_a_loop_fault():
    """Writing the latch to flash (up to a few hundred ms on a real chip) must not re-trip the restored power."""
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.2)
        rig.boot()
        rig.set_pct(1.6)
        rig.step()
        rig.set_pct(0.2)
        rig.step()
        clock = rig.clock
        store = rig.ctl.runtime.store
        plain = store._write

        def slow_write(path, data):         # a 350 ms sector erase during the write
            clock.us += 350000
            plain(path, data)
        store._write = slow_write
        rig.last("unlock 1234")
        rig.stream.feed(b"ack\n")
        rig.step(5)
        assert rig.ctl.faults == 0 and rig.relay == 1 and rig.ctl.alarm.state == 1
        rig.clock.us += 900000              # a late iteration without a flash write is still a fault
        rig.ctl.step()
        assert rig.ctl.faults & 0x100 and rig.relay == 0
    finally:
        rig.close()


def test_auto_restore_profile_does_not_write_flash_on_every_trip():
    rig = fwkit.Rig({"profile": "custom", "ch4_alarm_pct": 0.8, "ch4_poweroff_pct": 1.2, "ch4_restore_pct": 0.6,
                     "auto_restore": 1})
    try:
        rig.set_pct(0.2)
        rig.boot()
        writes = []
        store = rig.ctl.runtime.store
        plain = store._write

        def counted(path, data):
            writes.append(path)
            plain(path, data)
        store._write = counted
        for _ in range(20):                 # gas swinging over power-off and back: trips that restore alone
            rig.set_pct(1.3)
            rig.step()
            assert rig.relay == 0
            rig.set_pct(0.5)
            rig.step()
            assert rig.relay == 1
        assert writes == []
    finally:
        rig.close()
