"""STUCK with a real ADC (CPython twin, the RP2040 noise and DNL model of hardware/twin/adc_noise.py): a frozen
transmitter is caught although no two reads repeat, a live steady reading never is (issue 12, section 3).
The emulated Pico's leg of the same two cases is tests/rp2040/test_stuck_on_rp2040.py."""

import random

import fwkit
import machine
import pytest

from hardware.twin.adc_noise import AdcNoise

STUCK = 0x0008
STUCK_S = 60


@pytest.fixture
def noisy_adc():
    machine.ADC.noise = AdcNoise(sigma_lsb=2.0, seed=7)
    yield machine.ADC.noise
    machine.ADC.noise = None


def stuck_seen(rig, seconds, level_at):
    """Run `seconds` with the 4-20 mA input at level_at(second) (mA); -> first second STUCK was set, or None."""
    for t in range(seconds):
        rig.set_ma(level_at(t))
        rig.run_ms(1000)
        if rig.ctl.faults & STUCK:
            return t + 1
    return None


@pytest.mark.parametrize("pct", [0.02, 0.3, 1.9])  # 1.9 % sits on the wide DNL bin at code 1536 (~7.8 mA)
def test_a_frozen_transmitter_is_stuck_under_adc_noise(noisy_adc, pct):
    rig = fwkit.Rig({"stuck_s": STUCK_S})
    try:
        ma = 4.0 + 16.0 * pct / 4.0
        rig.boot()
        reads = [machine.ADC(26).read_u16() >> 4 for _ in range(50)]
        assert len(set(reads)) > 1, "the noise model must make reads differ (else this tests nothing)"
        at = stuck_seen(rig, 3 * STUCK_S, lambda t: ma)
        assert at is not None and STUCK_S <= at <= STUCK_S + 3, at  # stuck_s, plus at most one 1.6 s block
        assert rig.relay == 0  # a fault: power off
        rig.set_ma(ma + 0.05)  # the transmitter lives again: a clear move
        rig.run_ms(2000)
        assert not rig.ctl.faults & STUCK
    finally:
        rig.close()


@pytest.mark.parametrize("pct", [0.02, 0.3, 1.9])
@pytest.mark.parametrize("sensor_noise", [0.01, 0.002])
def test_a_steady_live_reading_is_never_stuck(noisy_adc, pct, sensor_noise):
    """Clean air as the simulator's catalytic head gives it: steady, with its own 0.01 % CH4 noise a second;
    and a head five times quieter (0.002 %: the quietest signal methane.py's doc promises to tell from frozen)."""
    rng = random.Random(3)
    rig = fwkit.Rig({"stuck_s": STUCK_S})
    try:
        rig.boot()
        level = lambda t: 4.0 + 16.0 * (pct + rng.gauss(0, sensor_noise)) / 4.0  # noqa: E731
        assert stuck_seen(rig, 10 * STUCK_S, level) is None
    finally:
        rig.close()


def test_without_noise_a_constant_input_is_still_stuck_and_a_changing_one_is_not():
    rig = fwkit.Rig({"stuck_s": STUCK_S})
    try:
        rig.boot()
        assert stuck_seen(rig, 5 * STUCK_S, lambda t: 5.0 + 0.01 * (t % 2)) is None
        assert stuck_seen(rig, 3 * STUCK_S, lambda t: 5.0) is not None
    finally:
        rig.close()
