"""A power cut between a save's two renames (old file moved to .bak, new one still .tmp): the next load takes the
new file and finishes the rename, with no problem to report. On the emulated Pico the same cut left no
settings.json and the board in a SETTINGS fault with its relay off (tests/rp2040/test_power_cut_on_rp2040.py)."""

import os

import settings
import store


class Cut(Exception):
    pass


def cut_at_second_rename(base):
    """The store class `base` with the real save, but the power goes just before its second rename (tmp -> file)."""

    class Cutting(base):
        renames = 0

        def _rename(self, src, dst):
            self.renames += 1
            if self.renames == 2:
                raise Cut()
            super()._rename(src, dst)

    return Cutting


def _cut_save(root, old, new):
    if old is not None:
        settings.Store(root).save(old)
    try:
        cut_at_second_rename(settings.Store)(root).save(new)
    except Cut:
        return True
    return False


def test_a_cut_between_the_renames_loads_the_new_settings_and_finishes_the_save(tmp_path):
    root = str(tmp_path)
    old = dict(settings.defaults(), device_id="old", warmup_s=1)
    new = dict(old, device_id="new", warmup_s=2)
    assert _cut_save(root, old, new)
    assert sorted(os.listdir(root)) == ["settings.bak", "settings.tmp"]  # the window: no settings.json
    assert settings.Store(root).load() == (new, None)
    assert sorted(os.listdir(root)) == ["settings.bak", "settings.json"]  # the rename done at load
    assert settings.Store(root).load() == (new, None)
    settings.Store(root).save(dict(new, warmup_s=3))  # and the next save keeps `new` as the last good one
    assert settings.decode(open(os.path.join(root, "settings.bak")).read()) == new


def test_a_torn_tmp_without_a_file_still_falls_back_to_the_last_good_copy(tmp_path):
    root = str(tmp_path)
    old = dict(settings.defaults(), device_id="old")
    settings.Store(root).save(old)
    st = settings.Store(root)
    os.rename(st.path, st.bak)
    data = settings.encode(dict(old, device_id="new"))
    with open(st.path[:-5] + ".tmp", "w") as f:
        f.write(data[: len(data) // 2])  # not what a save leaves, but never to be taken for settings
    got, problem = st.load()
    assert got == old and problem == "settings.json missing, using last good"
    assert not os.path.exists(st.path)


def test_the_runtime_file_recovers_the_same_way(tmp_path):
    root = str(tmp_path)
    rt = store.Store(root, "runtime")
    rt.save({"total_x1000": 1, "cal_age_s": 5})

    try:
        cut_at_second_rename(store.Store)(root, "runtime").save({"total_x1000": 2, "cal_age_s": 6})
    except Cut:
        pass
    assert not os.path.exists(rt.path)
    assert rt.load_raw() == ({"total_x1000": 2, "cal_age_s": 6}, None)
