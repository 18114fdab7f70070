"""Console: every command, every kind of bad input (unknown, bad number, out of range, locked), records."""

import fwkit
import settings


def rig_on(overrides=None):
    rig = fwkit.Rig(overrides)
    rig.set_pct(0.2)
    rig.boot()
    return rig


def test_help_status_get_log_work_locked():
    rig = rig_on()
    try:
        replies = rig.cmd("help")
        assert [s for s, _ in replies[:-1]] == ["MORE"] * (len(replies) - 1) and replies[-1][0] == "OK"
        assert "cal span <pct>" in " ".join(t for _, t in replies)
        replies = rig.cmd("status")
        text = " ".join(t for _, t in replies)
        assert replies[-1][0] == "OK" and "state NORMAL" in text and "gas 0.2" in text and "locked" in text
        replies = rig.cmd("get")
        assert len(replies) == len(settings.KEYS) + 1 and replies[-1] == ("OK", "%d settings" % len(settings.KEYS))
        assert ("MORE", "pin=(hidden)") in replies
        assert rig.last("get ch4_alarm_pct") == ("OK", "ch4_alarm_pct=1.00")
        assert rig.last("log") == ("OK", "no records yet")
    finally:
        rig.close()


def test_state_changing_commands_need_unlock():
    rig = rig_on()
    try:
        before = dict(rig.ctl.s)
        for line in ("set warmup_s 10", "profile plant", "cal zero", "cal span 1.0", "ack", "selftest",
                     "save", "factory-reset"):
            status, text = rig.last(line)
            assert status == "ERR" and text.startswith("locked: unlock <pin> first"), (line, text)
        assert rig.ctl.s == before
    finally:
        rig.close()


def test_unlock_wrong_pin_lockout_and_lock():
    rig = rig_on()
    try:
        assert rig.last("unlock 9999")[0] == "ERR"
        assert rig.last("unlock 0000")[0] == "ERR"
        status, text = rig.last("unlock 1111")
        assert status == "ERR" and "0 tries" in text
        status, text = rig.last("unlock 1234")
        assert status == "ERR" and "wait" in text       # locked out even with the right pin
        rig.run_ms(61000)
        assert rig.last("unlock 1234")[0] == "OK"
        rig.step()
        assert rig.readings()[-1]["flags"] & 0x08    # flag: console unlocked
        assert rig.last("lock") == ("OK", "locked")
        assert rig.last("selftest")[0] == "ERR"
    finally:
        rig.close()


def test_unlock_lapses_after_silence():
    rig = rig_on({"unlock_timeout_s": 10})
    try:
        rig.last("unlock 1234")
        rig.run_ms(9000)
        assert rig.last("set warmup_s 5")[0] == "OK"    # activity renews it
        rig.run_ms(10500)
        assert rig.last("set warmup_s 6")[0] == "ERR"
    finally:
        rig.close()


def test_set_good_and_every_kind_of_bad_value():
    rig = rig_on()
    try:
        rig.last("unlock 1234")
        bad = (
            ("set", "usage: set <key> <value>"),
            ("set warmup_s", "usage: set <key> <value>"),
            ("set nosuch 1", "unknown key 'nosuch' (get lists the keys)"),
            ("set ch4_alarm_pct abc", "ch4_alarm_pct must be 0.10..4.00"),
            ("set ch4_alarm_pct 9", "ch4_alarm_pct must be 0.10..4.00"),
            ("set ch4_alarm_pct nan", "ch4_alarm_pct must be 0.10..4.00"),
            ("set ch4_alarm_pct inf", "ch4_alarm_pct must be 0.10..4.00"),
            ("set warmup_s 2.5", "warmup_s must be 0..900"),
            ("set warmup_s -1", "warmup_s must be 0..900"),
            ("set front_end amps", "front_end must be one of ma, volt, freq"),
            ("set device_id bad*id", "device_id must be 1..16 characters of A-Z a-z 0-9 _ -"),
            ("set pin 12ab", "pin must be 4..8 characters of digits"),
            ("set ch4_alarm_pct 2.00", None),  # custom cross-check: alarm above power-off 1.50
        )
        for line, want in bad:
            before = dict(rig.ctl.s)
            status, text = rig.said(line)
            assert status == "ERR", line
            if want is not None:
                assert text == want, (line, text)
            else:
                assert "ch4_restore_pct <= ch4_alarm_pct <= ch4_poweroff_pct" in text
            assert rig.ctl.s == before, line
        frames = []
        rig.stream.feed(b"set warmup_s 20\n")
        rig.step()
        frames = rig.frames()
        ok = [f for f in frames if f[0] == "C"]
        ev = [f for f in frames if f[0] == "E" and f[4] == "SET"]
        assert ok[-1][4] == "OK" and rig.ctl.s["warmup_s"] == 20
        assert ev and ev[0][5].startswith("warmup_s 0 -> 20, uptime ")
        # choosing the other K-factor switches the flow unit
        assert rig.last("set k_pulses_per_m3 60")[0] == "OK"
        assert rig.ctl.s["k_pulses_per_l"] == 0.0 and rig.ctl.flow_unit == "m3/min"
    finally:
        rig.close()


def test_overlong_unknown_empty_and_non_ascii_lines():
    rig = rig_on()
    try:
        rig.stream.feed(b"x" * 70 + b"\n")
        rig.step()
        c = [f for f in rig.frames() if f[0] == "C"]
        assert len(c) == 1 and c[0][4] == "ERR" and "longer than 64" in c[0][5]
        assert rig.last("frobnicate now") == ("ERR", "unknown command 'frobnicate' (help lists the commands)")
        assert rig.cmd("   ") == []
        assert rig.last("st\xc3\xa4tus") [0] == "ERR"
        rig.stream.feed(b"sta")          # split across reads, \r\n ending
        rig.step()
        rig.stream.feed(b"tus\r\n")
        rig.step()
        assert [f for f in rig.frames() if f[0] == "C"][-1][4] == "OK"
    finally:
        rig.close()


def test_profile_command():
    rig = rig_on()
    try:
        rig.last("unlock 1234")
        status, text = rig.said("profile mars")
        assert status == "ERR" and text == "profile must be " + "|".join(settings.PROFILE_NAMES)
        assert rig.cmd("profile mars")[0][0] == "ERR"       # one line for an ordinary device id and uptime
        assert rig.last("profile") == ("ERR", "usage: profile <name>")
        status, text = rig.last("profile intake_air")
        assert status == "OK" and "power-off 0.50" in text
        rig.set_pct(0.6)
        rig.step()
        assert rig.relay == 0
        status, text = rig.last("profile plant")
        assert status == "OK" and "LEL" in text
        assert rig.ctl.unit == "LEL"
        rig.run_ms(1000)
        assert rig.readings()[-1]["unit"] == "LEL"
        assert rig.last("log")[1].startswith("2 records")
    finally:
        rig.close()


def test_ack_after_power_off():
    rig = rig_on()
    try:
        rig.last("unlock 1234")
        assert rig.last("ack")[1].startswith("nothing to acknowledge")
        rig.set_pct(1.7)
        rig.step()
        assert rig.relay == 0
        rig.set_pct(1.2)
        rig.step()
        assert rig.last("ack") == ("ERR", "reading must be below the restore level 1.00 first")
        rig.set_pct(0.6)
        rig.step()
        assert rig.readings()[-1]["flags"] & 0x04     # flag: acknowledgement awaited
        rig.stream.feed(b"ack\n")
        rig.step(2)
        fr = rig.frames()
        assert [f for f in fr if f[0] == "C"][-1][4] == "OK"
        codes = [f[4] for f in fr if f[0] == "E"]
        assert "ACK" in codes and "RESTORE" in codes
        assert rig.relay == 1
    finally:
        rig.close()


def test_calibration_zero_span_and_their_errors():
    rig = rig_on()
    try:
        rig.last("unlock 1234")
        assert rig.last("cal")[0] == "ERR"
        assert rig.last("cal span")[1].startswith("usage: cal zero | cal span <pct>")
        assert rig.last("cal span abc")[1] == "span must be 0.10..4.00 (% VOL, the certified gas)"
        assert rig.last("cal span 5")[1] == "span must be 0.10..4.00 (% VOL, the certified gas)"
        rig.set_ma(4.4)                       # the sensor reads 0.4 mA high in clean air
        rig.step(2)
        assert rig.last("cal zero")[0] == "OK"
        status, text = rig.last("cal span 2.00")   # span gas not applied: signal too close to zero
        assert status == "ERR" and "too close to zero" in text
        rig.set_ma(12.4)
        rig.step(2)
        assert rig.last("cal span 2.00")[0] == "OK"
        rig.set_ma(8.4)
        rig.step(2)
        assert abs(rig.ctl.methane.x100 - 100) <= 1
        text = rig.last("log")
        assert text[1].startswith("2 records")
        recs = [t for s, t in rig.cmd("log") if s == "MORE"]
        assert recs[0].startswith("CAL zero 0 -> 44") and "uA" in recs[0] and "uptime" in recs[0]
        rig.set_ma(3.0)
        rig.step()
        assert "fix the sensor line" in rig.last("cal zero")[1]
    finally:
        rig.close()


def test_cal_refused_during_warm_up():
    rig = fwkit.Rig({"warmup_s": 60})
    try:
        rig.step(10)
        rig.last("unlock 1234")
        assert rig.last("cal zero")[1].startswith("sensor warming up: wait ")
    finally:
        rig.close()


def test_selftest_save_and_factory_reset():
    rig = rig_on()
    try:
        rig.last("unlock 1234")
        assert rig.last("selftest")[0] == "OK"
        rig.step(9)
        ev = [f for f in rig.frames() if f[0] == "E" and f[4] == "SELFTEST"]
        assert ev and ev[0][5] == "pass"
        assert rig.relay == 1        # an on-demand self-test never leaves power off
        rig.last("set report_period_ms 2000")
        assert rig.last("save") == ("OK", "saved")
        assert settings.Store(rig.root).load()[0]["report_period_ms"] == 2000
        rig.last("set device_id mine-7")
        assert rig.last("factory-reset")[0] == "OK"
        values, problem = settings.Store(rig.root).load()
        assert problem is None and values["report_period_ms"] == 1000 and values["device_id"] == "mine-7"
        assert rig.last("set warmup_s 1")[0] == "ERR"      # factory reset locks the console
    finally:
        rig.close()


def test_missing_settings_is_a_fault_until_saved_and_acknowledged():
    rig = fwkit.Rig(save=False)
    try:
        ev = [f for f in rig.frames() if f[0] == "E" and f[4] == "SETTINGS"]
        assert ev and ev[0][5] == "settings.json missing, using defaults"
        rig.set_pct(0.2)
        rig.run_ms(31000)                      # default 30 s warm-up
        assert rig.ctl.faults == 0x20 and rig.relay == 0
        assert rig.readings()[-1]["state"] == "FAULT"
        rig.last("unlock 1234")
        assert rig.last("save") == ("OK", "saved")
        rig.step()
        assert rig.ctl.faults == 0 and rig.relay == 0 and rig.ctl.alarm.state == 4   # latched POWEROFF
        assert rig.last("ack")[0] == "OK"
        rig.step()
        assert rig.relay == 1
    finally:
        rig.close()


def test_records_file_stays_small_and_keeps_the_newest():
    rig = rig_on()
    try:
        for i in range(400):
            rig.ctl.record("SET", "test_key %d -> %d" % (i, i + 1))
        import os
        path = rig.ctl.records_path
        assert os.stat(path)[6] <= 4096 + 100 and os.stat(path + ".old")[6] <= 4096 + 100
        replies = rig.cmd("log")
        recs = [t for s, t in replies if s == "MORE"]
        count = int(replies[-1][1].split()[0])
        assert 50 <= count < 400      # the oldest were rotated away
        assert recs[-1].startswith("SET test_key 399 -> 400")
        assert len(recs) == 10
    finally:
        rig.close()


def test_a_command_that_raises_is_answered_and_the_loop_goes_on():
    rig = rig_on()
    try:
        def boom(args, now):
            raise MemoryError()
        rig.ctl.console.cmd_status = boom
        assert rig.last("status") == ("ERR", "command failed (MemoryError); check with status and get")
        assert rig.ctl.console.failures == 1
        rig.step(3)
        assert rig.relay == 1
    finally:
        rig.close()


def test_calibration_that_would_hide_the_gas_is_refused():
    """`set cal_span_raw` alone used to leave span gas 0.00 %: every reading 0.00 %, power on at 3 % CH4."""
    rig = rig_on()
    try:
        rig.last("unlock 1234")
        bad = (
            ("set cal_span_raw 20000", "cal_zero_raw must be > 0 with cal_span_raw set: use cal zero"),
            ("set cal_zero_raw 19500", "cal_zero_raw must be <= 19200 for front_end ma (now 19500): use cal zero"),
        )
        for line, want in bad:
            before = dict(rig.ctl.s)
            assert rig.last(line) == ("ERR", want), line
            assert rig.ctl.s == before
        assert rig.last("set cal_zero_raw 4000")[0] == "OK"
        assert rig.last("set cal_span_raw 4500") == ("ERR", "cal_span_raw must be >= cal_zero_raw + 800: use cal span")
        assert rig.last("set cal_span_raw 20000") == (
            "ERR", "cal_span_pct must be 0.10..4.00 with cal_span_raw set: use cal span")
        rig.set_pct(3.0)
        rig.step()
        assert rig.relay == 0 and rig.ctl.alarm.state == 4     # the gas is still seen
        # a calibration done with cal span then pins the range: the span gas must stay on the scale
        rig.set_pct(0.0)
        rig.step(2)
        rig.last("cal zero")
        rig.set_pct(2.0)
        rig.step(2)
        assert rig.last("cal span 2.00")[0] == "OK"
        assert rig.last("set range_vol_pct 1.5") == (
            "ERR", "cal_span_pct must be 0.10..1.50 with cal_span_raw set: use cal span")
    finally:
        rig.close()


def test_long_replies_are_split_never_cut():
    """With a 16-character device id, 10-digit uptime: the allowed values must all arrive (MORE lines, then ERR)."""
    rig = rig_on({"device_id": "mine-face-123456"})
    try:
        rig.ctl.uptime.s = 9999999            # ~115 days of uptime: a 10-digit uptime_ms field
        rig.last("unlock 1234")
        for line, needed in (("profile mars", settings.PROFILE_NAMES),
                             ("set ch4_alarm_pct 2.00", ("ch4_poweroff_pct", "(now 1.00, 2.00, 1.50)")),
                             ("help", ("factory-reset", "custom"))):
            rig.stream.feed((line + "\n").encode())
            rig.step()
            raw = [bytes(w).decode() for w in rig.stream.out]
            rig.stream.out = []
            replies = [fwkit.parse(r.rstrip("\n")) for r in raw if ",C," in r]
            assert all(len(r) <= 128 for r in raw)
            statuses = [f[4] for f in replies]
            assert statuses[-1] in ("OK", "ERR") and set(statuses[:-1]) <= {"MORE"}, statuses
            text = " ".join(f[5] for f in replies)
            assert "..." not in text, text
            for word in needed:
                assert word in text, (line, word, text)
    finally:
        rig.close()


def test_pin_lockout_ends_even_across_the_tick_wrap():
    rig = rig_on()
    try:
        period = 1 << 30                  # the RP2040's ticks_ms period; ticks_diff is signed in half of it
        rig.ctl.clock.ticks_diff = lambda a, b: (a - b + period // 2) % period - period // 2
        con = rig.ctl.console
        for _ in range(3):
            con.cmd_unlock(["1111"], 1000)
        con.cmd_unlock(["1234"], 2000)
        assert not con.unlocked(2000)      # locked out for 60 s
        week = (1000 + 7 * 86400000) % period
        con.cmd_unlock(["1234"], week)     # a week later the difference has wrapped negative
        assert con.unlocked(week)
    finally:
        rig.close()


def test_cal_zero_in_gas_says_so():
    rig = rig_on()
    try:
        rig.last("unlock 1234")
        rig.set_ma(19.6)                  # 3.9 % on the nominal scale: not clean air
        rig.step(2)
        before = dict(rig.ctl.s)
        status, text = rig.last("cal zero")
        assert status == "ERR" and text.startswith("zero signal 19") and "too close to span 20000" in text, text
        assert rig.ctl.s == before
    finally:
        rig.close()


def test_maintenance_commands_are_loaded_while_unlocked_and_dropped_at_lock():
    import sys

    sys.modules.pop("commands", None)  # as after a power-on (an earlier test's board may have left it loaded)
    rig = fwkit.Rig()
    try:
        rig.boot()
        assert "commands" not in sys.modules  # not at start: a board nobody unlocks never loads it
        assert rig.last("set warmup_s 40")[0] == "ERR"  # refused while locked, and not kept loaded for it
        assert "commands" not in sys.modules
        for value in ("41", "42"):  # unlock, a change, lock: twice, so the module loads again after a drop
            assert rig.last("unlock 1234")[0] == "OK"
            assert rig.last("set warmup_s " + value)[0] == "OK"
            assert "commands" in sys.modules
            assert rig.last("lock")[0] == "OK"
            assert "commands" not in sys.modules
        assert rig.last("get warmup_s") == ("OK", "warmup_s=42")
    finally:
        rig.close()
