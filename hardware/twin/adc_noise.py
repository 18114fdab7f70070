"""The RP2040 ADC's errors as a model: what a 12-bit conversion returns for a given input voltage.

One model for both virtual boards: the CPython twin's fake `machine.ADC` draws each read from it, and the
emulated Pico (hardware/rp2040/) is fed lists of codes drawn from it. Two effects, both from the RP2040
datasheet's ADC chapter:

- **Noise**: the ADC's ENOB is about 9 bits (datasheet: 8.7 ENOB at the specified conditions), i.e. a
  spread of a few LSB read to read; modelled as Gaussian with `sigma_lsb` (default 2.0 LSB).
- **DNL spikes** (erratum RP2040-E11): codes 512, 1536, 2560 and 3584 have far wider bins than the rest,
  so inputs a few LSB either side of them read as that code. Modelled as a bin `dnl_width_lsb` wide
  (default 8) centred on each of them, taken from its neighbours. The width is our approximation of the
  published DNL plots, not a measured figure of a particular chip.

`u16(code)` turns a 12-bit code into what MicroPython's `ADC.read_u16()` returns on the rp2 port
(`code << 4 | code >> 8`, checked on the emulated chip: raw 1000 reads 16003).
"""

from __future__ import annotations

import random

FULL = 4095
DNL_CODES = (512, 1536, 2560, 3584)


def u16(code: int) -> int:
    """A 12-bit code as `read_u16()` returns it on the RP2040 port."""
    return (code << 4) | (code >> 8)


def code_of_u16(value: int) -> float:
    """The (fractional) 12-bit input level that a 16-bit reading stands for (inverse of `u16`, unrounded)."""
    return value * FULL / 65535


class AdcNoise:
    """Draws 12-bit codes for an input level; deterministic for a given seed.

    sigma_lsb: Gaussian noise in LSB (0: none). dnl_width_lsb: width of the wide bins at DNL_CODES
    (0 or 1: none).
    """

    def __init__(self, sigma_lsb: float = 2.0, dnl_width_lsb: float = 8.0, seed: int = 0):
        if sigma_lsb < 0 or dnl_width_lsb < 0:
            raise ValueError("sigma_lsb and dnl_width_lsb must be >= 0")
        self.sigma_lsb = sigma_lsb
        self.dnl_half = dnl_width_lsb / 2.0 if dnl_width_lsb > 1 else 0.0
        self._rng = random.Random(seed)

    def quantise(self, level: float) -> int:
        """The code for an input level in LSB (0..4095 full scale), noise already added: the DNL and clipping."""
        for c in DNL_CODES:
            if abs(level - c) <= self.dnl_half:
                return c
        return max(0, min(FULL, int(round(level))))

    def code(self, level: float) -> int:
        """One conversion of an input at `level` LSB (a float: the ideal, unquantised input)."""
        noisy = level + (self._rng.gauss(0.0, self.sigma_lsb) if self.sigma_lsb else 0.0)
        return self.quantise(noisy)

    def codes(self, level: float, n: int) -> list[int]:
        """n successive conversions of the same input."""
        return [self.code(level) for _ in range(n)]

    def read_u16(self, value_u16: int) -> int:
        """One noisy `read_u16()` for an input that a noise-free ADC would read as `value_u16`."""
        return u16(self.code(code_of_u16(value_u16)))
