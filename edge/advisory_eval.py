"""Simulator evaluation as the edge raises advisories (edge.policy), beside flow rules, on a fresh seed range.

`firedamp evaluate sim --as-edge [--seeds N] [--seed0 S]`. It lives in edge/ because it runs the edge's
policy stage (models never import edge); numpy + onnxruntime + edge.policy.
Seed ranges and what each chose: training 0.. and calibration 1000.. (models.train); 5000.. (models.simeval's
TEST_SEED0) was used to compare architectures, the warm-up and the training schedule (docs/model.md), so it
is no longer clean; FINAL_SEED0 (9000..) was never used for any choice and is the default here.

Each stream is scored by models.runtime and every result goes through edge.policy.Policy.on_score with the
edge's default PolicyConfig (3 samples over the threshold to raise, 10 under 0.8 x threshold to clear, a
300-sample hold-off; the forecast warning at 1.00 % CH4 the same way), so an advisory is an alert the edge
would publish, not a sample over the threshold. Beside it, on the same runs:
- flow-drop rule: alert while the flow is FLOW_DROP_PCT % or more below its maximum of the last FLOW_DROP_S;
- the board's low-flow warning (firmware `flow_low_per_min`) set to LOW_FLOW_M3MIN;
- the board's own CH4 alarm at 1.00 % (what every advisory is measured against: lead time).
The rules' settings come from the simulator's specification, not from scores on any seed. The forecast
of max CH4 over the horizon is set beside persistence, Holt's trend (models.evaluate's constants) and the
current value plus the typical rise of the training seeds' normal runs, on the same rows.
"""

from __future__ import annotations

import numpy as np

from firedamp.errors import DataError
from models import metrics, scenarios
from models.simeval import SLOW

FINAL_SEED0 = 9000
# Door openings dip the flow 4-10 % for 30-120 s (models.scenarios); a ventilation loss or fan stoppage
# takes it down 65-97 % within 20-90 s. A 20 % fall within 120 s is twice the largest normal dip.
FLOW_DROP_PCT, FLOW_DROP_S = 20.0, 120.0
# Nominal airflow is 800-1100 m3/min with ~1.5 % turbulence and <= 10 % door dips: 600 m3/min is 25 % under
# the lowest nominal flow, the setting a site would pick from its design flow.
LOW_FLOW_M3MIN = 600.0
BOARD_ALARM_PCT = 1.0
DETECTORS = ("model (edge policy)", "flow-drop rule", "board low-flow warning", "board CH4 alarm")


def policy_active(model, x: np.ndarray, device: str = "sim", out: dict | None = None) -> np.ndarray:
    """(T, F) one stream -> (T,) bool: an advisory alert (anomaly or forecast) is active after each sample.
    out: the stream's model.score_series(x), when the caller has it already."""
    from edge.policy import Policy
    from models.runtime import Result

    spec = model.spec
    policy = Policy("sim", "sim", model_version=spec.version)
    out = model.score_series(x) if out is None else out
    active = np.zeros(len(x), bool)
    names = spec.features
    for i in range(len(x)):
        res = Result(float(out["score"][i]), spec.threshold, bool(out["anomalous"][i]), float(out["forecast"][i]),
                     names[int(out["top"][i])], bool(out["ready"][i]))
        policy.on_score(device, res, float(i) * spec.sample_period_s, forecast_ok=True)
        st = policy.devices.get(device)
        active[i] = bool(st and (st.active.get("anomaly") or st.active.get("forecast")))
    return active


def flow_drop(flow: np.ndarray, period_s: float, pct: float = FLOW_DROP_PCT, window_s: float = FLOW_DROP_S) -> np.ndarray:
    """(T,) -> (T,) bool: flow at least `pct` % below its maximum over the last `window_s` (this sample included)."""
    w = max(1, int(round(window_s / period_s)) + 1)
    f = np.asarray(flow, np.float64)
    pad = np.concatenate([np.full(w - 1, f[0]), f])
    peak = np.lib.stride_tricks.sliding_window_view(pad, w).max(axis=1)
    return f < (1.0 - pct / 100.0) * peak


def detectors(model, r: scenarios.Scenario, out: dict | None = None) -> dict[str, np.ndarray]:
    return {
        DETECTORS[0]: policy_active(model, r.arrays(), out=out),
        DETECTORS[1]: flow_drop(r.flow, r.period_s),
        DETECTORS[2]: r.flow < LOW_FLOW_M3MIN,
        DETECTORS[3]: r.ch4 >= BOARD_ALARM_PCT,
    }


def lead_s(r: scenarios.Scenario, active: np.ndarray) -> float | None:
    """Seconds from the first alert after onset to the board's 1.00 % alarm (negative: later, or never)."""
    onset = int(r.info["onset_s"] / r.period_s)
    above = np.flatnonzero(r.ch4[onset:] >= BOARD_ALARM_PCT)
    if above.size == 0:
        return None
    alarm = onset + int(above[0])
    adv = np.flatnonzero(active[onset:])
    if adv.size == 0:
        return -float(len(active) - alarm) * r.period_s
    return float(alarm - (onset + int(adv[0]))) * r.period_s


def evaluate_edge(model, seeds: int = 10, seed0: int = FINAL_SEED0, normal_hours: float = 24.0,
                  anomaly_hours: float = 3.0, progress: bool = True) -> dict:
    spec = model.spec
    if spec.features != ["ch4", "flow"]:
        raise DataError(f"the simulator gives ch4, flow; this model wants {spec.features}")
    from tqdm import tqdm

    from models.evaluate import HOLT_ALPHA, HOLT_BETA
    from models.features import future_max
    from models.train import Settings, simulator_series, typical_rise

    st = Settings()
    rise = typical_rise(simulator_series(st, 0, st.n_normal, 0), spec.forecast_index, spec.horizon)
    fc_rows: list[tuple[np.ndarray, ...]] = []
    runs = [("normal", i, normal_hours) for i in range(seeds)]
    runs += [(name, i, anomaly_hours) for name in scenarios.ANOMALIES for i in range(seeds)]
    per: dict[str, dict[str, dict]] = {}
    normal_h = 0.0
    false = dict.fromkeys(DETECTORS, 0)
    for name, i, hours in tqdm(runs, desc="sim as the edge", unit="run", disable=not progress, ncols=90):
        r = scenarios.make(name, seed0 + i, spec.sample_period_s, hours * 3600)
        y = r.label.astype(bool)
        out = model.score_series(r.arrays())
        cur = r.ch4
        fc_rows.append((np.where(out["ready"], out["forecast"], np.nan), cur, future_max(cur, spec.horizon),
                        metrics.holt_max(cur, spec.horizon, HOLT_ALPHA, HOLT_BETA), cur + rise))
        for det, active in detectors(model, r, out).items():
            ev = metrics.events(active, y, r.period_s)
            false[det] += ev["false_alarms"]
            p = per.setdefault(name, {}).setdefault(det, {"events": 0, "detected": 0, "delays_s": [], "leads_s": []})
            p["events"] += ev["events"]
            p["detected"] += ev["detected"]
            if ev["median_delay_s"] is not None:
                p["delays_s"].append(ev["median_delay_s"])
            if name in SLOW:
                lead = lead_s(r, active)
                if lead is not None:
                    p["leads_s"].append(lead)
        normal_h += float((~y).sum()) * r.period_s / 3600.0
    for dets in per.values():
        for p in dets.values():
            d, ld = p.pop("delays_s"), p.pop("leads_s")
            p["median_delay_s"] = float(np.median(d)) if d else None
            p["median_lead_s"] = float(np.median(ld)) if ld else None
            p["warned_before_alarm"] = int(sum(v > 0 for v in ld))
            p["lead_runs"] = len(ld)
    totals = {det: {"events": sum(per[n][det]["events"] for n in per if n != "normal"),
                    "detected": sum(per[n][det]["detected"] for n in per if n != "normal"),
                    "false_alarms": false[det], "false_per_24h": false[det] / (normal_h / 24.0)}
              for det in DETECTORS}
    f, c, t, h, ri = (np.concatenate([row[k] for row in fc_rows]) for k in range(5))
    forecast = {"horizon": spec.horizon, "typical_rise": rise,
                **metrics.forecast_errors(f, c, t, {"holt": h, "rise": ri})}
    return {"model": spec.version, "threshold": spec.threshold, "seed0": seed0, "seeds": seeds,
            "normal_hours": normal_h, "per_scenario": per, "totals": totals, "forecast": forecast,
            "rules": {"flow_drop_pct": FLOW_DROP_PCT, "flow_drop_s": FLOW_DROP_S, "low_flow_m3min": LOW_FLOW_M3MIN}}


def report(res: dict) -> str:
    lines = [f"simulator seeds {res['seed0']}..{res['seed0'] + res['seeds'] - 1} (never used for a choice), model "
             f"{res['model']}, advisories as edge.policy raises them; rules: flow -{res['rules']['flow_drop_pct']:g} % "
             f"in {res['rules']['flow_drop_s']:g} s, low flow < {res['rules']['low_flow_m3min']:g} m3/min",
             f"{'scenario':18s} " + " | ".join(f"{d:>26s}" for d in DETECTORS),
             f"{'':18s} " + " | ".join(f"{'detected  delay   lead':>26s}" for _ in DETECTORS)]
    for name, dets in res["per_scenario"].items():
        if name == "normal":
            continue
        cells = []
        for d in DETECTORS:
            p = dets[d]
            delay = "-" if p["median_delay_s"] is None else f"{p['median_delay_s']:.0f}s"
            lead = "" if p["median_lead_s"] is None else f"{p['median_lead_s']:.0f}s"
            cells.append(f"{p['detected']:>4d}/{p['events']:<3d} {delay:>7s} {lead:>7s}")
        lines.append(f"{name:18s} " + " | ".join(f"{c:>26s}" for c in cells))
    t = res["totals"]
    lines.append(f"{'all events':18s} " + " | ".join(f"{t[d]['detected']:>4d}/{t[d]['events']:<3d}{'':>16s}" for d in DETECTORS))
    lines.append(f"{'false / 24 h':18s} " + " | ".join(f"{t[d]['false_per_24h']:>10.2f} ({t[d]['false_alarms']:d}){'':>10s}"
                                                    for d in DETECTORS) + f"   ({res['normal_hours']:.0f} h normal)")
    f = res["forecast"]
    lines.append(f"forecast of max CH4 over the next {f['horizon']} samples ({f['rows']} rows), MAE / RMSE % CH4: "
                 f"model {f['mae']:.4f} / {f['rmse']:.4f}; persistence {f['persistence_mae']:.4f} / "
                 f"{f['persistence_rmse']:.4f}; holt {f['holt_mae']:.4f} / {f['holt_rmse']:.4f}; now + typical rise "
                 f"{f['typical_rise']:+.3f} {f['rise_mae']:.4f} / {f['rise_rmse']:.4f}")
    return "\n".join(lines)
