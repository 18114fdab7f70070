"""The shipped model through models.runtime: loading, refusal of bad files, batching, NaN handling."""

import json

import numpy as np
import pytest

from edge.errors import ModelError
from models import scenarios
from models.runtime import DEFAULT_MODEL, Model, content_digest


@pytest.fixture(scope="module")
def model():
    return Model()


def test_the_shipped_model_loads_with_its_metadata(model):
    s = model.spec
    assert model.path == DEFAULT_MODEL
    assert s.features == ["ch4", "flow"] and s.units == ["%vol", "m3/min"]
    assert s.forecast_feature == "ch4" and s.horizon >= 60 and s.threshold > 0
    assert s.form in ("streaming", "windowed")


def test_a_modified_byte_is_refused(tmp_path):
    data = bytearray(DEFAULT_MODEL.read_bytes())
    data[len(data) // 2] ^= 0x01  # somewhere in the weights
    bad = tmp_path / "tampered.onnx"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="tampered|content_sha256|not a loadable"):
        Model(bad)


def test_a_changed_threshold_is_refused(tmp_path, model):
    """Editing a metadata value in place (same length) breaks the seal."""
    data = DEFAULT_MODEL.read_bytes()
    thr = json.dumps(model.spec.threshold).encode()
    assert data.count(thr) == 1
    last = thr[-1:]
    forged = data.replace(thr, thr[:-1] + (b"1" if last != b"1" else b"2"))
    p = tmp_path / "forged.onnx"
    p.write_bytes(forged)
    with pytest.raises(ModelError, match="content_sha256 does not match"):
        Model(p)


def test_missing_file_and_not_onnx_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="cannot read model file"):
        Model(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Model(junk)


def test_digest_matches_the_seal(model):
    data = DEFAULT_MODEL.read_bytes()
    assert content_digest(data, model.spec.content_sha256) == model.spec.content_sha256


def test_a_batch_scores_like_separate_streams(model):
    a = scenarios.make("outburst", 11, duration_s=900).arrays()
    b = scenarios.make("normal", 12, duration_s=900).arrays()
    both = model.score_batch(np.stack([a, b]))
    alone = model.score_series(a)
    assert np.allclose(both["score"][0], alone["score"], atol=1e-5)
    assert np.allclose(both["forecast"][0], alone["forecast"], atol=1e-5)


def test_warm_up_then_ready(model):
    x = scenarios.make("normal", 3, duration_s=300).arrays()
    out = model.score_series(x)
    w = model.spec.warmup
    assert not out["ready"][:w].any() and out["ready"][w:].all()
    assert not out["anomalous"][:w].any()


def test_nan_is_held_not_fed(model):
    x = scenarios.make("normal", 4, duration_s=400).arrays()
    s1, s2 = model.alloc(), model.alloc()
    count = model.arena.count
    try:
        for t in range(200):
            model.step([s1, s2], np.stack([x[t], x[t]]))
        r = model.step([s1, s2], np.array([[np.nan, 900.0], x[200]]))
        assert not r.ready[0] and not r.anomalous[0] and r.ready[1]
        for t in range(201, 400):  # stream 1 skipped one sample: it lags, but stays finite and calm
            r = model.step([s1, s2], np.stack([x[t], x[t]]))
            assert np.isfinite(r.score[0]) and np.isfinite(r.forecast[0])
        assert np.isfinite(model.arena.hc[:, :, s1]).all() and count[s1] == count[s2] - 1
        r = model.step([s1], np.array([[0.5, np.inf]]))
        assert not r.ready[0] and count[s1] == count[s2] - 1
    finally:
        model.free(s1)
        model.free(s2)


def test_forecast_is_in_percent_and_near_the_reading_when_calm(model):
    x = scenarios.make("normal", 6, duration_s=1200).arrays()
    out = model.score_series(x)
    r = out["ready"]
    assert np.abs(out["forecast"][r] - x[r, 0]).mean() < 0.1


def test_story_raises_an_alert_or_a_forecast_warning_before_the_board_alarm(model):
    sc = scenarios.make("story", 0, duration_s=900)
    out = model.score_series(sc.arrays())
    alarm = int(np.flatnonzero(sc.ch4 >= 1.0)[0])
    onset = int(sc.info["onset_s"])
    early = out["anomalous"][onset:alarm] | (out["forecast"][onset:alarm] >= 1.0)
    assert early.any()
    assert not out["anomalous"][model.spec.warmup:onset - 30].any()


def test_the_shipped_model_was_trained_on_what_the_simulator_makes_today(model):
    """The training digest covers the simulated data and the default settings: a change to the physics or
    to the defaults without retraining (`firedamp train --out models/firedamp-lstm.onnx`) fails here."""
    from dataclasses import asdict

    from models import train

    s = train.Settings()
    data = train.simulator_series(s, 0, s.n_normal, s.n_each_anomaly)
    assert train.digest(asdict(s) | {"extra": "simulator"}, data) == model.spec.training_digest
