"""Power cut while `save` writes settings to the real littlefs of the emulated Pico: the runner is stopped at a
random instant of the emulated clock (its flash file is written through, so what the chip had not written is
lost, as in a power cut); after the reboot the settings are the old ones or the new ones, never mixed or lost."""

import random
import shutil

from hardware.rp2040 import driver
from hardware.rp2040.board import Instruments, Probe, ready
from hardware.twin.adc_noise import AdcNoise

CUTS = 6


def test_settings_are_old_or_new_after_a_power_cut_during_save(board, tmp_path):
    b = board("ma", "coal_face")
    flash = b.pico.flash
    ready(b.probe)
    rng = random.Random(11)
    outcomes = []
    value = 300
    for i in range(CUTS):
        new = 400 + 100 * i
        assert b.probe.console("unlock 1234").status == "OK"
        assert b.probe.console(f"set unlock_timeout_s {new}").status == "OK"
        t0 = b.pico.now_ns()
        b.probe.ser.write(b"save\n")
        # cut within the next 0-1.2 s emulated: before, during or after the write
        b.pico.power_cut_at(t0 + rng.randrange(0, 1_200_000_000))
        b.pico.wait_for(lambda: not b.pico.alive, 60, "the power cut")
        b.probe.close()
        b.pico.kill()
        shutil.copyfile(flash, tmp_path / f"after-cut-{i}.bin")  # kept for a post-mortem
        pico = driver.EmulatedPico(flash, link=tmp_path / f"pico-cut-{i}", speed=0, noise=AdcNoise(seed=i))
        pico.start(paused=True)
        inst = Instruments(pico, b.values)
        inst.wire()
        inst.gas(0.1)
        inst.flow(0.0)
        pico.run()
        probe = Probe(str(pico.link.path))
        b.pico, b.inst, b.probe = pico, inst, probe
        r = ready(probe)
        assert r.faults & 0x20 == 0, r  # SETTINGS fault: the file was unreadable
        got = probe.console("get unlock_timeout_s").text
        kept = int(float(got.split("=")[1]))
        assert kept in (value, new), (got, value, new)
        outcomes.append("new" if kept == new else "old")
        value = kept
    print(f"power cut during save, {CUTS} cuts: {outcomes}")
