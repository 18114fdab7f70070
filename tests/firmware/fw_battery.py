"""The battery (battery.py), the settings added after 0.1.0 (upgrade safety) and the standard totaliser across
a reboot. Plain asserts: runs on CPython and on the MicroPython unix port (fw_process.py has the P/T tests;
two files, not one: MicroPython compiles a module in one piece, and two halves fit the 192 KB heap better)."""

import gc

import fwkit
import settings
from fw_process import A_MV, BATTERY, PT, merged


def test_battery_low_then_cut_off_alarms_before_the_brown_out_with_hysteresis():
    rig = fwkit.Rig(BATTERY)
    try:
        rig.set_pct(0.2)
        rig.set_battery(3900)
        rig.boot()
        rig.run_ms(2000)
        assert rig.readings()[-1]["state"] == "NORMAL" and rig.relay == 1
        rig.set_battery(3480)                            # low: flag, power stays on
        rig.run_ms(2100)                                 # (a report period's mean: up to two periods)
        frames = rig.frames()
        r = [f for f in frames if f[0] == "R"][-1]
        assert int(r[12], 16) & 0x20 and r[9] == "NORMAL" and rig.relay == 1
        ev = [f[5] for f in frames if f[0] == "E" and f[4] == "BATTERY"]
        assert ev and ev[0].startswith("battery low: 34"), ev
        assert abs(int([f for f in frames if f[0] == "A"][-1][A_MV]) - 3480) <= 2
        rig.set_battery(3290)                            # cut-off: FAULT, relay off, fault pattern
        rig.run_ms(2100)
        frames = rig.frames()
        r = [f for f in frames if f[0] == "R"][-1]
        assert int(r[11], 16) == 0x0200 and r[9] == "FAULT" and rig.relay == 0, r
        assert [f for f in frames if f[0] == "E" and f[4] == "BATTERY" and "cut-off" in f[5]]
        buzz = 0
        for _ in range(16):
            rig.step()
            buzz += rig.pin("buzzer").value()
        assert buzz > 0                                  # the fault sounds while there is power to
        rig.set_battery(3450)                            # the load dropped: the voltage recovers a little
        rig.run_ms(3000)
        assert rig.ctl.faults & 0x0200 and rig.relay == 0
        rig.set_battery(3520)                            # above battery_low_mv: charged
        rig.run_ms(2100)
        assert not rig.ctl.faults & 0x0200
        assert rig.ctl.flags & 0x20                      # BATTERY_LOW clears 50 mV above the level
        rig.set_battery(3600)
        rig.run_ms(2100)
        assert not rig.ctl.flags & 0x20
        assert rig.readings()[-1]["state"] == "POWEROFF"   # a cleared fault needs the acknowledgement
        assert rig.last("unlock 1234")[0] == "OK" and rig.last("ack")[0] == "OK"
        rig.step(2)
        assert rig.relay == 1
    finally:
        rig.close()


def test_battery_fault_is_not_masked_during_warm_up():
    rig = fwkit.Rig(merged(BATTERY, {"warmup_s": 30}))
    try:
        rig.set_battery(3200)
        rig.run_ms(2000)
        assert rig.ctl.faults & 0x0200 and rig.readings()[-1]["state"] == "FAULT" and rig.relay == 0
    finally:
        rig.close()


def test_battery_rule_needs_the_brown_out_below_the_cut_off():
    v = settings.defaults()
    v["battery_low_mv"] = 3500
    err = settings.check(v)                              # supply_min_mv 4200 (USB) is above the cut-off
    assert err and "supply_min_mv" in err and "USB" in err, err
    v["supply_min_mv"] = 3000
    assert settings.check(v) is None
    v["battery_cutoff_mv"] = 3600
    assert "battery_cutoff_mv" in settings.check(v)
    v = settings.defaults()
    v["p_min_kpa"] = 200.0
    assert "p_min_kpa" in settings.check(v)
    for key, bad in (("pt_input", "digital"), ("base_kpa", "10.0"), ("ntc_beta", "99"), ("sleep", "2"),
                     ("battery_full_mv", "9000")):
        try:
            settings.parse(key, bad)
        except ValueError as exc:
            assert key in str(exc.args[0])
        else:
            raise AssertionError(key)
    assert settings.parse("base_c", "15.0") == 15.0 and settings.parse("sleep", "1") == 1


def test_settings_file_from_before_the_new_keys_loads_without_a_fault():
    import json

    root = fwkit.tmpdir()
    try:
        old = settings.defaults()
        for key in settings.KEYS[34:]:                   # 0.1.0's file: none of the keys added since
            del old[key]
        old["warmup_s"] = 0
        old["display"] = 0
        old["supply_min_mv"] = 0
        settings.Store(root).save(old)
        got, problem = settings.Store(root).load()
        assert problem is None, problem
        for key in settings.KEYS[34:]:
            assert got[key] == settings.defaults()[key], key
        rig = fwkit.Rig(root=root, save=False)
        rig.set_pct(0.2)
        rig.boot()
        assert not rig.ctl.faults and rig.relay == 1
        assert rig.last("unlock 1234")[0] == "OK" and rig.last("save")[0] == "OK"
        with open(root + "/settings.json") as f:
            text = f.read()
        assert json.loads(text[: text.rindex("}") + 1])["sleep"] == 0   # written at the next save
        old_missing = settings.defaults()
        del old_missing["warmup_s"]                      # a 0.1.0 key missing is still a problem
        assert "warmup_s missing" in settings.validate(old_missing)[1][0]
    finally:
        fwkit.rmtree(root)


def test_std_total_survives_a_reboot_and_an_old_runtime_file_has_none():
    root = fwkit.tmpdir()
    try:
        values = settings.defaults()
        for k in PT:
            values[k] = PT[k]
        values["warmup_s"] = 0
        values["display"] = 0
        values["total_save_s"] = 60
        settings.Store(root).save(values)
        settings.Store(root, "runtime").save({"total_x1000": 5000, "cal_age_s": 0})   # 0.1.0's runtime.json
        rig = fwkit.Rig(root=root, save=False)
        rig.set_pct(0.2)
        rig.set_pt(101.325, 0.0)
        rig.boot()
        ev = [f for f in rig.frames() if f[0] == "E" and f[4] == "SETTINGS"]
        assert not ev, ev                                # no problem reported for the missing std total
        rig.pulses("flow_pulse", 20, 3000)
        assert rig.last("unlock 1234")[0] == "OK" and rig.last("save")[0] == "OK"
        std = rig.ctl.auxiliary.process.std_x1000
        assert std > 0
        rig = rig.reboot()
        assert rig.ctl.auxiliary.process.std_x1000 == std
        assert rig.ctl.flow.total_x1000 > 5000
        rig.close()
    finally:
        fwkit.rmtree(root)


def test_steady_iteration_with_pt_and_battery_allocates_nothing():
    """gc.mem_alloc() around iterations that send no frame (MicroPython only), P/T and battery configured."""
    if not hasattr(gc, "mem_alloc"):
        return
    rig = fwkit.Rig(merged(PT, BATTERY, {"report_period_ms": 60000}))
    try:
        rig.set_pct(0.4)
        rig.set_pt(120.0, 25.0)
        rig.set_battery(3900)
        rig.pulses("flow_pulse", 40, 61000)              # past one report period: P, T, battery measured
        rig.frames()
        assert rig.ctl.auxiliary.process.valid
        worst = rig.worst_alloc()
        assert worst == 0, "steady iteration allocated %d bytes" % worst
    finally:
        rig.close()


def test_console_sets_the_new_keys_and_the_a_frame_follows():
    rig = fwkit.Rig()
    try:
        rig.set_pct(0.2)
        rig.boot()
        assert rig.last("unlock 1234")[0] == "OK"
        status, text = rig.said("set battery_low_mv 3500")       # supply_min_mv 4200 (USB) is above it
        assert status == "ERR" and "supply_min_mv" in text and "USB" in text, text
        assert rig.last("set supply_min_mv 3000")[0] == "OK"
        assert rig.last("set battery_low_mv 3500")[0] == "OK"
        assert rig.last("get battery_low_mv") == ("OK", "battery_low_mv=3500")
        assert rig.last("set base_c 15.0")[0] == "OK" and rig.last("get base_c") == ("OK", "base_c=15.00")
        assert rig.last("set sleep 1")[0] == "OK" and rig.ctl.s["sleep"] == 1
        assert rig.last("set pt_input analog")[0] == "OK"
        rig.set_pt(101.325, 15.0)
        rig.set_battery(3900)
        rig.run_ms(3000)
        a = rig.aux()[-1]
        assert a[A_MV] != "" and a[4] == "101.32", a             # 101.325 kPa reads 101.32 (whole counts)
        assert rig.last("set pt_input none")[0] == "OK" and rig.last("set battery_low_mv 0")[0] == "OK"
        rig.run_ms(3000)
        assert not rig.aux() and rig.ctl.auxiliary is None
    finally:
        rig.close()
