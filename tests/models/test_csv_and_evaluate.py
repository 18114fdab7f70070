"""CSV input errors name file, row and column; `firedamp evaluate` on a CSV, on held-out seeds, on SKAB."""

import json

import numpy as np
import pytest

from edge import cli
from edge.errors import DataError
from models import metrics, scenarios
from models.csvdata import read_csv
from tests.helpers import find_shared

SKAB, SKAB_WHERE = find_shared("data", "skab")


def write(tmp_path, text, name="r.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_column_is_named(tmp_path):
    p = write(tmp_path, "time,ch4\n1,0.5\n")
    with pytest.raises(DataError, match=r"r\.csv, row 1: column 'flow' is missing"):
        read_csv(p, columns=["ch4", "flow"])


def test_non_numeric_value_names_row_and_column(tmp_path):
    p = write(tmp_path, "time,ch4,flow\n1,0.5,900\n2,0.5,9o0\n")
    with pytest.raises(DataError, match=r"r\.csv, row 3, column 'flow': '9o0' is not a number"):
        read_csv(p, columns=["ch4", "flow"])


@pytest.mark.parametrize("text,why", [("", "empty"), ("ch4,flow\n", "no data rows"), ("\n\n", "empty")])
def test_empty_file_is_a_clear_error(tmp_path, text, why):
    with pytest.raises(DataError, match=why):
        read_csv(write(tmp_path, text), columns=["ch4", "flow"])


def test_bad_label_and_missing_file(tmp_path):
    p = write(tmp_path, "ch4;flow;lab\n0.5;900;0\n0.5;900;2\n")
    with pytest.raises(DataError, match=r"row 3, column 'lab': label '2' must be 0 or 1"):
        read_csv(p, sep=";", columns=["ch4", "flow"], label_column="lab")
    with pytest.raises(DataError, match="cannot read"):
        read_csv(tmp_path / "absent.csv")


def test_empty_cells_are_missing_readings_and_history_columns_are_read(tmp_path):
    # the shape `firedamp history --csv` prints: time,ch4,flow,label; an empty ch4 = no valid reading
    p = write(tmp_path, "time,ch4,flow,label\n2026-01-01T00:00:00Z,0.50,900.0,0\n2026-01-01T00:00:01Z,,901.5,1\n")
    t = read_csv(p, columns=["ch4", "flow"], label_column="label")
    assert np.isnan(t.x[1, 0]) and t.x[1, 1] == 901.5 and t.label.tolist() == [0, 1]


def test_cli_reports_csv_errors_as_one_line(tmp_path, capsys):
    p = write(tmp_path, "time,ch4\n1,0.5\n")
    assert cli.main(["evaluate", "--data", str(p)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("firedamp: ") and "column 'flow' is missing" in err


def test_evaluate_a_history_style_csv_with_labels_and_plot(tmp_path, capsys):
    sc = scenarios.make("ventilation_loss", 77, duration_s=2 * 3600)
    rows = "\n".join(f"{i},{c:.2f},{f:.1f},{lab}" for i, (c, f, lab) in enumerate(zip(sc.ch4, sc.flow, sc.label, strict=True)))
    p = write(tmp_path, "time,ch4,flow,label\n" + rows + "\n")
    png = tmp_path / "run.png"
    pytest.importorskip("matplotlib")
    assert cli.main(["evaluate", "--data", str(p), "--label-column", "label", "--json", "--plot", str(png)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows"] == len(sc.ch4) and res["events"]["events"] == 1
    assert res["events"]["detected"] == 1  # the flow drop is an anomaly
    f = res["forecast"]
    assert f["rows"] > 1000 and f["mae"] > 0 and f["persistence_mae"] > 0
    assert png.stat().st_size > 10_000


def test_event_metrics_count_false_alarm_onsets_and_delays():
    label = np.zeros(1000, bool)
    label[500:600] = True
    alert = np.zeros(1000, bool)
    alert[[100, 101, 300, 520, 521]] = True
    e = metrics.events(alert, label, 1.0)
    assert (e["events"], e["detected"], e["median_delay_s"], e["false_alarms"]) == (1, 1, 20.0, 2)
    c = metrics.confusion(alert, label)
    assert c == {"tp": 2, "fp": 3, "fn": 98, "tn": 897}
    r = metrics.rates(c)
    assert r["f1"] == pytest.approx(2 / (2 + 101 / 2)) and r["far"] == pytest.approx(3 / 900)


@pytest.mark.skipif(SKAB is None, reason=SKAB_WHERE)
def test_skab_protocol_runs_and_prints_json(capsys):
    assert cli.main(["evaluate", "skab", str(SKAB / "valve2"), "--method", "t2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["files"] == 4 and 0 < res["f1"] <= 1 and 0 <= res["far"] <= 1 and 0 <= res["mar"] <= 1
    total = res["tp"] + res["fp"] + res["fn"] + res["tn"]
    assert total == sum(len(p.read_text().splitlines()) - 1 - 400 for p in (SKAB / "valve2").glob("*.csv"))


def test_skab_on_a_folder_without_labelled_files_is_a_clear_error(tmp_path, capsys):
    write(tmp_path, "a;b\n1;2\n", "x.csv")
    assert cli.main(["evaluate", "skab", str(tmp_path), "--method", "t2"]) == 1
    assert "no labelled SKAB CSV" in capsys.readouterr().err


def test_sim_evaluation_on_held_out_seeds_small():
    from models.runtime import Model
    from models.simeval import evaluate_sim

    res = evaluate_sim(Model(), seeds=1, normal_hours=1.0, anomaly_hours=1.0)
    assert res["seed0"] == 5000 and res["events"] == len(scenarios.ANOMALIES)
    assert res["forecast"]["rows"] > 0
    # the rates are the counts over what was evaluated: 1 h of normal, plus the normal stretches of the 1 h runs
    assert 1.0 <= res["normal_hours_total"] < 1.0 + len(scenarios.ANOMALIES)
    assert res["false_advisories_per_24h"] == pytest.approx(res["false_advisories"] * 24 / res["normal_hours_total"])
    assert sum(p["events"] for p in res["per_scenario"].values()) == res["events"]
    assert res["detected"] == sum(p["detected"] for p in res["per_scenario"].values()) <= res["events"]
    assert res["event_recall"] == pytest.approx(res["detected"] / res["events"])


def test_evaluate_and_the_runtime_never_import_torch(tmp_path):
    import subprocess
    import sys

    sc = scenarios.make("normal", 1, duration_s=400)
    p = write(tmp_path, "time,ch4,flow\n" + "".join(f"{i},{c},{f}\n" for i, (c, f) in enumerate(zip(sc.ch4, sc.flow, strict=True))))
    code = ("import sys; from edge import cli; import models.features, models.runtime, models.scenarios; "
            f"rc = cli.main(['evaluate', '--data', {str(p)!r}]); print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("0 False")
