"""The CPython twin's pressure, temperature and battery channels (hardware/twin/virtual.py, signals.py) carry a
scenario's process conditions and a discharging cell through the unchanged firmware into A frames."""

import fwkit

from hardware.twin.signals import LiIonCell, ProcessConditions
from hardware.twin.virtual import VirtualBoard
from models import scenarios


def test_twin_board_reports_standard_flow_a_broken_ntc_and_a_flat_battery(tmp_path):
    fail = lambda t: "ntc_open" if 120 <= t < 150 else None   # noqa: E731 - the NTC's wire breaks for 30 s
    cell = LiIonCell.lasting(0.5, capacity_mah=300)           # cut-off after 30 simulated minutes
    vb = VirtualBoard(scenarios.make("normal", seed=3), str(tmp_path / "link"), tmp_path / "flash",
                      device_id="drain-3", process=ProcessConditions(98.4, 21.5, fail=fail), battery=cell)
    lines = []
    vb.stream.write = lambda data: lines.append(bytes(data).decode()) or len(data)
    try:
        aux, rs, events = [], [], []
        while vb.sim_s < 32 * 60:
            vb.step()
            for ln in lines:
                f = fwkit.parse(ln.rstrip("\n"))
                (aux if f[0] == "A" else rs if f[0] == "R" else events).append((vb.sim_s, f))
            lines.clear()
    finally:
        vb.close()
    ok = [(t, f) for t, f in aux if 60 <= t < 115]
    assert ok
    for _t, f in ok:
        assert abs(float(f[4]) - 98.4) <= 0.05 and abs(float(f[5]) - 21.5) <= 0.1, f
        assert f[7] == "Nm3/min" and f[8] != "" and f[9] != ""
    # the standard flow is the R frame's flow at base conditions (101.325 kPa, 0 C)
    by_seq = {int(f[2]): f for _t, f in rs}
    for _t, f in ok:
        r = by_seq[int(f[2]) - 1]
        assert abs(float(f[6]) - float(r[6]) * 98.4 / 101.325 * 273.15 / 294.65) <= 0.002 * float(r[6]) + 0.002
    broken = [f for t, f in aux if 125 <= t < 148]
    assert broken and all(f[4] == f[5] == f[6] == "" for f in broken), broken
    assert all(int(f[12], 16) & 0x10 and f[9] == "NORMAL" for t, f in rs if 125 <= t < 148)
    assert [f for t, f in events if f[4] == "PT" and "thermistor open" in f[5]]
    assert [f for t, f in events if f[4] == "PT" and "ok" in f[5] and t >= 150]
    mvs = [int(f[9]) for _t, f in aux]
    assert mvs[5] > 4000 and min(mvs) < 3300 and mvs[-1] < mvs[len(mvs) // 2] < mvs[5], mvs[::60]
    cut = [(t, f) for t, f in rs if int(f[11], 16) & 0x0200]
    assert cut and cut[0][1][9] == "FAULT" and cut[0][1][10] == "0"
    assert abs(cut[0][0] - cell.time_to(3300)) <= 30, (cut[0][0], cell.time_to(3300))
    low = [t for t, f in rs if int(f[12], 16) & 0x20]
    assert low and low[0] < cut[0][0]
    assert [f for t, f in events if f[4] == "BATTERY" and "cut-off" in f[5]]
    runs = [f[10] for t, f in aux if 25 * 60 <= t < cut[0][0] - 60]
    assert runs and all(r != "" for r in runs), runs


def test_a_board_run_on_past_its_scenarios_end_holds_a_live_reading_and_never_faults_stuck(tmp_path):
    # `firedamp demo` stops the edge before the board: at --speed 2000 on a loaded machine the board ran 600
    # simulated s past the end of a normal day, on the held last sample, and faulted STUCK (a frozen signal)
    vb = VirtualBoard(scenarios.make("normal", seed=3, duration_s=60), str(tmp_path / "link"), tmp_path / "flash")
    lines = []
    vb.stream.write = lambda data: lines.append(bytes(data).decode()) or len(data)
    stuck_s = vb.settings["stuck_s"]
    try:
        while vb.sim_s < 60 + 2 * stuck_s:
            vb.step()
    finally:
        vb.close()
    rs = [f for f in (fwkit.parse(ln.rstrip("\n")) for ln in lines) if f[0] == "R"]
    late = [f for f in rs if int(f[3]) > (60 + stuck_s + 60) * 1000]  # uptime past stuck_s after the end
    assert late and all(f[9] == "NORMAL" and int(f[11], 16) == 0 for f in late), late[-1]
    held = 0.01 * round(100 * vb.scenario.sample(1e9).ch4)
    assert all(abs(float(f[4]) - held) <= 0.03 for f in late)  # still the last sample's level
