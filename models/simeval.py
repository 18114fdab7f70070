"""Held-out simulator evaluation: event recall per anomaly, false advisories per 24 h, lead time, forecast.

numpy + onnxruntime only. Seeds start at TEST_SEED0 (5000), never used for training (0..)
or calibration (1000..). An advisory is an anomaly alert (score above threshold) or a forecast warning
(forecast >= warn_at, the board's 1.00 % CH4 alarm by default) on a ready sample.
"""

from __future__ import annotations

import numpy as np

from firedamp.errors import DataError
from models import metrics, scenarios
from models.features import future_max

TEST_SEED0 = 5000  # training uses seeds 0.., calibration 1000.. (models.train)
SLOW = ("ventilation_loss", "fan_stoppage")  # slow accumulations: lead time before the board's alarm


def _score(model, runs_: list[scenarios.Scenario], warn_at: float) -> list[dict]:
    n = min(len(r) for r in runs_)
    out = model.score_batch(np.stack([r.arrays()[:n] for r in runs_]))
    res = []
    for i, r in enumerate(runs_):
        o = {k: v[i] for k, v in out.items()}
        res.append({"run": r, "out": o, "score_alert": o["anomalous"],
                    "forecast_warning": o["ready"] & (o["forecast"] >= warn_at),
                    "advisory": o["anomalous"] | (o["ready"] & (o["forecast"] >= warn_at))})
    return res


def evaluate_sim(model, seeds: int = 5, warn_at: float = 1.0, normal_hours: float = 24.0,
                 anomaly_hours: float = 3.0) -> dict:
    spec = model.spec
    if spec.features != ["ch4", "flow"]:
        raise DataError(f"the simulator gives ch4, flow; this model wants {spec.features} (use --data)")
    period = spec.sample_period_s
    normal = [scenarios.make("normal", TEST_SEED0 + i, period, normal_hours * 3600) for i in range(seeds)]
    anomalous = [scenarios.make(name, TEST_SEED0 + i, period, anomaly_hours * 3600)
                 for name in scenarios.ANOMALIES for i in range(seeds)]
    scored = _score(model, normal, warn_at) + _score(model, anomalous, warn_at)
    per: dict[str, dict] = {}
    false_adv, false_score, normal_days = 0, 0, 0.0
    leads: list[float] = []
    fc_leads: list[float] = []
    fc_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for s in scored:
        r, o = s["run"], s["out"]
        y = r.label.astype(bool)[: len(o["score"])]
        ev = metrics.events(s["advisory"], y, period)
        ev_score = metrics.events(s["score_alert"], y, period)
        false_adv += ev["false_alarms"]
        false_score += ev_score["false_alarms"]
        normal_days += ev["normal_hours"] / 24.0
        p = per.setdefault(r.name, {"events": 0, "detected": 0, "detected_by_score": 0, "delays_s": []})
        p["events"] += ev["events"]
        p["detected"] += ev["detected"]
        p["detected_by_score"] += ev_score["detected"]
        if ev["median_delay_s"] is not None:
            p["delays_s"].append(ev["median_delay_s"])
        if r.name in SLOW:
            lead = _lead_time(r, s["advisory"], period)
            if lead is not None:
                leads.append(lead)
                p.setdefault("leads_s", []).append(lead)
            fc_lead = _lead_time(r, s["forecast_warning"], period)
            if fc_lead is not None:
                fc_leads.append(fc_lead)
        x = r.ch4[: len(o["score"])]
        row = (np.where(o["ready"], o["forecast"], np.nan), x, future_max(x, spec.horizon))
        fc_rows.append(row)
        p.setdefault("_fc", []).append(row)
    total_events = sum(p["events"] for p in per.values())
    detected = sum(p["detected"] for p in per.values())
    for p in per.values():
        rows = p.pop("_fc")
        fe = metrics.forecast_errors(*(np.concatenate([r[k] for r in rows]) for k in range(3)))
        p["forecast_mae"], p["persistence_mae"] = fe.get("mae"), fe.get("persistence_mae")
        p["recall"] = p["detected"] / p["events"] if p["events"] else None
        p["median_delay_s"] = float(np.median(p.pop("delays_s"))) if p.get("delays_s") else None
        if "leads_s" in p:
            p["median_lead_s"] = float(np.median(p.pop("leads_s")))
    f, c, t = (np.concatenate([row[k] for row in fc_rows]) for k in range(3))
    return {
        "model": spec.version, "threshold": spec.threshold, "warn_at": warn_at, "seeds": seeds,
        "seed0": TEST_SEED0, "normal_hours_total": normal_days * 24.0,
        "event_recall": detected / total_events if total_events else None,
        "events": total_events, "detected": detected,
        "false_advisories": false_adv, "false_advisories_per_24h": false_adv / normal_days,
        "false_score_alerts_per_24h": false_score / normal_days,
        "median_lead_s": float(np.median(leads)) if leads else None, "lead_runs": len(leads),
        "leads_positive": int(sum(v > 0 for v in leads)),
        "median_forecast_lead_s": float(np.median(fc_leads)) if fc_leads else None,
        "forecast_leads_positive": int(sum(v > 0 for v in fc_leads)),
        "forecast": {"horizon": spec.horizon, **metrics.forecast_errors(f, c, t)},
        "per_scenario": per,
    }


def _lead_time(r: scenarios.Scenario, advisory: np.ndarray, period: float) -> float | None:
    """Seconds from the first advisory after onset to the board's alarm (first reading >= 1.00 %)."""
    onset = int(r.info["onset_s"] / period)
    above = np.flatnonzero(r.ch4[onset: len(advisory)] >= 1.0)
    if above.size == 0:
        return None  # never reached the alarm: no lead time to measure
    alarm = onset + int(above[0])
    adv = np.flatnonzero(advisory[onset:])
    if adv.size == 0:
        return -float(len(advisory) - alarm) * period  # never warned: counts as late
    return float(alarm - (onset + int(adv[0]))) * period


def report(res: dict) -> str:
    lines = [f"held-out simulator seeds {res['seed0']}..{res['seed0'] + res['seeds'] - 1}, model {res['model']}, "
             f"threshold {res['threshold']:.3f}, forecast warning at {res['warn_at']} % CH4",
             f"{'scenario':18s} {'events':>6s} {'detected':>8s} {'by score':>8s} {'recall':>6s} "
             f"{'median delay':>12s} {'median lead':>11s} {'fc MAE':>7s} {'persist.':>8s}"]
    for name, p in res["per_scenario"].items():
        fc = f"{p['forecast_mae']:7.4f} {p['persistence_mae']:8.4f}" if p["forecast_mae"] is not None else ""
        if not p["events"]:
            lines.append(f"{name:18s} {'':6s} {'':8s} {'':8s} {'':6s} {'':>12s} {'':>11s} {fc}")
            continue
        delay = "-" if p["median_delay_s"] is None else f"{p['median_delay_s']:.0f} s"
        lead = f"{p['median_lead_s']:.0f} s" if "median_lead_s" in p else ""
        lines.append(f"{name:18s} {p['events']:6d} {p['detected']:8d} {p['detected_by_score']:8d} "
                     f"{p['recall']:6.2f} {delay:>12s} {lead:>11s} {fc}")
    lines.append(f"event recall {res['event_recall']:.3f} ({res['detected']}/{res['events']}); "
                 f"false advisories {res['false_advisories']} in {res['normal_hours_total']:.0f} h of normal "
                 f"= {res['false_advisories_per_24h']:.2f} per 24 h (score alone {res['false_score_alerts_per_24h']:.2f})")
    if res["median_lead_s"] is not None:
        lines.append(f"slow accumulations: median lead before the board's 1.00 % alarm {res['median_lead_s']:.0f} s "
                     f"({res['leads_positive']}/{res['lead_runs']} runs warned earlier); forecast warning alone "
                     f"{res['median_forecast_lead_s']:.0f} s ({res['forecast_leads_positive']}/{res['lead_runs']})")
    f = res["forecast"]
    lines.append(f"forecast of max CH4 over the next {f['horizon']} samples ({f['rows']} rows): MAE {f['mae']:.4f} % "
                 f"vs persistence {f['persistence_mae']:.4f} %; RMSE {f['rmse']:.4f} vs {f['persistence_rmse']:.4f}")
    return "\n".join(lines)
