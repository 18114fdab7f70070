"""Export parity (ONNX Runtime vs PyTorch), sealed metadata, int8 variant, and tiny training runs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edge import cli  # noqa: E402
from edge.errors import ModelError  # noqa: E402
from models import scenarios  # noqa: E402
from models.export import quantize_int8, write_model  # noqa: E402
from models.features import ModelSpec, normalise, sliding_windows  # noqa: E402
from models.network import FiredampNet, Windowed  # noqa: E402
from models.runtime import Model  # noqa: E402

pytestmark = pytest.mark.torch


def make_spec(form: str, window: int, hidden: int = 16) -> ModelSpec:
    return ModelSpec(features=["ch4", "flow"], units=["%vol", "m3/min"], sample_period_s=1.0, mean=[0.45, 900.0],
                     std=[0.15, 40.0], form=form, window=window, hidden_size=hidden, num_layers=1, threshold=2.0,
                     horizon=120, forecast_feature="ch4", version="test", training_digest="0f" * 32,
                     residual_std=[0.1, 0.2], warmup=5)


@pytest.fixture(scope="module")
def series():
    return scenarios.make("outburst", 3, duration_s=600).arrays()


@pytest.mark.parametrize("kernel", [1, 4])
def test_streaming_export_matches_pytorch(tmp_path, series, kernel):
    torch.manual_seed(kernel)
    net = FiredampNet(2, hidden_size=16, kernel=kernel).eval()
    spec = make_spec("streaming", kernel)
    path = write_model(net, spec, tmp_path / "s.onnx")
    model = Model(path)
    z = normalise(series, spec)
    # the runtime's window buffer starts as zeros (the mean): the torch sequence gets the same padding
    zpad = np.concatenate([np.zeros((kernel - 1, 2), np.float32), z])
    with torch.no_grad():
        pred, fc, _ = net.sequence(torch.from_numpy(zpad[None]))
    slot = model.alloc()
    got_fc, got_pred = [], []
    for t in range(len(series)):
        r = model.step([slot], series[t:t + 1])
        got_pred.append(model.arena.pred[slot].copy())
        got_fc.append((r.forecast[0] - spec.mean[0]) / spec.std[0])
    assert np.abs(np.array(got_pred) - pred[0].numpy()).max() <= 1e-5
    assert np.abs(np.array(got_fc) - fc[0, :, 0].numpy()).max() <= 1e-5


def test_windowed_export_matches_pytorch(tmp_path, series):
    import onnxruntime as ort

    torch.manual_seed(0)
    net = FiredampNet(2, hidden_size=16).eval()
    spec = make_spec("windowed", 32)
    path = write_model(net, spec, tmp_path / "w.onnx")
    Model(path)  # loads, verifies seal and shapes
    win = np.ascontiguousarray(sliding_windows(normalise(series, spec), 32)[:200])
    with torch.no_grad():
        pred, fc = Windowed(net)(torch.from_numpy(win))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    opred, ofc = sess.run(["pred", "forecast"], {"x": win})
    assert np.abs(opred - pred.numpy()).max() <= 1e-5 and np.abs(ofc - fc.numpy()).max() <= 1e-5


@pytest.mark.parametrize(("form", "window"), [("streaming", 4), ("windowed", 32)])
def test_the_arena_step_with_a_window_equals_the_old_step_bit_for_bit(tmp_path, series, form, window):
    """A model with a window (a conv front end, or the windowed form) makes the arena slide each slot's
    window; the results equal the old per-board step's (tests/models/reference_step.py) bit for bit."""
    from . import reference_step as ref

    torch.manual_seed(window)
    net = FiredampNet(2, hidden_size=16, kernel=window if form == "streaming" else 1).eval()
    model = Model(write_model(net, make_spec(form, window), tmp_path / "m.onnx"))
    x = np.stack([series, series[::-1], np.roll(series, 77, axis=0)])
    x[1, 40:44, 0] = np.nan
    slots = np.array([model.alloc() for _ in range(5)])[[4, 0, 2]]
    states = [ref.State(model.spec) for _ in range(3)]
    names = model.spec.features
    for t in range(300):
        rows = [0, 1, 2] if t % 5 else [2, 0]
        got = model.step(slots[rows], x[rows, t])
        want = ref.step(model, [states[i] for i in rows], x[rows, t])
        assert got.score.tobytes() == np.array([r.score for r in want]).tobytes()
        assert got.forecast.tobytes() == np.array([r.forecast for r in want]).tobytes()
        assert got.ready.tolist() == [r.ready for r in want] and [names[i] for i in got.top] == [
            r.top_channel for r in want]
    for i in range(3):
        assert model.arena.window[slots[i]].tobytes() == states[i].window.buf.tobytes()


def test_metadata_round_trips_through_the_file(tmp_path):
    net = FiredampNet(2, hidden_size=16).eval()
    spec = make_spec("streaming", 1)
    m = Model(write_model(net, spec, tmp_path / "m.onnx"))
    assert m.spec.content_sha256 != "0" * 64
    spec.content_sha256 = m.spec.content_sha256
    assert m.spec == spec


def test_shape_mismatch_and_missing_metadata_are_refused(tmp_path):
    import onnx

    from models.export import seal

    net = FiredampNet(2, hidden_size=16).eval()
    path = write_model(net, make_spec("streaming", 1), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    for p in model.metadata_props:
        if p.key == "hidden_size":
            p.value = "24"  # the graph says 16
        if p.key == "content_sha256":
            p.value = "0" * 64
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(seal(model.SerializeToString()))
    with pytest.raises(ModelError, match="'h0' has shape"):
        Model(bad)
    model = onnx.load(str(path))
    keep = [p for p in model.metadata_props if p.key != "features"]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="missing key 'features'"):
        Model(bare)


def test_int8_variant_loads_and_stays_close(tmp_path, series):
    pytest.importorskip("onnxruntime.quantization")
    torch.manual_seed(1)
    net = FiredampNet(2, hidden_size=16).eval()
    path = write_model(net, make_spec("streaming", 1), tmp_path / "f.onnx")
    q = Model(quantize_int8(path, tmp_path / "q.onnx"))
    f = Model(path)
    a, b = f.score_series(series), q.score_series(series)
    assert q.spec.version.endswith("+int8")
    assert np.abs(a["forecast"] - b["forecast"]).max() < 0.05


def weights(path) -> dict[str, np.ndarray]:
    """Every trained tensor in an .onnx file, by name."""
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def assert_same_weights(p, q):
    a, b = weights(p), weights(q)
    assert a and sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), f"{name} differs"


def test_quick_training_on_the_simulator_is_deterministic(tmp_path, series):
    outs = []
    for i in range(2):
        out = tmp_path / f"m{i}.onnx"
        assert cli.main(["train", "--quick", "--out", str(out), "--work-dir", str(tmp_path / f"w{i}")]) == 0
        outs.append(out)
    a, b = (Model(p) for p in outs)
    assert_same_weights(*outs)  # the same weights bit for bit, not only the same metadata
    assert a.spec.training_digest == b.spec.training_digest
    assert a.spec.threshold == b.spec.threshold and a.spec.residual_std == b.spec.residual_std
    sa, sb = a.score_series(series), b.score_series(series)
    assert all(np.array_equal(sa[k], sb[k], equal_nan=True) for k in ("score", "forecast"))
    assert (tmp_path / "w0" / "loss.png").stat().st_size > 1000
    # `firedamp export` from the checkpoint gives the same calibrated model: same weights, same metadata
    again = tmp_path / "again.onnx"
    assert cli.main(["export", "--checkpoint", str(tmp_path / "w0" / "model.pt"), "--out", str(again)]) == 0
    assert_same_weights(outs[0], again)
    c = Model(again)
    c.spec.content_sha256 = a.spec.content_sha256
    assert c.spec == a.spec


def test_training_on_a_csv_with_chosen_columns(tmp_path, capsys):
    sc = scenarios.make("normal", 9, duration_s=3000)
    rows = "\n".join(f"{c:.2f};{f:.1f};{c * 2:.2f};0" for c, f in zip(sc.ch4, sc.flow, strict=True))
    data = tmp_path / "d.csv"
    data.write_text("ch4;flow;other;lab\n" + rows + "\n")
    out = tmp_path / "csv.onnx"
    assert cli.main(["train", "--quick", "--data", str(data), "--sep", ";", "--features", "flow,ch4",
                     "--forecast", "ch4", "--horizon", "60", "--label-column", "lab", "--out", str(out),
                     "--work-dir", str(tmp_path / "w")]) == 0
    assert "against --label-column (not used for training)" in capsys.readouterr().out
    m = Model(out)
    assert m.spec.features == ["flow", "ch4"] and m.spec.forecast_feature == "ch4" and m.spec.horizon == 60
    assert m.spec.units == ["m3/min", "%vol"]  # the edge checks a board's units against these
    assert cli.main(["train", "--quick", "--data", str(data), "--sep", ";", "--features", "flow,nope",
                     "--out", str(out)]) == 1
    short = tmp_path / "short.csv"
    short.write_text("ch4;flow\n" + "0.5;900\n" * 100)
    assert cli.main(["train", "--data", str(short), "--sep", ";", "--out", str(out)]) == 1
    assert "100 rows; training needs at least 3000" in capsys.readouterr().err
