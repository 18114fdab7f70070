"""The scoring engine the edge service, `firedamp evaluate` and the demo share (numpy + onnxruntime only).

A model file is one .onnx whose metadata_props carry a `models.features.ModelSpec`. The graph maps
normalised input to a prediction of the next normalised sample (`pred`, (B, F)) and the normalised
maximum of the forecast feature over the next `horizon` samples (`forecast`, (B, 1)); the streaming form
also takes and returns the LSTM state (`h0`, `c0` -> `h1`, `c1`, each (num_layers, B, hidden_size)).

The anomaly score is computed here, not in the graph, so every user computes it the same way:
per feature, e = (z_t - pred_{t-1}) / residual_std; s = EWMA(e^2) over `smoothing` samples; score =
max over features of |ln s|. On normal data s stays near 1 (score near 0); a jump, spike or a broken
physical relation drives s up, a stuck or flat-lined sensor drives it towards 0 — both raise the score.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from firedamp.errors import ModelError
from models.features import ZERO_DIGEST, ModelSpec, WindowBuffer, denormalise, normalise

DEFAULT_MODEL = Path(__file__).resolve().parent / "firedamp-lstm.onnx"
_S_FLOOR = 1e-6  # ln(1e-6) = -13.8: caps the score of a perfectly stuck channel


class Result(NamedTuple):
    score: float
    threshold: float
    anomalous: bool
    forecast: float  # raw units of spec.forecast_feature: max expected over the next `horizon` samples
    top_channel: str  # the feature that contributes most to the score
    ready: bool  # False while warming up or when the sample had no valid reading


class State:
    """One device stream: LSTM state, window buffer, last prediction and the score's EWMA."""

    def __init__(self, spec: ModelSpec):
        self.h = np.zeros((spec.num_layers, spec.hidden_size), dtype=np.float32)
        self.c = np.zeros((spec.num_layers, spec.hidden_size), dtype=np.float32)
        self.window = WindowBuffer(spec.window, spec.n_features)
        self.pred: np.ndarray | None = None  # (F,) normalised prediction of the next sample
        self.ewma = np.ones(spec.n_features, dtype=np.float64)
        self.count = 0  # valid samples seen
        self.last = Result(0.0, spec.threshold, False, float("nan"), spec.features[0], False)


def content_digest(data: bytes, stored_hex: str) -> str:
    """sha256 of the file with the stored digest replaced by 64 '0' (how the exporter sealed it)."""
    marker = stored_hex.encode("ascii")
    if data.count(marker) != 1:
        raise ModelError("model file: content_sha256 does not occur exactly once in the file (tampered?)")
    return hashlib.sha256(data.replace(marker, ZERO_DIGEST.encode("ascii"))).hexdigest()


def read_spec(data: bytes, where: str, threads: int = 1) -> tuple[ModelSpec, object]:
    """Open an ONNX Runtime session on `data`; returns (spec, session). Checks metadata, seal and shapes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"{where}: not a loadable ONNX model ({str(exc).splitlines()[0][:120]})") from exc
    try:
        props = dict(session.get_modelmeta().custom_metadata_map)
        # decode the graph's names now too: a damaged one must be refused here, not crash a later call
        [arg.name for arg in (*session.get_inputs(), *session.get_outputs())]
    except UnicodeDecodeError:  # a damaged or tampered string in the file: refuse it like any other damage
        raise ModelError(f"{where}: model metadata or graph names are not valid UTF-8 (damaged or tampered?)") from None
    try:
        spec = ModelSpec.from_metadata(props)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from exc
    if spec.content_sha256 == ZERO_DIGEST:
        raise ModelError(f"{where}: model is not sealed (content_sha256 is all zeros)")
    if content_digest(data, spec.content_sha256) != spec.content_sha256:
        raise ModelError(f"{where}: content_sha256 does not match the file (modified after export?)")
    _check_shapes(session, spec, where)
    return spec, session



def _check_shapes(session, spec: ModelSpec, where: str) -> None:
    ins = {i.name: i.shape for i in session.get_inputs()}
    outs = {o.name: o.shape for o in session.get_outputs()}
    want_in = {"x": [None, spec.window, spec.n_features]}
    want_out = {"pred": [None, spec.n_features], "forecast": [None, 1]}
    if spec.form == "streaming":
        state = [spec.num_layers, None, spec.hidden_size]
        want_in.update(h0=state, c0=state)
        want_out.update(h1=state, c1=state)
    for kind, have, want in (("input", ins, want_in), ("output", outs, want_out)):
        if set(have) != set(want):
            raise ModelError(f"{where}: graph {kind}s are {sorted(have)}, expected {sorted(want)} for form {spec.form!r}")
        for name, shape in want.items():
            got = have[name]
            ok = len(got) == len(shape) and all(w is None or g == w for g, w in zip(got, shape, strict=True))
            if not ok:
                raise ModelError(f"{where}: {kind} {name!r} has shape {got}, expected {shape} (None = any)")


class Model:
    """A loaded, verified model; `step` scores one new sample for each of B device streams in one call."""

    def __init__(self, path: str | Path | None = None, threads: int = 1):
        self.path = Path(path) if path is not None else DEFAULT_MODEL
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model file {self.path}: {exc.strerror or exc}") from exc
        self.spec, self._session = read_spec(data, str(self.path), threads)
        self.size_bytes = len(data)
        self._resid = np.asarray(self.spec.residual_std, dtype=np.float64)
        self._alpha = 1.0 / self.spec.smoothing
        self._fi = self.spec.forecast_index
        self._outputs = [o.name for o in self._session.get_outputs()]

    def new_state(self) -> State:
        return State(self.spec)

    def step(self, states: list[State], x_raw: np.ndarray) -> list[Result]:
        """x_raw: (B, F) raw values in spec.features order, one per state; updates states in place.

        A row with a NaN or inf (no valid reading) leaves its state untouched and returns its last result with
        ready=False, so a sensor fault neither poisons the LSTM state nor raises a false alert.
        """
        spec = self.spec
        x_raw = np.asarray(x_raw, dtype=np.float64).reshape(len(states), spec.n_features)
        valid = np.isfinite(x_raw).all(axis=1)
        results: list[Result] = [s.last._replace(ready=False, anomalous=False) for s in states]
        idx = np.flatnonzero(valid)
        if idx.size == 0:
            return results
        z = normalise(x_raw[idx], spec)
        batch = np.stack([states[i].window.push(z[k]).copy() for k, i in enumerate(idx)])
        feeds = {"x": batch}
        if spec.form == "streaming":
            feeds["h0"] = np.stack([states[i].h for i in idx], axis=1)
            feeds["c0"] = np.stack([states[i].c for i in idx], axis=1)
        named = dict(zip(self._outputs, self._session.run(self._outputs, feeds), strict=True))
        pred = named["pred"].astype(np.float64)
        forecast_raw = denormalise(named["forecast"][:, 0], spec, self._fi).tolist()
        # The score arithmetic runs on the whole batch at once: a per-board numpy loop cost ~10 µs a board.
        sts = [states[i] for i in idx]
        had = np.array([st.pred is not None for st in sts])
        ewma = np.stack([st.ewma for st in sts])
        if had.any():
            prev = np.stack([st.pred if st.pred is not None else z[k] for k, st in enumerate(sts)])
            e = (z - prev) / self._resid
            updated = ewma + self._alpha * (np.minimum(e * e, 1e6) - ewma)
            ewma = updated if had.all() else np.where(had[:, None], updated, ewma)
        contrib = np.abs(np.log(np.maximum(ewma, _S_FLOOR)))
        top = np.argmax(contrib, axis=1).tolist()
        scores = contrib.max(axis=1).tolist()
        streaming = spec.form == "streaming"
        h1, c1 = (named["h1"], named["c1"]) if streaming else (None, None)
        thr, warm, names = spec.threshold, spec.warmup, spec.features
        for k, (i, st) in enumerate(zip(idx.tolist(), sts, strict=True)):
            st.ewma = ewma[k]
            st.pred = pred[k]
            if h1 is not None and c1 is not None:
                st.h = h1[:, k]
                st.c = c1[:, k]
            st.count += 1
            ready = st.count > warm
            score = scores[k]
            st.last = Result(score, thr, ready and score > thr, forecast_raw[k], names[top[k]], ready)
            results[i] = st.last
        return results

    def score_series(self, x_raw: np.ndarray) -> dict[str, np.ndarray]:
        """(T, F) raw -> dict of (T,) arrays: score, anomalous, forecast, ready, top (index) — one stream."""
        return {k: v[0] for k, v in self.score_batch(np.asarray(x_raw)[None]).items()}

    def score_batch(self, x_raw: np.ndarray) -> dict[str, np.ndarray]:
        """(B, T, F) raw, B independent streams scored in lock-step -> dict of (B, T) arrays."""
        x_raw = np.asarray(x_raw, dtype=np.float64)
        b, t, _ = x_raw.shape
        states = [self.new_state() for _ in range(b)]
        score = np.zeros((b, t))
        forecast = np.full((b, t), math.nan)
        ready = np.zeros((b, t), dtype=bool)
        top = np.zeros((b, t), dtype=np.int64)
        names = {n: i for i, n in enumerate(self.spec.features)}
        for j in range(t):
            for i, r in enumerate(self.step(states, x_raw[:, j])):
                score[i, j], forecast[i, j], ready[i, j], top[i, j] = r.score, r.forecast, r.ready, names[r.top_channel]
        return {"score": score, "forecast": forecast, "ready": ready, "top": top,
                "anomalous": ready & (score > self.spec.threshold)}
