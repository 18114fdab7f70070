"""Fixtures for the emulated Pico (hardware/rp2040/): MicroPython's RP2040 port in rp2040js under Node.js.

Every test here skips, saying what is missing, without Node.js, the npm package rp2040js
(`make nodedeps`) or the firmware image: $FIREDAMP_RP2040_DIR, else the shared folder's rp2040/ wherever
tests.helpers.find_shared finds it (so a clone of a checkout runs these too). The emulator runs busy code
at about 0.15-0.2x real time on this machine and skips the time the firmware sleeps.

    blank_pico(link=True)   a Pico with MicroPython only (fresh flash), started; stopped at teardown
    golden_flash            a flash image with our firmware installed (mpremote, once per session)
    board(front_end=...)    that image booted: pico, instruments wired, a Probe reading frames
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest

from hardware.rp2040 import driver
from tests.helpers import find_shared

if not os.environ.get("FIREDAMP_RP2040_DIR"):
    _found, _ = find_shared("rp2040")
    if _found is not None:
        os.environ["FIREDAMP_RP2040_DIR"] = str(_found)

MISSING = driver.missing()


def pytest_collection_modifyitems(items):
    if MISSING is None:
        return
    for item in items:
        if "tests/rp2040" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=f"emulated Pico: {MISSING}"))


@pytest.fixture
def blank_pico(tmp_path):
    started = []

    def make(link: bool = True, flash=None, **kw):
        pico = driver.EmulatedPico(flash or tmp_path / "flash.bin", link=tmp_path / "pico" if link else None, **kw)
        started.append(pico)
        return pico.start()

    yield make
    for pico in started:
        pico.kill()


@pytest.fixture(scope="session")
def golden_flash(tmp_path_factory):
    """Flash images with the firmware installed as `firedamp flash` does, one per (front end, profile)."""
    from hardware.rp2040.board import board_settings, install, install_settings

    root = tmp_path_factory.mktemp("golden")
    images = {}

    def get(front_end="ma", profile="coal_face"):
        key = (front_end, profile)
        if key not in images:
            base = images.get(("any",))
            path = root / f"{front_end}-{profile}.bin"
            pico = driver.EmulatedPico(path, link=root / f"pico-{front_end}-{profile}", speed=0)
            if base is not None:
                shutil.copyfile(base, path)  # firmware already there: only the settings change
            values = board_settings("emu-1", front_end, profile=profile, warmup_s=0, display=0)
            pico.start(paused=True)
            try:
                wire(pico, values, profile)
                pico.run()
                if base is None:
                    install(str(pico.link.path), values)
                    images[("any",)] = path
                else:
                    install_settings(str(pico.link.path), values)
            finally:
                pico.stop()
            images[key] = path
        return images[key]

    return get


def wire(pico, values, profile):
    """Sensors connected before power-on: clean air, no flow, VSYS, the relay contact."""
    from hardware.rp2040.board import Instruments
    from hardware.rp2040.relay_time import levels

    inst = Instruments(pico, values)
    inst.wire()
    inst.gas(levels(profile)[1])
    inst.flow(0.0)
    return inst


@dataclass
class Board:
    pico: driver.EmulatedPico
    inst: object
    probe: object
    values: dict


@pytest.fixture
def board(tmp_path, golden_flash):
    """A calibrated board with our firmware (warm-up 0), clean air, booted and reporting; ADC noise on."""
    from hardware.rp2040.board import Probe, board_settings
    from hardware.twin.adc_noise import AdcNoise

    made = []

    def make(front_end="ma", profile="coal_face", seed=0, speed=0.0):
        flash = tmp_path / f"flash-{len(made)}.bin"
        shutil.copyfile(golden_flash(front_end, profile), flash)
        pico = driver.EmulatedPico(flash, link=tmp_path / f"pico-{len(made)}", speed=speed,
                                   noise=AdcNoise(seed=seed))
        values = board_settings("emu-1", front_end, profile=profile, warmup_s=0, display=0)
        pico.start(paused=True)
        inst = wire(pico, values, profile)
        pico.run()
        probe = Probe(str(pico.link.path))
        b = Board(pico, inst, probe, values)
        made.append(b)
        return b

    yield make
    for b in made:
        b.probe.close()
        b.pico.kill()
