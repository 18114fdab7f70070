"""The per-board scoring step as it was before the state arena (issue 15), kept only as the reference the
arena's step must reproduce bit for bit. One `State` object per stream; `step` stacks them per call."""

from __future__ import annotations

import numpy as np

from models.features import ModelSpec, WindowBuffer, denormalise, normalise
from models.runtime import _S_FLOOR, Model, Result


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


def step(model: Model, states: list[State], x_raw: np.ndarray) -> list[Result]:
    """The old Model.step, unchanged but for `self` -> `model` (and its session, outputs, constants)."""
    spec = model.spec
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
    named = dict(zip(model._outputs, model._session.run(model._outputs, feeds), strict=True))
    pred = named["pred"].astype(np.float64)
    forecast_raw = denormalise(named["forecast"][:, 0], spec, model._fi).tolist()
    sts = [states[i] for i in idx]
    had = np.array([st.pred is not None for st in sts])
    ewma = np.stack([st.ewma for st in sts])
    if had.any():
        prev = np.stack([st.pred if st.pred is not None else z[k] for k, st in enumerate(sts)])
        e = (z - prev) / model._resid
        updated = ewma + model._alpha * (np.minimum(e * e, 1e6) - ewma)
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
