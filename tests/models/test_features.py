"""ModelSpec metadata round trip and refusal, and the normalisation/windowing shared by training and the edge."""

import numpy as np
import pytest

from edge.errors import ModelError
from models.features import (
    ModelSpec,
    WindowBuffer,
    fit_normalisation,
    future_max,
    normalise,
    sliding_windows,
)


def spec(**kw) -> ModelSpec:
    base = dict(features=["ch4", "flow"], units=["%vol", "m3/min"], sample_period_s=1.0, mean=[0.5, 900.0],
                std=[0.1, 30.0], form="streaming", window=1, hidden_size=32, num_layers=1, threshold=1.25,
                horizon=300, forecast_feature="ch4", version="1.0.0", training_digest="ab" * 32,
                residual_std=[0.1, 0.2])
    base.update(kw)
    return ModelSpec(**base)


def test_metadata_round_trip_is_exact():
    s = spec(extra={"epochs": "12"})
    props = s.to_metadata()
    assert all(isinstance(v, str) for v in props.values())
    assert ModelSpec.from_metadata(props) == s


@pytest.mark.parametrize("key", ["features", "mean", "std", "threshold", "horizon", "residual_std", "content_sha256"])
def test_a_missing_key_is_named(key):
    props = spec().to_metadata()
    del props[key]
    with pytest.raises(ModelError, match=f"missing key '{key}'"):
        ModelSpec.from_metadata(props)


@pytest.mark.parametrize("key,value,why", [
    ("std", "[0.1, 0]", "must be > 0"),
    ("mean", "[0.5]", "one per feature"),
    ("form", "sideways", "must be one of"),
    ("threshold", "NaN", "threshold"),
    ("window", "0", ">= 1"),
    ("forecast_feature", "co", "not one of the features"),
    ("training_digest", "xyz", "64 lowercase hex"),
    ("horizon", "not json", "not valid JSON"),
])
def test_bad_values_are_refused_naming_the_key(key, value, why):
    props = spec().to_metadata()
    props[key] = value
    with pytest.raises(ModelError, match=why) as err:
        ModelSpec.from_metadata(props)
    assert repr(key) in str(err.value)


def test_wrong_schema_is_refused():
    props = spec().to_metadata()
    props["schema"] = "something-else/9"
    with pytest.raises(ModelError, match="schema"):
        ModelSpec.from_metadata(props)


def test_normalise_is_per_feature_and_keeps_nan():
    s = spec()
    z = normalise(np.array([[0.6, 870.0], [np.nan, 900.0]]), s)
    assert z.dtype == np.float32
    assert np.allclose(z[0], [1.0, -1.0]) and np.isnan(z[1, 0]) and z[1, 1] == 0
    with pytest.raises(ValueError, match="expected last axis 2"):
        normalise(np.zeros((3, 3)), s)


def test_fit_normalisation_floors_a_constant_column():
    mean, std = fit_normalisation(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert mean == [2.0, 5.0] and std[0] == 1.0 and std[1] > 0


def test_the_edge_window_buffer_equals_the_training_windows():
    """Streaming one sample at a time (edge) gives exactly the windows training slices from a series."""
    rng = np.random.default_rng(0)
    z = normalise(rng.normal([0.5, 900], [0.1, 30], size=(50, 2)), spec())
    wins = sliding_windows(z, 8)
    buf = WindowBuffer(8, 2)
    for t in range(50):
        w = buf.push(z[t])
        if t >= 7:
            assert np.array_equal(w, wins[t - 7])
    assert wins.shape == (43, 8, 2)


def test_future_max_looks_strictly_ahead():
    x = np.array([0.0, 5.0, 1.0, 2.0, 0.0])
    fm = future_max(x, 2)
    assert fm[:3].tolist() == [5.0, 2.0, 2.0] and np.isnan(fm[3:]).all()


def test_training_normalises_exactly_what_the_runtime_feeds_the_graph():
    """models.train prepares its inputs with features.normalise; the runtime's window buffer (what the edge
    feeds ONNX Runtime for every reading) holds the same float32 values, sample for sample."""
    from models import scenarios, train
    from models.runtime import Model

    model = Model()
    sc = scenarios.make("fan_stoppage", 21, duration_s=600)
    prepared = train._Prepared(train.Series("x", sc.arrays(), sc.label), model.spec)
    slot = model.alloc()
    for t in range(len(sc)):
        model.step([slot], sc.arrays()[t:t + 1])
        assert np.array_equal(model._ws[1].x[0, -1], prepared.z[t])  # the row ONNX Runtime was just given
