"""Evaluate a model honestly: on a CSV, on held-out simulator seeds, or with the SKAB protocol.

  firedamp evaluate --model M --data FILE [--sep S] [--label-column NAME] [--time-column NAME] [--json]
                    [--plot out.png]
  firedamp evaluate sim [--model M] [--seeds N] [--json]       (held-out seeds never used in training)
  firedamp evaluate sim --as-edge [--seeds N] [--seed0 S]      (advisories as edge.policy raises them, beside
                                                                flow rules, on seeds no choice was made on)
  firedamp evaluate skab DIR [--method lstm|t2] [--json]       (SKAB: the LSTM pipeline, or the T² baseline)

The feature columns and the forecast column are read from the model's metadata. An alert is a ready
sample whose score is above the model's threshold; with --warn-at V a forecast >= V also counts (the
edge's early warning). Forecast errors are shown on the same rows beside persistence (the current value)
and two stronger naive baselines: `rise` (the current value plus the training data's median rise over the
horizon, stored in the model by `firedamp train`) and `holt` (Holt's linear trend, extrapolated over the
horizon). Runs on numpy + onnxruntime only, except `skab` with its default method, which trains an LSTM
per file (the train extra, torch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from firedamp.errors import DataError
from models import metrics
from models.features import future_max

BOARD_ALARM_PCT = 1.00  # the board's default CH4 alarm (firmware setting ch4_alarm_pct)
# Holt baseline: level EWMA over ~10 samples; a slow slope (~100 samples) so that extrapolating it over a
# horizon of hundreds of samples follows a real trend, not the last few samples' noise. Fixed, not fitted.
HOLT_ALPHA, HOLT_BETA = 0.1, 0.01


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("mode", nargs="?", choices=["skab", "sim"],
                        help="`skab DIR`: SKAB benchmark; `sim`: held-out simulator seeds; omit for --data")
    parser.add_argument("dir", nargs="?", metavar="DIR", help="for `skab`: the folder with the SKAB CSV files (searched recursively)")
    parser.add_argument("--model", metavar="FILE", help="the .onnx model (default: the shipped models/firedamp-lstm.onnx)")
    parser.add_argument("--data", metavar="FILE", help="CSV to score (e.g. the output of `firedamp history --csv`)")
    parser.add_argument("--sep", default=",", help="CSV column separator (default ',')")
    parser.add_argument("--label-column", metavar="NAME", help="0/1 column marking known anomalies (for precision/recall)")
    parser.add_argument("--time-column", metavar="NAME",
                        help="column with each row's time: rows are put on the model's sample period and gaps "
                             "become missing samples (as in `firedamp train --time-column`)")
    parser.add_argument("--warn-at", type=float, default=None, metavar="VALUE",
                        help="also alert when the forecast reaches this value (e.g. 1.0 %% CH4); sim default 1.0")
    parser.add_argument("--method", choices=["lstm", "t2"], default="lstm",
                        help="skab: lstm = train, export and score our LSTM per file (needs the train extra; "
                             "default); t2 = the Hotelling T² baseline (numpy)")
    parser.add_argument("--quick", action="store_true", help="skab: a tiny training run for smoke tests (not a benchmark)")
    parser.add_argument("--train-seed", type=int, default=None, metavar="S",
                        help="skab, lstm: the training seed (default 0, the model card's); other seeds show how much "
                             "the result depends on it")
    parser.add_argument("--seeds", type=int, default=5, metavar="N", help="sim: held-out seeds per scenario (default 5)")
    parser.add_argument("--as-edge", action="store_true",
                        help="sim: count advisories as the edge's policy raises them (debounce, hold-off), beside a "
                             "flow-drop rule, the board's low-flow warning and its CH4 alarm")
    parser.add_argument("--seed0", type=int, default=None, metavar="S",
                        help="sim --as-edge: first seed (default 9000, a range no choice was made on)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--plot", metavar="PNG", help="write a PNG with signals, score, threshold, labels and alerts")


def run(args: argparse.Namespace) -> int:
    if args.mode == "skab":
        if not args.dir:
            raise DataError("usage: firedamp evaluate skab DIR  (DIR holds the SKAB CSV files)")
        from models.skab import SEED, evaluate_dir, report

        seed = SEED if args.train_seed is None else args.train_seed
        res = evaluate_dir(Path(args.dir), method=args.method, quick=args.quick, seed=seed)
        print(json.dumps(res, indent=2) if args.json else report(res))
        return 0
    from models.runtime import Model

    model = Model(args.model)
    if args.mode == "sim" and args.as_edge:  # edge.commands.evaluate runs it (models never import edge)
        raise DataError("`sim --as-edge` runs the edge's policy stage: run it as `firedamp evaluate sim --as-edge`")
    if args.mode == "sim":
        from models.simeval import evaluate_sim
        from models.simeval import report as sim_report

        res = evaluate_sim(model, seeds=args.seeds, warn_at=BOARD_ALARM_PCT if args.warn_at is None else args.warn_at)
        print(json.dumps(res, indent=2) if args.json else sim_report(res))
        return 0
    if not args.data:
        raise DataError("give --data FILE (a CSV), or `skab DIR`, or `sim`; see `firedamp evaluate --help`")
    res = evaluate_csv(model, Path(args.data), args.sep, args.label_column, args.warn_at, args.plot,
                       time_column=args.time_column)
    print(json.dumps(res, indent=2) if args.json else _table(res))
    return 0


def evaluate_csv(model, path: Path, sep: str, label_column: str | None, warn_at: float | None,
                 plot: str | None, time_column: str | None = None) -> dict:
    """Score one CSV as one stream; returns a dict of metrics."""
    from models.csvdata import read_csv, regularise

    spec = model.spec
    table = read_csv(path, sep=sep, columns=spec.features, label_column=label_column, time_column=time_column)
    grid, present = None, None
    if table.t_s is not None:
        table, grid, present = regularise(table, spec.sample_period_s)
    out = score_stream(model, table.x, present)
    if grid is not None:
        grid["restarts"] = out.pop("restarts")
    alert = alerts(out, warn_at)
    fi = spec.forecast_index
    cur = table.x[:, fi]
    target = future_max(cur, spec.horizon)
    baselines = {"holt": metrics.holt_max(cur, spec.horizon, HOLT_ALPHA, HOLT_BETA)}
    rise = spec.extra.get("forecast_typical_rise")
    if rise is not None:
        baselines["rise"] = cur + float(rise)
    res: dict = {
        "file": str(path), "rows": len(table.x), "model": spec.version, "threshold": spec.threshold,
        "alerts": int(alert.sum()), "alert_runs": len(metrics.runs(alert)),
        "forecast": {"column": spec.forecast_feature, "horizon": spec.horizon,
                     "horizon_s": spec.horizon * spec.sample_period_s,
                     "typical_rise": None if rise is None else float(rise),
                     **metrics.forecast_errors(np.where(out["ready"], out["forecast"], np.nan), cur, target, baselines)},
    }
    if grid is not None:
        res["grid"] = grid
    if table.label is not None:
        ready = out["ready"]
        res["pointwise"] = metrics.rates(metrics.confusion(alert[ready], table.label[ready]))
        res["events"] = metrics.events(alert, table.label, spec.sample_period_s)
    if plot:
        plot_run(plot, table.x, spec, out, alert, table.label, title=path.name)
        res["plot"] = plot
    return res


def score_stream(model, x: np.ndarray, present: np.ndarray | None) -> dict:
    """Score (T, F) rows as the edge would receive them: a sample no row reached (present False) is a frame
    that never came; a run of more than EDGE_MAX_GAP_SAMPLES of them starts the stream afresh (new state,
    warm-up again), as edge.windows does. A present row with empty cells is a frame without a valid reading
    (skipped)."""
    from models.csvdata import stretches

    if present is None or present.all():
        return model.score_series(x) | {"restarts": 0}
    n = len(x)
    out = {"score": np.zeros(n), "forecast": np.full(n, np.nan), "ready": np.zeros(n, bool),
           "top": np.zeros(n, np.int64), "anomalous": np.zeros(n, bool)}
    segments = stretches(present)
    for a, b in segments:
        for k, v in model.score_series(x[a:b]).items():
            out[k][a:b] = v
    out["restarts"] = len(segments) - 1
    return out


def alerts(out: dict[str, np.ndarray], warn_at: float | None) -> np.ndarray:
    a = out["anomalous"].copy()
    if warn_at is not None:
        a |= out["ready"] & (out["forecast"] >= warn_at)
    return a


def plot_run(path: str, x: np.ndarray, spec, out: dict, alert: np.ndarray, label: np.ndarray | None,
             title: str = "") -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DataError("--plot needs matplotlib (pip install -e '.[train]')") from exc
    t = np.arange(len(x)) * spec.sample_period_s / 60.0
    nf = spec.n_features
    fig, axes = plt.subplots(nf + 1, 1, figsize=(10, 2.2 * (nf + 1)), sharex=True)
    for i, ax in enumerate(axes[:nf]):
        ax.plot(t, x[:, i], lw=0.7, label=spec.features[i])
        if i == spec.forecast_index:
            ax.plot(t, out["forecast"], lw=0.7, label=f"forecast (max next {spec.horizon} samples)")
        ax.set_ylabel(f"{spec.features[i]} {spec.units[i]}")
        ax.legend(loc="upper left", fontsize=7)
    ax = axes[-1]
    ax.plot(t, out["score"], lw=0.7, color="k", label="score")
    ax.axhline(spec.threshold, color="r", ls="--", lw=0.8, label="threshold")
    ax.set_ylabel("score")
    ax.set_xlabel("minutes")
    for a in axes:
        if label is not None:
            for s, e in metrics.runs(label):
                a.axvspan(t[s], t[min(e, len(t) - 1)], color="orange", alpha=0.2, lw=0)
        for s, e in metrics.runs(alert):
            a.axvspan(t[s], t[min(e, len(t) - 1)], ymin=0.0, ymax=0.05, color="red", alpha=0.8, lw=0)
    ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(f"{title}  (orange: labelled anomaly, red bar: alert)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _table(res: dict) -> str:
    lines = [f"{res['file']}: {res['rows']} rows, model {res['model']}, threshold {res['threshold']:.3f}",
             f"alerts: {res['alerts']} samples in {res['alert_runs']} runs"]
    if "pointwise" in res:
        p, e = res["pointwise"], res["events"]
        lines.append("point-wise: precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}  "
                     "FAR {far:.3%}  MAR {mar:.3%}".format(**p))
        delay = "n/a" if e["median_delay_s"] is None else f"{e['median_delay_s']:.0f} s"
        far24 = "n/a" if e["false_alarms_per_24h"] is None else f"{e['false_alarms_per_24h']:.2f}"
        lines.append(f"events: {e['detected']}/{e['events']} detected, median delay {delay}, "
                     f"false alarms {e['false_alarms']} ({far24} per 24 h of normal rows)")
    f = res["forecast"]
    if f.get("rows"):
        lines.append(f"forecast of max {f['column']} over {f['horizon']} samples ({f['horizon_s']:g} s) on {f['rows']} rows:")
        names = [("model", ""), ("persistence", "persistence_"), ("holt", "holt_")]
        if "rise_mae" in f:
            names.append((f"now + typical rise {f['typical_rise']:+.4g}", "rise_"))
        else:
            lines.append("  (the model carries no typical rise: trained before `firedamp train` stored it)")
        lines += [f"  {name:34s} MAE {f[p + 'mae']:.4f}  RMSE {f[p + 'rmse']:.4f}" for name, p in names]
    return "\n".join(lines)
