"""The RP2040 ADC model shared by both virtual boards: noise of a few LSB, the wide DNL bins, and the CPython
twin's fake ADC drawing every read from it (the emulated Pico's reads are tested in tests/rp2040)."""

import statistics

import pytest

from hardware.twin import machine
from hardware.twin.adc_noise import DNL_CODES, AdcNoise, code_of_u16, u16


def test_read_u16_scaling_is_the_rp2_ports():
    assert u16(1000) == 16003 and u16(0) == 0 and u16(4095) == 65535  # checked on the emulated chip
    assert abs(code_of_u16(u16(2345)) - 2345) < 1


def test_noise_free_model_quantises_and_clips():
    adc = AdcNoise(sigma_lsb=0, dnl_width_lsb=0)
    assert adc.codes(1000.4, 5) == [1000] * 5
    assert adc.code(-12.0) == 0 and adc.code(5000.0) == 4095


def test_noise_spreads_a_few_lsb_around_the_input():
    reads = AdcNoise(seed=1).codes(3000.3, 2000)
    assert abs(statistics.mean(reads) - 3000.3) < 0.2
    assert 1.8 < statistics.pstdev(reads) < 2.2
    assert len(set(reads)) > 8  # a frozen value never comes out of a live input
    assert AdcNoise(seed=1).codes(3000.3, 50) == reads[:50]  # same seed, same reads


@pytest.mark.parametrize("wide", DNL_CODES)
def test_the_wide_dnl_bins_swallow_their_neighbours(wide):
    adc = AdcNoise(sigma_lsb=0)
    assert [adc.code(wide + d) for d in (-4, -2, 0, 2, 4)] == [wide] * 5
    assert adc.code(wide - 5) == wide - 5 and adc.code(wide + 5) == wide + 5
    noisy = AdcNoise(seed=2).codes(wide + 1.0, 1000)
    assert noisy.count(wide) > 800  # a reading parked on a wide code


def test_the_twins_fake_adc_draws_each_read_from_the_model():
    machine.ADC.clear()
    try:
        adc = machine.ADC(26)
        adc.set_u16(u16(2000))
        assert {adc.read_u16() for _ in range(20)} == {u16(2000)}  # no model: exact
        machine.ADC.noise = AdcNoise(seed=3)
        reads = [adc.read_u16() >> 4 for _ in range(500)]
        assert len(set(reads)) > 5 and abs(statistics.mean(reads) - 2000) < 0.5
    finally:
        machine.ADC.noise = None
        machine.ADC.clear()
