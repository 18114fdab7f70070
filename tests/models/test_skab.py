"""`firedamp evaluate skab`: the LSTM pipeline per file (train -> export -> ONNX Runtime) and the T² baseline."""

import json
import shutil

import numpy as np
import pytest

from edge import cli
from models import nab, skab
from models.runtime import Model
from tests.helpers import find_shared

SKAB, SKAB_WHERE = find_shared("data", "skab")
need_skab = pytest.mark.skipif(SKAB is None, reason=SKAB_WHERE)


def small_layout(tmp_path, files=(("valve2", "0.csv"), ("valve1", "3.csv"))):
    """A SKAB-layout folder with the anomaly-free file and a few experiments, named as the code never saw."""
    root = tmp_path / "skab"
    (root / "anomaly-free").mkdir(parents=True)
    shutil.copy(SKAB / "anomaly-free" / "anomaly-free.csv", root / "anomaly-free" / "anomaly-free.csv")
    for group, name in files:
        (root / f"other-{group}").mkdir(exist_ok=True)
        shutil.copy(SKAB / group / name, root / f"other-{group}" / f"x{name}")
    return root


def pooled_counts_match_rows(res, root):
    rows = sum(len(p.read_text().splitlines()) - 1 - skab.TRAIN_ROWS for p in root.rglob("*.csv")
               if "anomaly" in p.read_text().splitlines()[0])
    return res["tp"] + res["fp"] + res["fn"] + res["tn"] == rows


@need_skab
def test_lstm_quick_run_scores_every_file_through_the_exported_model(tmp_path, capsys):
    pytest.importorskip("torch")
    root = small_layout(tmp_path)
    assert cli.main(["evaluate", "skab", str(root), "--quick", "--json"]) == 0
    out = capsys.readouterr()
    res = json.loads(out.out)  # stdout is only the JSON: training logs are kept off it
    assert "SKAB lstm" in out.err  # the progress bar
    assert res["method_id"] == "lstm" and res["quick"] and res["files"] == 2
    assert res["pretrained_on"].endswith("anomaly-free.csv")
    assert sorted(res["groups"]) == ["other-valve1", "other-valve2"]
    assert pooled_counts_match_rows(res, root)
    for g in res["groups"].values():
        assert g["files"] == 1 and set(g["nab"]) == {"standard", "low_fp", "low_fn"}
        assert 0 <= g["far"] <= 1 and 0 <= g["mar"] <= 1
    assert all(f["windows"] >= 1 and f["model_bytes"] > 1000 for f in res["per_file"])


@need_skab
def test_a_group_folder_alone_finds_the_anomaly_free_file_beside_it(tmp_path):
    pytest.importorskip("torch")
    root = small_layout(tmp_path, files=(("valve2", "1.csv"),))
    res = skab.evaluate_dir(root / "other-valve2", quick=True, progress=False)
    assert res["files"] == 1 and res["pretrained_on"].endswith("anomaly-free.csv")


@need_skab
def test_the_per_file_model_is_sealed_calibrated_and_scored_as_the_edge_scores(tmp_path):
    pytest.importorskip("torch")
    exps, free = skab.find(small_layout(tmp_path, files=(("valve2", "2.csv"),)))
    m = skab.LstmMethod(free, tmp_path / "work", quick=True)
    e = exps[0]
    alert, path = m.alerts(e)
    model = Model(path)  # refuses a file whose seal does not match
    spec = model.spec
    assert spec.features == [c for c in e.columns if c not in skab.LSTM_DROP]
    assert spec.threshold_method == "pot" and int(spec.extra["calibration_samples"]) == skab.TRAIN_ROWS - spec.warmup
    x = e.x[:, [e.columns.index(c) for c in spec.features]]
    # the alert flag is the runtime's own, step by step over the whole stream
    stepped = np.zeros(len(x), bool)
    slot = model.alloc()
    for i, row in enumerate(x):
        stepped[i] = model.step([slot], row[None])[1][0]
    assert (stepped == alert).all()
    # normalisation comes from the training rows only
    assert spec.mean == pytest.approx(np.nanmean(x[:skab.TRAIN_ROWS], axis=0).tolist())


@need_skab
def test_the_training_seed_is_the_runs_only_source_of_chance(tmp_path, capsys):
    # `--train-seed` is how the card shows the spread of the LSTM's figure; the same seed must give the same
    # network (the card's "two runs gave identical per-file counts"), another seed another one
    pytest.importorskip("torch")
    import onnx

    exps, free = skab.find(small_layout(tmp_path, files=(("valve2", "2.csv"),)))

    def weights(seed, run):
        _, path = skab.LstmMethod(free, tmp_path / f"work-{seed}-{run}", quick=True, seed=seed).alerts(exps[0])
        return [onnx.numpy_helper.to_array(t).tobytes() for t in onnx.load(str(path)).graph.initializer]

    assert weights(0, "a") == weights(0, "b")
    assert weights(0, "a") != weights(3, "a")
    assert cli.main(["evaluate", "skab", str(tmp_path / "skab"), "--quick", "--json", "--train-seed", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 3


@need_skab
def test_t2_baseline_row(capsys):
    assert cli.main(["evaluate", "skab", str(SKAB / "valve2"), "--method", "t2"]) == 0
    text = capsys.readouterr().out
    assert "T² on fast channels (baseline)" in text and "valve2" in text and "NAB" in text
    res = skab.evaluate_dir(SKAB / "valve2", method="t2", progress=False)
    assert res["files"] == 4 and pooled_counts_match_rows(res, SKAB / "valve2")
    # the overall NAB score is the corpus normalisation of the per-file parts (not a mean of per-file scores)
    assert res["nab"]["standard"] == res["groups"]["valve2"]["nab"]["standard"]


def test_score_file_counts_only_test_rows_and_uses_changes_as_detections(tmp_path):
    n = skab.TRAIN_ROWS + 300
    rows = ["datetime;a;b;anomaly;changepoint"]
    for i in range(n):
        lab = int(500 <= i < 560)
        cp = int(i in (500, 560))
        rows.append(f"2020-01-01 00:{i // 60:02d}:{i % 60:02d};{np.sin(i):.4f};{i % 7};{lab};{cp}")
    p = tmp_path / "g" / "1.csv"
    p.parent.mkdir()
    p.write_text("\n".join(rows) + "\n")
    e = skab.Experiment(p, "g")
    alert = np.zeros(n, bool)
    alert[100:200] = True  # in the training part: neither counted nor a detection
    alert[505:570] = True
    r = skab.score_file(e, alert)
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (55, 10, 5, 230)
    assert r["windows"] == 1 and r["detections"] == 2  # rise at 505, fall at 570
    wins = nab.windows(np.array([500, 560]), e.t_s, 60.0)
    assert wins == [(500, 620)]  # [500, 560] and [560, 620] overlap at 560: one window
    assert r["nab_parts"]["standard"] == nab.raw_score(np.array([505, 570]), wins, "standard")


def test_separation_measures_each_channel_on_the_training_rows_spread(tmp_path):
    # channel a: noise of std 1 everywhere, shifted by +5 in the anomaly; b: constant in training (no spread)
    rng = np.random.default_rng(1)
    n = skab.TRAIN_ROWS + 200
    a = rng.standard_normal(n)
    a[500:550] += 5.0
    rows = ["datetime;a;b;anomaly;changepoint"]
    for i in range(n):
        rows.append(f"2020-01-01 00:{i // 60:02d}:{i % 60:02d};{a[i]:.6f};{0 if i < 400 else i};"
                    f"{int(500 <= i < 550)};{int(i == 500)}")
    p = tmp_path / "g" / "1.csv"
    p.parent.mkdir()
    p.write_text("\n".join(rows) + "\n")
    sep = skab.score_file(skab.Experiment(p, "g"), np.zeros(n, bool))["separation"]
    mu, sd = a[:400].mean(), a[:400].std()
    want_anom = np.abs((a[500:550] - mu) / sd).mean()
    want_norm = np.abs((np.r_[a[400:500], a[550:]] - mu) / sd).mean()
    assert sep["a"] == [round(float(want_anom), 2), round(float(want_norm), 2)]
    assert sep["a"][0] > 4 and sep["a"][1] < 1
    assert sep["b"] == [None, None]  # no spread in the training rows: no figure, no error


def test_unknown_method_and_missing_folder_are_clear_errors(tmp_path, capsys):
    assert cli.main(["evaluate", "skab", str(tmp_path / "nope"), "--method", "t2"]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.long
@need_skab
def test_full_skab_lstm_run_within_budget():
    """The benchmark run itself (all shared files): completes, every file scored, under 15 min."""
    pytest.importorskip("torch")
    res = skab.evaluate_dir(SKAB, progress=False)
    assert res["files"] >= 20 and pooled_counts_match_rows(res, SKAB)
    assert res["seconds"] < 15 * 60
