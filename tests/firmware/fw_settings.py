"""Settings file: checksum, truncated/corrupted/half-written files, and a save interrupted at every step."""

import fwkit
import settings


def write(path, data):
    with open(path, "w") as f:
        f.write(data)


def test_round_trip_and_defaults_validate():
    root = fwkit.tmpdir()
    try:
        st = settings.Store(root)
        values = settings.defaults()
        values["warmup_s"] = 42
        st.save(values)
        got, problem = st.load()
        assert problem is None and got == values
        assert settings.check(settings.defaults()) is None
    finally:
        fwkit.rmtree(root)


def test_missing_file_uses_defaults_and_says_so():
    root = fwkit.tmpdir()
    try:
        got, problem = settings.Store(root).load()
        assert got == settings.defaults() and problem == "settings.json missing, using defaults"
    finally:
        fwkit.rmtree(root)


def test_truncated_corrupted_and_half_written_files_fall_back():
    root = fwkit.tmpdir()
    try:
        st = settings.Store(root)
        good = settings.defaults()
        good["warmup_s"] = 11
        st.save(good)
        newer = dict(good)
        newer["warmup_s"] = 22
        st.save(newer)            # settings.bak now holds `good`
        data = settings.encode(newer)
        cases = (
            (data[: len(data) // 2], "truncated"),               # half-written
            (data[:-4], "truncated"),
            (data.replace('"warmup_s": 22', '"warmup_s": 23'), "checksum mismatch"),  # bit rot
            ("", "truncated"),
            ("\x00" * 40, "truncated"),
            (data.replace("\n", "x", 1), "truncated"),
        )
        for text, why in cases:
            write(st.path, text)
            got, problem = st.load()
            assert got["warmup_s"] == 11, (why, got["warmup_s"])
            assert problem is not None and why in problem and "using last good" in problem, problem
        write(st.bak, "garbage")
        write(st.path, "garbage")
        got, problem = st.load()
        assert got == settings.defaults() and problem.endswith("using defaults")
    finally:
        fwkit.rmtree(root)


def test_valid_checksum_but_bad_values_use_defaults_for_those_keys():
    root = fwkit.tmpdir()
    try:
        st = settings.Store(root)
        values = settings.defaults()
        values["warmup_s"] = 99999
        values["ch4_alarm_pct"] = 3.0      # breaks restore <= alarm <= power-off
        write(st.path, settings.encode(values))
        got, problem = st.load()
        assert got["warmup_s"] == 30 and got["ch4_alarm_pct"] == 1.0
        assert "warmup_s must be 0..900" in problem and "ch4_poweroff_pct" in problem
    finally:
        fwkit.rmtree(root)


class Crash(Exception):
    pass


class CrashingStore(settings.Store):
    """A power cut at step `at`: operations before it happen, the one at `at` does half its work or none."""

    def __init__(self, root, at):
        settings.Store.__init__(self, root)
        self.at = at
        self.n = 0

    def _tick(self):
        self.n += 1
        return self.n == self.at

    def _write(self, path, data):
        if self._tick():
            settings.Store._write(self, path, data[: len(data) // 3])
            raise Crash()
        settings.Store._write(self, path, data)

    def _read(self, path):
        if self._tick():
            raise Crash()
        return settings.Store._read(self, path)

    def _rename(self, src, dst):
        if self._tick():
            raise Crash()
        settings.Store._rename(self, src, dst)

    def _remove(self, path):
        if self._tick():
            raise Crash()
        settings.Store._remove(self, path)


def test_save_interrupted_at_every_step_leaves_old_or_new_never_a_mix():
    steps = 0
    for at in range(1, 12):
        root = fwkit.tmpdir()
        try:
            old = settings.defaults()
            old["warmup_s"] = 1
            old["device_id"] = "old"
            settings.Store(root).save(old)
            new = dict(old)
            new["warmup_s"] = 2
            new["device_id"] = "new"
            cs = CrashingStore(root, at)
            try:
                cs.save(new)
            except Crash:
                steps += 1
            got, _problem = settings.Store(root).load()
            assert got == old or got == new, (at, got["device_id"], got["warmup_s"])
            # and a second save after the "reboot" always works
            settings.Store(root).save(new)
            assert settings.Store(root).load() == (new, None)
        finally:
            fwkit.rmtree(root)
    assert steps == 5    # write, read back, remove .bak, move old to .bak, move new into place


def test_inconsistent_calibration_in_a_file_falls_back_to_uncalibrated():
    import methane

    assert settings.NOMINAL == methane.NOMINAL and settings.FRONT_ENDS == methane.FRONT_ENDS
    root = fwkit.tmpdir()
    try:
        st = settings.Store(root)
        values = settings.defaults()
        values["warmup_s"] = 7
        values["cal_span_raw"] = 20000       # span set, span gas 0.00 %: would read 0.00 % whatever the gas
        write(st.path, settings.encode(values))
        got, problem = st.load()
        assert "cal_zero_raw must be > 0" in problem
        assert (got["cal_zero_raw"], got["cal_span_raw"], got["cal_span_pct"]) == (0, 0, 0.0)  # uncalibrated
        assert got["warmup_s"] == 7 and got["k_pulses_per_l"] == 450.0   # the rest is kept
        values = settings.defaults()
        values["k_pulses_per_m3"] = 5.0        # both K-factors: only that group falls back
        values["cal_zero_raw"], values["cal_span_raw"], values["cal_span_pct"] = 4400, 12400, 2.0
        write(st.path, settings.encode(values))
        got, problem = st.load()
        assert "exactly one of" in problem and got["k_pulses_per_m3"] == 0.0 and got["cal_span_raw"] == 12400
    finally:
        fwkit.rmtree(root)
