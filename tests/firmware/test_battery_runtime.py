"""The run time left (firmware/battery.py) against a simulated cell discharging at a constant load: the truth
is the twin's cell model (hardware/twin/signals.py: its own rest-voltage curve and internal resistance, not
the firmware's curve), read through the RP2040 ADC noise model; and the cut-off comes before the brown-out.
CPython only (the twin's cell model); the loop at its slowest period (500 ms) to simulate hours quickly."""

import fwkit
import machine
import pytest

from hardware.twin.adc_noise import AdcNoise
from hardware.twin.signals import LiIonCell, u16_of_level

LEVELS = {"battery_low_mv": 3500, "battery_cutoff_mv": 3300, "battery_full_mv": 4200, "supply_min_mv": 3000,
          "loop_period_ms": 500}
STEP_S = 0.5


def discharge(cell, minutes, every_min=5, seed=1):
    """Run a board on `cell` for `minutes`; -> (rows of (t_min, estimate_min or None, true_min), the first
    time with the BATTERY fault, relay then, the lowest voltage the board saw powered)."""
    machine.ADC.noise = AdcNoise(seed=seed)
    rig = fwkit.Rig(LEVELS)
    try:
        rig.set_pct(0.2)
        truth_s = cell.time_to(LEVELS["battery_cutoff_mv"])
        rows, cut_at, relay_at_cut = [], None, None
        t_s = 0.0
        per_min = int(60 / STEP_S)
        for i in range(int(minutes * per_min)):
            machine.ADC.set(29, u16_of_level(cell.mv(t_s) / (3 * 3300)))
            rig.clock.us += int(STEP_S * 1e6)
            rig.ctl.step()
            t_s += STEP_S
            if cut_at is None and rig.ctl.faults & 0x0200:
                cut_at, relay_at_cut = t_s, rig.relay
            if i % (every_min * per_min) == every_min * per_min - 1:
                run = rig.ctl.auxiliary.battery.run_min
                rows.append((round(t_s / 60), run, (truth_s - t_s) / 60))
                rig.frames()
        return rows, cut_at, relay_at_cut, truth_s
    finally:
        machine.ADC.noise = None
        rig.close()


@pytest.mark.parametrize("hours", [2.0, 6.0])
def test_run_time_estimate_follows_a_constant_load_discharge(hours):
    cell = LiIonCell.lasting(hours, capacity_mah=600 * hours / 2)
    rows, cut_at, relay, truth_s = discharge(cell, hours * 60 + 3, every_min=5 if hours < 3 else 15)
    print(f"\n t min | estimate | truth   (a {hours:.0f} h cell, {cell.load_ma:.0f} mA)")
    for t, est, true in rows:
        print(f" {t:5d} | {est!s:>8} | {true:6.1f}")
    assert rows[0][1] is None                                  # the first window (20 min) is still measuring
    judged = [(t, est, true) for t, est, true in rows if t >= 25 and true >= 10]
    assert judged and all(est is not None for _, est, _ in judged), rows
    # the firmware's curve and the cell's differ (by up to ~8 % of charge near 3.5-3.6 V), and near 3.71 V the
    # ADC's wide code 1536 (erratum E11) holds the reading still for ~19 mV: measured here, +42 % at 210 min
    # of the 6 h cell (+8 min at 2 h), within 15 % over the first half of the discharge
    for t, est, true in judged:
        assert abs(est - true) <= max(0.45 * true, 15), (t, est, true)
    first_half = [abs(est - true) / true for t, est, true in judged if t <= hours * 30]
    assert first_half and max(first_half) <= 0.15, first_half
    # the cut-off: FAULT with the relay off at the cell's true cut-off time (within the averaging), while the
    # board is still powered above supply_min_mv (3000): the brown-out comes only later
    assert cut_at is not None and relay == 0
    # within a few mV of the level (a mean of 1 s of reads, 2 LSB of ADC noise = 4.8 mV of VSYS a read)
    assert -3.0 <= cell.mv(cut_at) - LEVELS["battery_cutoff_mv"] <= 10.0, (cut_at, truth_s, cell.mv(cut_at))
    assert cell.mv(cut_at) > LEVELS["supply_min_mv"] + 200


def test_no_estimate_while_charging():
    cell = LiIonCell(capacity_mah=2000, load_ma=100, charge=0.4, charging_ma=500)
    rows, cut_at, _relay, _truth = discharge(cell, 25, every_min=5)
    assert cut_at is None
    assert all(est is None for _, est, _ in rows), rows
