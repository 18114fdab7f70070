"""A power cut during a board settings save, at every file operation and at several cut points inside the write,
then a real boot of the firmware (main.build on the fake machine): the board runs on the old or the new
settings, never a mix, and reports the SETTINGS fault (with its relay off) whenever it could not read the new
file cleanly. tests/firmware/fw_settings.py covers Store.save/load after an existing file; this adds the first
save on a fresh board, cuts at every byte boundary class of the write, and the boot that follows.
"""

import importlib
import os
import shutil

import pytest

from hardware.twin.virtual import SimClock, load_firmware

load_firmware()
machine = importlib.import_module("machine")
board = importlib.import_module("board")
fw_main = importlib.import_module("main")
settings = importlib.import_module("settings")


class Cut(Exception):
    pass


class CuttingStore(settings.Store):
    """The real Store; the power goes at file operation `at`; a write cut there keeps `keep` of its bytes."""

    def __init__(self, root, at, keep):
        super().__init__(root)
        self.at, self.keep, self.n = at, keep, 0

    def _cut(self):
        self.n += 1
        return self.n == self.at

    def _write(self, path, data):
        if self._cut():
            super()._write(path, data[: self.keep(len(data))])
            raise Cut()
        super()._write(path, data)

    def _read(self, path):
        if self._cut():
            raise Cut()
        return super()._read(path)

    def _rename(self, src, dst):
        if self._cut():
            raise Cut()
        super()._rename(src, dst)

    def _remove(self, path):
        if self._cut():
            raise Cut()
        super()._remove(path)


def boot(root):
    machine.Pin.clear()
    machine.ADC.clear()
    machine.ADC.set(29, 33000)
    machine.ADC.set(26, 11916)
    ctl = fw_main.build(board.Board("pico", stream=_Sink(), root=root), SimClock(0))
    for _ in range(3):
        ctl.step()
    return ctl


class _Sink:
    def read(self, n=256):
        return None

    def write(self, data):
        return len(data)


KEEP = {"nothing": lambda n: 0, "one byte": lambda n: 1, "half": lambda n: n // 2, "all but the newline": lambda n: n - 1}


@pytest.mark.parametrize("first_save", [False, True], ids=["over an old file", "first save on a fresh board"])
@pytest.mark.parametrize("keep", list(KEEP), ids=list(KEEP))
def test_power_cut_at_every_step_of_a_save_then_boot(tmp_path, first_save, keep):
    old = dict(settings.defaults(), device_id="old", warmup_s=0, display=0)
    new = dict(old, device_id="new", ch4_alarm_pct=0.8, profile="custom", ch4_poweroff_pct=1.2,
               ch4_restore_pct=0.8)
    cuts = 0
    for at in range(1, 10):
        root = str(tmp_path / f"at{at}")
        os.mkdir(root)
        if not first_save:
            settings.Store(root).save(old)
        try:
            CuttingStore(root, at, KEEP[keep]).save(new)
        except Cut:
            cuts += 1
        values, problem = settings.Store(root).load()
        ctl = boot(root)
        assert ctl.s == values
        fault = bool(ctl.faults & 0x0020)
        if values == new:
            assert problem is None or "last good" in problem
        elif values == old:
            assert not first_save
        else:  # neither: only possible for a fresh board, and then it runs on defaults and says so
            assert first_save and values == settings.defaults() and problem
        assert fault == (problem is not None), (at, problem)
        if fault:
            assert ctl.alarm.relay == 0, "a board in a settings fault must not allow power"
        shutil.rmtree(root)
    assert cuts == (3 if first_save else 5)  # write, read back, [remove .bak, move old to .bak,] move into place
