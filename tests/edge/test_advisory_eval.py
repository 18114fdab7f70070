"""`firedamp evaluate sim --as-edge`: advisories through edge.policy, beside flow rules, on a fresh seed range."""

import numpy as np
import pytest

from edge import advisory_eval as edgeeval
from edge.config import PolicyConfig
from models import simeval
from models.runtime import Model


def test_flow_drop_rule():
    flow = np.full(600, 1000.0)
    flow[100:160] = 920.0  # a door opening: 8 % down, not an alert
    flow[300:] = 700.0  # a 30 % fall
    a = edgeeval.flow_drop(flow, 1.0, 20.0, 120.0)
    # alerts from the fall until the old peak leaves the 120 s window (samples 300..419), then quiet at the new level
    assert not a[:300].any() and a[300:420].all() and not a[420:].any()


def test_policy_debounce_is_the_edge_s():
    model = Model()
    from models import scenarios

    r = scenarios.make("spikes", 9001, 1.0, 3600)
    out = model.score_series(r.arrays())
    active = edgeeval.policy_active(model, r.arrays())
    over = out["anomalous"] | (out["ready"] & (out["forecast"] >= 1.0))
    first_active = int(np.flatnonzero(active)[0])
    need = PolicyConfig().anomaly_raise_samples
    # raised only after `need` consecutive samples over the threshold (or forecast over the level)
    assert over[first_active - need + 1: first_active + 1].all()
    assert active.sum() < over.sum() + 20 * PolicyConfig().anomaly_clear_samples


def test_report_runs_on_a_short_fresh_range(capsys):
    assert edgeeval.FINAL_SEED0 > simeval.TEST_SEED0 + 1000  # the fresh range is not the one choices were made on
    res = edgeeval.evaluate_edge(Model(), seeds=1, normal_hours=0.5, anomaly_hours=1.0, progress=False)
    assert set(res["totals"]) == set(edgeeval.DETECTORS)
    t = res["totals"]
    assert t[edgeeval.DETECTORS[0]]["events"] == 8 and t[edgeeval.DETECTORS[0]]["detected"] <= 8
    # flow rules cannot see a methane-only event
    assert res["per_scenario"]["stuck_sensor"]["flow-drop rule"]["detected"] == 0
    f = res["forecast"]
    assert f["rows"] > 1000 and f["typical_rise"] > 0
    assert all(f[f"{k}_mae"] > 0 for k in ("persistence", "holt", "rise"))
    text = edgeeval.report(res)
    assert "model (edge policy)" in text and "false / 24 h" in text


@pytest.mark.long
def test_full_fresh_range():
    res = edgeeval.evaluate_edge(Model(), seeds=10, progress=False)
    assert res["totals"][edgeeval.DETECTORS[0]]["events"] == 80



def test_the_cli_runs_it_from_the_edge_side(monkeypatch, capsys):
    """`firedamp evaluate sim --as-edge` reaches edge.advisory_eval (models.evaluate alone refuses it)."""
    import json

    from edge import cli

    real = edgeeval.evaluate_edge
    seen = {}

    def short(model, seeds, seed0):  # the real evaluation on short runs
        seen.update(seeds=seeds, seed0=seed0)
        return real(model, seeds=seeds, seed0=seed0, normal_hours=0.25, anomaly_hours=0.5, progress=False)

    monkeypatch.setattr(edgeeval, "evaluate_edge", short)
    assert cli.main(["evaluate", "sim", "--as-edge", "--seeds", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert seen == {"seeds": 1, "seed0": edgeeval.FINAL_SEED0} and res["seed0"] == edgeeval.FINAL_SEED0
    from models import evaluate

    parser = __import__("argparse").ArgumentParser()
    evaluate.add_arguments(parser)
    with pytest.raises(Exception, match="run it as `firedamp evaluate sim --as-edge`"):
        evaluate.run(parser.parse_args(["sim", "--as-edge"]))
