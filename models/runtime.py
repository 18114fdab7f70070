"""The scoring engine the edge service, `firedamp evaluate` and the demo share (numpy + onnxruntime only).

A model file is one .onnx whose metadata_props carry a `models.features.ModelSpec`. The graph maps
normalised input to a prediction of the next normalised sample (`pred`, (B, F)) and the normalised
maximum of the forecast feature over the next `horizon` samples (`forecast`, (B, 1)); the streaming form
also takes and returns the LSTM state (`h0`, `c0` -> `h1`, `c1`, each (num_layers, B, hidden_size)).

The anomaly score is computed here, not in the graph, so every user computes it the same way:
per feature, e = (z_t - pred_{t-1}) / residual_std; s = EWMA(e^2) over `smoothing` samples; score =
max over features of |ln s| (a feature in spec.inputs_only is held at s = 1: an input, never scored).
On normal data s stays near 1 (score near 0); a jump, spike or a broken physical relation drives s up,
a stuck or flat-lined sensor drives it towards 0 — both raise the score.
"""

from __future__ import annotations

import hashlib
import math
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from firedamp.errors import ModelError
from models.arena import Arena
from models.features import ZERO_DIGEST, ModelSpec

DEFAULT_MODEL = Path(__file__).resolve().parent / "firedamp-lstm.onnx"
_S_FLOOR = 1e-6  # ln(1e-6) = -13.8: caps the score of a perfectly stuck channel


class Result(NamedTuple):
    score: float
    threshold: float
    anomalous: bool
    forecast: float  # raw units of spec.forecast_feature: max expected over the next `horizon` samples
    top_channel: str  # the feature that contributes most to the score
    ready: bool  # False while warming up or when the sample had no valid reading


class Scores(NamedTuple):
    """One step's results, one entry per input row (that row's slot), each a (B,) array."""

    score: np.ndarray  # float64
    anomalous: np.ndarray  # bool: ready and score > threshold
    forecast: np.ndarray  # float64, raw units of spec.forecast_feature
    top: np.ndarray  # int64: index into spec.features of the channel that contributes most
    ready: np.ndarray  # bool: False while warming up or when the row had no valid reading


class _Workspace:
    """A batch size's views into the model's flat float32 buffers, its float64 scratch and, with IO binding,
    an ONNX Runtime binding of those same buffers (made once, so a call binds nothing)."""

    def __init__(self, model: Model, n: int):
        spec, flat, f = model.spec, model._flat, model._f
        self.x = flat["x"][: n * spec.window * f].reshape(n, spec.window, f)
        self.pred = flat["pred"][: n * f].reshape(n, f)
        self.fc = flat["forecast"][:n].reshape(n, 1)
        self.z = self.x[:, -1]  # (n, F) float32: the new normalised sample, the graph's last input row
        self.t, self.d, self.contrib = (np.zeros((n, f)) for _ in range(3))
        # the model's per-feature constants tiled to (n, F): every ufunc of the step is same-shape, contiguous
        self.mean, self.std, self.resid = (np.tile(v, (n, 1)) for v in (model._mean, model._std, model._resid))
        # a gathered step's copies of its slots' rows of the arena's feat and last: it works on these, then
        # scatters them back
        self.feat, self.last = np.zeros((3, n, f)), np.zeros((4, n))
        self.fc_flat = self.fc.reshape(n)
        self.feeds = {"x": self.x}
        self.outputs = {"pred": self.pred, "forecast": self.fc}
        if model._streaming:
            shape = (2, spec.num_layers, n, spec.hidden_size)
            size = int(np.prod(shape))
            self.hc_in = flat["hc_in"][:size].reshape(shape)
            self.hc_out = flat["hc_out"][:size].reshape(shape)
            self.feeds |= {"h0": self.hc_in[0], "c0": self.hc_in[1]}
            self.hc_in_rows = self.hc_in.reshape(2 * spec.num_layers, n, spec.hidden_size)
            self.hc_out_rows = self.hc_out.reshape(2 * spec.num_layers, n, spec.hidden_size)
            self.outputs |= {"h1": self.hc_out[0], "c1": self.hc_out[1]}
        self._session, self._n = model._session, n
        self.binding = self._bind(self.feeds, self.outputs) if model.iobinding else None
        self.run = self._runner(self.binding)
        self._in_place: dict[tuple[int, int], Any] = {}

    def _bind(self, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        b = self._session.io_binding()
        for name, arr in feeds.items():
            b.bind_input(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
        for name, arr in outputs.items():
            b.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
        return b

    def in_place(self, arena: Arena, start: int):
        """The graph's call for slots start..start+n-1 with h0 and h1 bound to the same rows of the arena, and
        c0 and c1 likewise (one layer: each is one contiguous block there), so the LSTM state is neither copied
        in nor out. Only used where Model found this onnxruntime gives the same bits that way (_aliasing)."""
        key = (start, arena.capacity)  # the arena's arrays are new when it grows: so are their bindings
        run = self._in_place.get(key)
        if run is None:
            if len(self._in_place) >= 64:
                self._in_place.clear()
            h, c = arena.hc[:, :, start:start + self._n]
            b = self._bind({"x": self.x, "h0": h, "c0": c},
                           {"pred": self.pred, "forecast": self.fc, "h1": h, "c1": c})
            run = self._in_place[key] = self._runner(b), b, arena.hc  # the arena's memory lives while bound
        return run[0]

    def _runner(self, b):
        """The call that runs the graph on binding `b`'s buffers: the binding's C++ entry point itself when
        this onnxruntime has it (InferenceSession.run_with_iobinding checks for WebGPU graph capture on every
        call first: ~1.2 µs of a ~18 µs call at 32 rows on this machine)."""
        session = self._session
        if b is None:
            return None
        sess, raw = getattr(session, "_sess", None), getattr(b, "_iobinding", None)
        if raw is not None and getattr(b, "_session", None) is sess and hasattr(sess, "run_with_iobinding"):
            is_capture = getattr(sess, "is_webgpu_graph_capture_enabled", None)
            if is_capture is None or not is_capture():
                return partial(sess.run_with_iobinding, raw, None)
        return partial(session.run_with_iobinding, b)


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

    def __init__(self, path: str | Path | None = None, threads: int = 1, iobinding: bool = True):
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
        self._unscored = [self.spec.features.index(n) for n in self.spec.inputs_only] or None
        self._outputs = [o.name for o in self._session.get_outputs()]
        spec = self.spec
        self.arena = Arena(spec)
        self._f, self._window = spec.n_features, spec.window
        self._streaming = spec.form == "streaming"
        self._mean = np.asarray(spec.mean, dtype=np.float64)
        self._std = np.asarray(spec.std, dtype=np.float64)
        self._fc_std, self._fc_mean = float(spec.std[self._fi]), float(spec.mean[self._fi])
        self._thr, self._warmup = float(spec.threshold), spec.warmup
        state = 2 * spec.num_layers * spec.hidden_size if self._streaming else 0
        # float32 values per row of each buffer ONNX Runtime reads or writes
        self._sizes = {"x": spec.window * self._f, "pred": self._f, "forecast": 1, "hc_in": state, "hc_out": state}
        self._flat: dict[str, np.ndarray] = {}
        self._ws: dict[int, _Workspace] = {}
        self._ws_rows = 0
        self.iobinding = iobinding
        self.check_slots = True
        self._aliasing: bool | None = None  # see _alias_ok

    def _alias_ok(self) -> bool:
        """Whether a step over a run of slots may bind the LSTM state's input and output to the same arena rows
        (one layer, IO binding on), checked once: onnxruntime does not promise that an output may overwrite an
        input, so a batch of random states is run both ways and must give the same bits, else the state is
        copied in and out as for scattered slots."""
        if self._aliasing is None:
            self._aliasing = False
            spec = self.spec
            if self._streaming and self.iobinding and spec.num_layers == 1:
                rng = np.random.default_rng(0)
                n = 37
                x = rng.standard_normal((n, spec.window, self._f)).astype(np.float32)
                hc = (rng.standard_normal((2, 1, n, spec.hidden_size)) * 0.5).astype(np.float32)
                want = self._session.run(self._outputs, {"x": x, "h0": hc[0], "c0": hc[1]})
                got = {"pred": np.zeros((n, self._f), np.float32), "forecast": np.zeros((n, 1), np.float32),
                       "h1": hc[0], "c1": hc[1]}
                b = self._session.io_binding()
                for name, arr in (("x", x), ("h0", hc[0]), ("c0", hc[1])):
                    b.bind_input(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
                for name, arr in got.items():
                    b.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
                self._session.run_with_iobinding(b)
                self._aliasing = all(got[k].tobytes() == v.tobytes() for k, v in zip(self._outputs, want, strict=True))
        return self._aliasing

    def alloc(self) -> int:
        """A new stream: a slot of this model's arena holding a fresh state (see models.arena)."""
        return self.arena.alloc()

    def free(self, slot: int) -> None:
        """The stream in `slot` has gone away (a reboot, a long gap, a board removed)."""
        self.arena.free(slot)

    def step(self, slots: np.ndarray | list[int] | range, x_raw: np.ndarray) -> Scores:
        """One new sample for each of B distinct streams. slots: (B,) ints, or a range(a, b) when the rows are
        slots a..b-1 in order (then the arena is read and written in place, with no gather or scatter); x_raw:
        (B, F) raw values in spec.features order. Updates the arena; returns (B,) arrays in the rows' order.

        A row with a NaN or inf (no valid reading) leaves its slot untouched and returns the slot's last result
        with ready=False and anomalous=False, so a sensor fault neither poisons the LSTM state nor raises a
        false alert. The slots must be allocated and distinct: checked (ValueError) unless `check_slots` is
        False, which a caller that guarantees it sets (edge.detector does; the check costs ~3 µs a call).
        """
        if slots.__class__ is range and slots.step == 1:  # a run: the arena's rows in place (no index array)
            at: np.ndarray | slice = slice(slots.start, slots.stop)
            n = len(slots)
        else:
            at = np.asarray(slots, dtype=np.intp)
            n = at.size
        x = np.asarray(x_raw, dtype=np.float64)
        if x.shape != (n, self._f):
            x = x.reshape(n, self._f)
        if self.check_slots:
            self.arena.check(np.arange(at.start, at.stop) if isinstance(at, slice) else at)
        flat = x.ravel()
        # every value finite: a NaN or inf anywhere makes the dot product NaN or inf (so does a finite value
        # over 1e154, which the per-row check below then scores as valid: only slower)
        if math.isfinite(flat.dot(flat)):
            return self._step_valid(x, at)
        slots = np.arange(at.start, at.stop) if isinstance(at, slice) else at
        valid = np.isfinite(x).all(axis=1)
        idx = np.flatnonzero(valid)
        ready = np.zeros(slots.size, dtype=bool)
        anomalous = np.zeros(slots.size, dtype=bool)
        if idx.size:
            done = self._step_valid(x[idx], slots[idx])
            ready[idx], anomalous[idx] = done.ready, done.anomalous
        a = self.arena  # valid rows were just written: their fresh result, the others their last
        return Scores(a.score[slots], anomalous, a.forecast[slots], a.top[slots].astype(np.int64), ready)

    def _step_valid(self, x: np.ndarray, at: np.ndarray | slice) -> Scores:
        """step() for rows that are all finite. Every intermediate lives in the workspace of this batch size;
        the only per-call allocations are the returned arrays. `at` indexes the arena: the rows' slots (checked
        by step()), or a slice when they are one increasing run (then each quantity's rows are a contiguous
        view, updated in place: nothing gathered or scattered).

        With F = 2 a numpy call costs far more than its arithmetic (~0.5 µs for a same-shape contiguous call
        at 32 rows, 2-4x that with a strided or broadcast operand), so the step is counted in calls and each
        call is the cheap kind: one array per quantity in the arena, the constants tiled to (n, F), a fresh
        slot's EWMA held by a smoothing factor of 0 (no branch, no np.where)."""
        n, arena = len(x), self.arena
        if n == 0:
            e = np.zeros(0)
            return Scores(e, e.astype(bool), e, e.astype(np.int64), e.astype(bool))
        ws = self._workspace(n)
        inplace = isinstance(at, slice)
        if inplace:
            feat, last = arena.feat[:, at], arena.last[:, at]
        else:
            feat, last = ws.feat, ws.last
            np.take(arena.feat, at, axis=1, out=feat, mode="clip")
            np.take(arena.last, at, axis=1, out=last, mode="clip")
        ewma, pred, alpha = feat
        score, fc, top, count = last
        # z = (x - mean) / std in float64, rounded to float32 as normalise's astype rounds; t is that float32
        # sample back in float64, for the residual
        t = ws.t
        np.subtract(x, ws.mean, out=t)
        np.divide(t, ws.std, out=t)
        ws.z[...] = t
        t[...] = ws.z
        if self._window > 1:  # slide each stream's window by one sample (oldest first, as WindowBuffer.push)
            ws.x[:, :-1] = arena.window[at, 1:]
            arena.window[at] = ws.x
        run, copy_state = ws.run, self._streaming
        if self._streaming:
            if inplace and (self._aliasing or (self._aliasing is None and self._alias_ok())):
                run, copy_state = ws.in_place(arena, at.start), False  # h and c read and written where they lie
            elif inplace:
                ws.hc_in_rows[...] = arena.hc_rows[:, at]
            else:
                np.take(arena.hc_rows, at, axis=1, out=ws.hc_in_rows, mode="clip")
        if run is not None:
            run()
        else:
            self._run(ws)
        d = ws.d
        np.subtract(t, pred, out=d)  # residual against the previous prediction
        np.divide(d, ws.resid, out=d)
        np.multiply(d, d, out=d)
        np.minimum(d, 1e6, out=d)
        if self._unscored is not None:  # inputs only: their EWMA stays at 1, |ln 1| = 0
            d[:, self._unscored] = 1.0
        np.subtract(d, ewma, out=d)
        np.multiply(d, alpha, out=d)  # alpha: 0 until the slot has a prediction (EWMA held at 1)
        np.add(ewma, d, out=ewma)
        contrib = ws.contrib
        np.maximum(ewma, _S_FLOOR, out=contrib)
        np.log(contrib, out=contrib)
        np.abs(contrib, out=contrib)
        if self._f == 2:  # max(axis=1) costs several times one np.maximum of the two columns
            np.maximum(contrib[:, 0], contrib[:, 1], out=score)
        else:
            contrib.max(axis=1, out=score)
        best = contrib.argmax(axis=1)
        top[...] = best
        np.multiply(ws.fc_flat, self._fc_std, out=fc, dtype=np.float64)  # float32 widened first, exactly
        np.add(fc, self._fc_mean, out=fc)
        pred[...] = ws.pred
        count += 1
        alpha[...] = self._alpha
        if copy_state:
            arena.hc_rows[:, at] = ws.hc_out_rows
        ready = count > self._warmup
        anomalous = score > self._thr
        anomalous &= ready
        if not inplace:
            arena.feat[:, at] = feat
            arena.last[:, at] = last
        # score and fc are views of the arena (in place) or of the workspace: hand out copies
        return Scores(score.copy(), anomalous, fc.copy(), best, ready)

    # ------------------------------------------------------------------------------------------ workspace

    def _workspace(self, n: int) -> _Workspace:
        """Buffers (and their ONNX Runtime binding) for a batch of n rows, cached per n."""
        ws = self._ws.get(n)
        if ws is None:
            if n > self._ws_rows:  # new flat buffers; bindings of smaller batches point into the old ones
                self._ws_rows = max(n, 2 * self._ws_rows, 32)
                self._flat = {k: np.zeros(self._ws_rows * size, dtype=np.float32)
                              for k, size in self._sizes.items()}
                self._ws.clear()
            if len(self._ws) >= 512:  # a long run of odd batch sizes: start the cache again
                self._ws.clear()
            ws = self._ws[n] = _Workspace(self, n)
        return ws

    def _run(self, ws: _Workspace) -> None:
        if ws.binding is not None:
            self._session.run_with_iobinding(ws.binding)
            return
        outs = self._session.run(self._outputs, ws.feeds)
        for name, value in zip(self._outputs, outs, strict=True):
            ws.outputs[name][...] = value

    def score_series(self, x_raw: np.ndarray) -> dict[str, np.ndarray]:
        """(T, F) raw -> dict of (T,) arrays: score, anomalous, forecast, ready, top (index) — one stream."""
        return {k: v[0] for k, v in self.score_batch(np.asarray(x_raw)[None]).items()}

    def score_batch(self, x_raw: np.ndarray) -> dict[str, np.ndarray]:
        """(B, T, F) raw, B independent streams scored in lock-step -> dict of (B, T) arrays."""
        x_raw = np.asarray(x_raw, dtype=np.float64)
        b, t, _ = x_raw.shape
        slots = np.array([self.alloc() for _ in range(b)], dtype=np.intp)
        out = {"score": np.zeros((b, t)), "forecast": np.full((b, t), math.nan),
               "ready": np.zeros((b, t), dtype=bool), "top": np.zeros((b, t), dtype=np.int64),
               "anomalous": np.zeros((b, t), dtype=bool)}
        try:
            for j in range(t):
                r = self.step(slots, x_raw[:, j])
                for key in out:
                    out[key][:, j] = getattr(r, key)
        finally:
            for s in slots.tolist():
                self.free(s)
        return out
