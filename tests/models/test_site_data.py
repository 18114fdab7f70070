"""A site's own export: many columns, 10 s averages, gaps, NaNs, an on/off state input, a label-only column."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from edge import cli
from edge.errors import DataError
from models import metrics
from models.csvdata import read_csv, regularise
from models.train import parse_horizon

PERIOD = 10.0
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC).timestamp()


def site_csv(path, n=2600, gap=(1200, 1380), seed=3):
    """A generated multi-channel export at 10 s: timestamp, 11 numeric and 2 text columns, label `incident`.
    The fan stops twice (fan_running 0/1): flow falls and CH4 builds up. Rows in `gap` are absent (the logger
    was down), a few cells are empty, and one row is repeated (a logger retry)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    fan = np.ones(n, int)
    fan[400:430] = 0
    fan[1900:1960] = 0
    flow = np.where(fan == 1, 950.0, 120.0) + rng.normal(0, 8, n)
    emission = 2.5 + 0.4 * np.sin(2 * np.pi * t / 360) + rng.normal(0, 0.02, n)
    ch4 = np.full(n, 100 * emission[0] / flow[0])
    for i in range(1, n):  # a stirred volume: relaxes towards emission / flow
        ch4[i] = ch4[i - 1] + 0.15 * (100 * emission[i] / flow[i] - ch4[i - 1])
    ch4 += rng.normal(0, 0.005, n)
    incident = np.zeros(n, int)
    incident[1900:1990] = 1
    header = ["timestamp", "site", "ch4_avg", "ch4_max", "ch4_min", "flow", "fan_running", "temp_c", "rh_pct",
              "co_ppm", "o2_pct", "dust_mg", "baro_hpa", "operator_note", "incident"]
    lines = [",".join(header)]
    for i in range(n):
        if gap[0] <= i < gap[1]:
            continue
        stamp = datetime.fromtimestamp(T0 + i * PERIOD, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        c = "" if i in (77, 1500) else f"{ch4[i]:.4f}"
        row = [stamp, "north-3", c, f"{ch4[i] + 0.02:.4f}", f"{ch4[i] - 0.02:.4f}", f"{flow[i]:.1f}", str(fan[i]),
               f"{18 + rng.normal():.2f}", "71.0", f"{rng.normal(3, 0.3):.2f}", "20.9", "0.4", "1013.2",
               "shift change" if i % 500 == 0 else "", str(incident[i])]
        lines.append(",".join(row))
        if i == 900:
            lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return path, {"n": n, "gap": gap[1] - gap[0]}


def test_horizon_in_samples_or_with_a_unit():
    assert parse_horizon("30", 10.0) == 30
    assert parse_horizon("300s", 10.0) == 30 == parse_horizon("5min", 10.0)
    assert parse_horizon("2h", 60.0) == 120 and parse_horizon("1.5min", 1.0) == 90
    for bad in ("0", "-5", "five", "3s"):  # 3 s is less than one 10 s sample
        with pytest.raises(DataError, match="--horizon"):
            parse_horizon(bad, 10.0)


def test_regularise_fills_gaps_and_merges_repeats(tmp_path):
    p, g = site_csv(tmp_path / "site.csv")
    t = read_csv(p, columns=["ch4_avg", "flow"], label_column="incident", time_column="timestamp")
    assert len(t.x) == g["n"] - g["gap"] + 1  # the repeated row is read
    r, info, present = regularise(t, PERIOD)
    assert len(r.x) == g["n"] and info["gaps"] == 1 and info["missing_samples"] == g["gap"]
    assert info["longest_gap_s"] == g["gap"] * PERIOD and info["merged_rows"] == 1
    assert np.isnan(r.x[1200:1380]).all() and np.isnan(r.x[77, 0]) and not np.isnan(r.x[77, 1])
    assert r.label[1900] == 1 and r.t_s[1] - r.t_s[0] == PERIOD
    assert present.sum() == g["n"] - g["gap"] and not present[1200:1380].any()


def test_time_going_backwards_names_the_row(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("time,a\n0,1\n10,2\n5,3\n")
    with pytest.raises(DataError, match=r"row 4: the time goes backwards"):
        regularise(read_csv(p, columns=["a"], time_column="time"), 10.0)
    p.write_text("time,a\n0,1\nyesterday,2\n")
    with pytest.raises(DataError, match=r"row 3, column 'time': 'yesterday' is neither seconds nor an ISO 8601"):
        read_csv(p, columns=["a"], time_column="time")


def test_holt_baseline_follows_a_ramp_and_skips_nan():
    x = np.arange(400, dtype=float) * 0.01
    x[200] = np.nan
    h = metrics.holt_max(x, 50, 0.1, 0.01)
    assert np.isnan(h[200]) and np.isfinite(h[201])
    # a steady ramp: the slope converges to 0.01 per sample, so the forecast approaches x + 50 x 0.01
    assert h[-1] == pytest.approx(x[-1] + 0.5, abs=0.05)


def test_train_and_evaluate_a_site_export(tmp_path, capsys):
    pytest.importorskip("torch")
    p, g = site_csv(tmp_path / "site.csv")
    out = tmp_path / "site.onnx"
    args = ["train", "--data", str(p), "--features", "ch4_avg,flow,fan_running", "--forecast", "ch4_avg",
            "--horizon", "5min", "--period", "10", "--time-column", "timestamp", "--inputs-only", "fan_running",
            "--label-column", "incident", "--out", str(out), "--work-dir", str(tmp_path / "w"), "--quick"]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert f"1 gap ({g['gap']} missing samples, longest {g['gap'] * PERIOD:g} s)" in text
    assert "2 stretches between silences longer than 5 samples: 2 train, 1 calibrate" in text
    assert "against --label-column" in text
    from models.runtime import Model

    model = Model(out)
    spec = model.spec
    assert spec.features == ["ch4_avg", "flow", "fan_running"] and spec.sample_period_s == PERIOD
    assert spec.horizon == 30 and spec.inputs_only == ["fan_running"]
    assert float(spec.extra["forecast_typical_rise"]) > 0  # the max over 5 min is above the current value

    assert cli.main(["evaluate", "--model", str(out), "--data", str(p), "--time-column", "timestamp",
                     "--label-column", "incident", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    f = res["forecast"]
    assert res["rows"] == g["n"] and res["grid"]["missing_samples"] == g["gap"]
    assert res["grid"]["restarts"] == 1  # the 30 min gap starts the stream afresh, as the edge does
    assert f["horizon"] == 30 and f["horizon_s"] == 300
    for name in ("persistence", "holt", "rise"):
        assert f[f"{name}_mae"] > 0 and f[f"{name}_rmse"] >= f[f"{name}_mae"]
    # same rows for all: recompute persistence by hand on the rows where every forecast is finite
    t, _, present = regularise(read_csv(p, columns=spec.features, time_column="timestamp"), PERIOD)
    cur = t.x[:, 0]
    from models.features import future_max

    target = future_max(cur, 30)
    from models.evaluate import score_stream

    scored = score_stream(model, t.x, present)
    after = g["gap"] + 1200
    assert not scored["ready"][after: after + spec.warmup].any() and scored["ready"][after + spec.warmup + 1]
    fc = np.where(scored["ready"], scored["forecast"], np.nan)
    hb = metrics.holt_max(cur, 30, 0.1, 0.01)
    ok = np.isfinite(fc) & np.isfinite(cur) & np.isfinite(target) & np.isfinite(hb)
    assert f["rows"] == int(ok.sum())
    assert f["persistence_mae"] == pytest.approx(np.abs(cur[ok] - target[ok]).mean())
    assert f["rise_mae"] == pytest.approx(np.abs(cur[ok] + f["typical_rise"] - target[ok]).mean())

    # inputs only: the fan's own switching never drives the score; a copy of the model that scores it does
    from models.export import load_checkpoint, write_model

    net, spec_all = load_checkpoint(tmp_path / "w" / "model.pt")
    spec_all.inputs_only = []
    all_path = write_model(net, spec_all, tmp_path / "all.onnx")
    a = score_stream(Model(all_path), t.x, present)
    fan = spec.features.index("fan_running")
    assert not (scored["top"][scored["ready"]] == fan).any()
    assert (a["top"][a["ready"]] == fan).any()
    assert (scored["score"] <= a["score"] + 1e-9).all()
    same = a["top"] != fan
    assert np.allclose(scored["score"][same], a["score"][same])


def test_gap_rule_is_the_edge_s():
    from edge.windows import Windows
    from models.csvdata import EDGE_MAX_GAP_SAMPLES, stretches

    assert Windows.__dataclass_fields__["max_gap_samples"].default == EDGE_MAX_GAP_SAMPLES
    present = np.ones(30, bool)
    present[5:10] = False  # 5 missing: the same stream
    present[15:21] = False  # 6 missing: starts afresh
    assert stretches(present) == [(0, 15), (21, 30)]


def test_label_column_cannot_also_be_a_feature(tmp_path, capsys):
    p, _ = site_csv(tmp_path / "site.csv")
    assert cli.main(["train", "--data", str(p), "--features", "ch4_avg,incident", "--label-column", "incident",
                     "--out", str(tmp_path / "m.onnx"), "--quick"]) == 1
    assert "is also in --features" in capsys.readouterr().err
