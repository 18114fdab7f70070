"""Row 6, detection quality: SKAB protocol beside its published leaderboard; simulator recall, false
advisories, early-warning lead time and forecast error beside persistence.

Calls the MODELS code as `firedamp evaluate` does (models.skab.evaluate_dir, models.simeval.evaluate_sim);
no metric is computed here. SKAB: every labelled file under SKAB_DIR with `firedamp evaluate skab`'s
default, our LSTM trained per file on its first 400 rows (models.skab; needs torch, else the row says so),
beside the T² baseline and the published leaderboard (all 34 files of the full set).
Simulator: held-out seeds, the shipped model, advisories as the edge raises them (score over threshold, or
forecast ≥ the board's 1.00 % CH4 alarm); lead time is measured before the board's own alarm.
"""

from __future__ import annotations

from bench.common import ROOT

SKAB_DIR = (ROOT / ".." / "shared" / "data" / "skab").resolve()
SIM_SEEDS, SIM_NORMAL_H, SIM_ANOMALY_H = 5, 24.0, 3.0  # firedamp evaluate sim's defaults


def measure(quick: bool = False) -> dict:
    from models.runtime import Model
    from models.simeval import evaluate_sim
    from models.skab import LEADERBOARD, evaluate_dir

    out: dict = {}
    folder = SKAB_DIR / "valve2" if quick else SKAB_DIR
    if folder.is_dir():
        try:
            import torch  # noqa: F401

            method = "lstm"
        except ImportError:
            method = "t2"
        s = evaluate_dir(folder, method=method, progress=False)
        b = evaluate_dir(folder, method="t2", progress=False)
        out["skab"] = {"dir": str(folder), "files": s["files"], "method": s["method"], "f1": round(s["f1"], 3),
                       "far_pct": round(100 * s["far"], 2), "mar_pct": round(100 * s["mar"], 2),
                       "nab_standard": round(s["nab"]["standard"], 2),
                       "baseline": {"method": b["method"], "f1": round(b["f1"], 3), "far_pct": round(100 * b["far"], 2),
                                    "mar_pct": round(100 * b["mar"], 2), "nab_standard": round(b["nab"]["standard"], 2)},
                       "leaderboard": [{"method": m, "f1": f1, "far_pct": far, "mar_pct": mar}
                                       for m, f1, far, mar in LEADERBOARD]}
    else:
        out["skab"] = {"dir": str(folder), "files": 0, "skipped": f"no SKAB data at {folder}"}
    seeds, normal_h, anomaly_h = (1, 1.0, 1.0) if quick else (SIM_SEEDS, SIM_NORMAL_H, SIM_ANOMALY_H)
    model = Model()
    r = evaluate_sim(model, seeds=seeds, normal_hours=normal_h, anomaly_hours=anomaly_h)
    f = r["forecast"]
    out["sim"] = {
        "model": r["model"], "seeds": seeds, "seed0": r["seed0"], "normal_hours": round(r["normal_hours_total"], 1),
        "events": r["events"], "event_recall": r["event_recall"],
        "false_advisories_per_24h": round(r["false_advisories_per_24h"], 3),
        "false_score_alerts_per_24h": round(r["false_score_alerts_per_24h"], 3),
        "median_lead_s": r["median_lead_s"], "lead_runs": r["lead_runs"], "leads_positive": r["leads_positive"],
        "forecast_horizon": f["horizon"], "forecast_mae": f.get("mae"), "persistence_mae": f.get("persistence_mae"),
        "recall_by_scenario": {k: v["recall"] for k, v in r["per_scenario"].items() if v["events"]},
    }
    return out


def _lb(rows: list[dict], names: tuple[str, ...]) -> str:
    return "; ".join(f"{r['method']} {r['f1']:.2f}/{r['far_pct']:.1f}/{r['mar_pct']:.1f}" for r in rows
                     if r["method"] in names)


def table(r: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    s = r["skab"]
    if s.get("files"):
        bl = s["baseline"]
        rows.append((f"SKAB outlier protocol, F1 / FAR % / MAR % | NAB standard ({s['files']} valve files; {s['method']})",
                     f"{s['f1']:.2f} / {s['far_pct']:.1f} / {s['mar_pct']:.1f} | {s['nab_standard']:.1f}",
                     f"{bl['method']}: {bl['f1']:.2f} / {bl['far_pct']:.1f} / {bl['mar_pct']:.1f} | "
                     f"{bl['nab_standard']:.1f}; leaderboard (34 files): "
                     + _lb(s["leaderboard"], ("Conv-AE", "MSET", "T²", "LSTM-AE", "Vanilla LSTM")), ""))
    else:
        rows.append(("SKAB outlier protocol", "skipped", s["skipped"], ""))
    m = r["sim"]
    lead = "n/a" if m["median_lead_s"] is None else f"{m['median_lead_s']:.0f} s"
    recall = "n/a" if m["event_recall"] is None else f"{m['event_recall']:.2f}"
    rows.append((f"simulator, held-out seeds: event recall ({m['events']} events) | false advisories per 24 h",
                 f"{recall} | {m['false_advisories_per_24h']:.2f}",
                 f"score alone: {m['false_score_alerts_per_24h']:.2f} per 24 h ({m['normal_hours']:.0f} h of normal)", ""))
    rows.append(("simulator: median early warning before the board's 1.00 % alarm (slow accumulations)",
                 f"{lead} ({m['leads_positive']}/{m['lead_runs']} runs warned earlier)",
                 "the board's own alarm: 0 s lead by definition", ""))
    if m["forecast_mae"] is not None:
        rows.append((f"forecast of max CH4 over the next {m['forecast_horizon']} s, MAE % vol",
                     f"{m['forecast_mae']:.4f}", f"persistence (current value): {m['persistence_mae']:.4f}", ""))
    return rows
