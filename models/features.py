"""Feature order, units and normalisation: the one place training, export metadata and the edge agree on.

numpy only. A `ModelSpec` is parsed and validated from an ONNX file's metadata_props; training writes it
with `to_metadata`, the edge and `firedamp evaluate` read it with `from_metadata`. `normalise` and
`sliding_windows` are the code paths both the trainer and the edge's windows stage use.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from firedamp.errors import ModelError

SCHEMA = "firedamp-model/1"
FORMS = ("streaming", "windowed")
ZERO_DIGEST = "0" * 64


@dataclass
class ModelSpec:
    """Everything needed to feed and read a model; shapes: F = len(features)."""

    features: list[str]
    units: list[str]
    sample_period_s: float
    mean: list[float]
    std: list[float]
    form: str
    window: int
    hidden_size: int
    num_layers: int
    threshold: float
    horizon: int
    forecast_feature: str
    version: str
    training_digest: str
    content_sha256: str = ZERO_DIGEST
    # per-feature std of the normalised next-sample prediction error on normal data (scales the score)
    residual_std: list[float] = field(default_factory=list)
    # EWMA smoothing of the squared scaled residual, in samples (the score is computed on the smoothed value)
    smoothing: int = 30
    # samples after a fresh state before results are trusted (LSTM state and EWMA settle)
    warmup: int = 60
    architecture: str = "lstm"
    threshold_method: str = "pot"
    # features the network sees but the anomaly score leaves out (e.g. a 0/1 machine-running state)
    inputs_only: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def forecast_index(self) -> int:
        return self.features.index(self.forecast_feature)

    def to_metadata(self) -> dict[str, str]:
        """Flat str -> str map for ONNX metadata_props (lists and dicts as JSON, numbers with repr)."""
        out = {"schema": SCHEMA}
        for key, value in asdict(self).items():
            out[key] = value if isinstance(value, str) else json.dumps(value)
        return out

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> ModelSpec:
        """Parse and validate; raises ModelError naming the missing or bad key."""
        if props.get("schema") != SCHEMA:
            raise ModelError(f"model metadata 'schema' is {props.get('schema')!r}, expected {SCHEMA!r}")
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name not in props:
                if f.name in _REQUIRED:
                    raise ModelError(f"model metadata is missing key {f.name!r}")
                continue
            raw = props[f.name]
            if f.type == "str":
                values[f.name] = raw
                continue
            try:
                values[f.name] = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                raise ModelError(f"model metadata key {f.name!r} is not valid JSON: {raw[:40]!r}") from exc
        spec = cls(**values)  # type: ignore[arg-type]
        spec.validate()
        return spec

    def validate(self) -> None:
        """Check types and ranges; raises ModelError naming the key."""
        def bad(key: str, why: str) -> ModelError:
            return ModelError(f"model metadata key {key!r} {why}")

        if not (isinstance(self.features, list) and self.features and all(isinstance(s, str) and s for s in self.features)):
            raise bad("features", "must be a non-empty list of names")
        if len(set(self.features)) != len(self.features):
            raise bad("features", "has duplicate names")
        n = len(self.features)
        for key in ("units", "mean", "std"):
            value = getattr(self, key)
            if not isinstance(value, list) or len(value) != n:
                raise bad(key, f"must be a list of {n} entries (one per feature)")
        if not all(isinstance(u, str) for u in self.units):
            raise bad("units", "must hold strings")
        for key in ("mean", "std"):
            if not all(_finite(v) for v in getattr(self, key)):
                raise bad(key, "must hold finite numbers")
        if not all(v > 0 for v in self.std):
            raise bad("std", "must be > 0")
        if not isinstance(self.residual_std, list) or not self.residual_std:
            raise bad("residual_std", "must be a non-empty list")  # a plain number used to raise TypeError
        if len(self.residual_std) != n or not all(_finite(v) and v > 0 for v in self.residual_std):
            raise bad("residual_std", f"must be {n} numbers > 0")
        if not (_finite(self.sample_period_s) and self.sample_period_s > 0):
            raise bad("sample_period_s", "must be > 0")
        if self.form not in FORMS:
            raise bad("form", f"must be one of {FORMS}, not {self.form!r}")
        for key in ("window", "hidden_size", "num_layers", "horizon", "smoothing"):
            value = getattr(self, key)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise bad(key, "must be an integer >= 1")
        if not (isinstance(self.warmup, int) and not isinstance(self.warmup, bool) and self.warmup >= 0):
            raise bad("warmup", "must be an integer >= 0")
        if not (_finite(self.threshold) and self.threshold > 0):
            raise bad("threshold", "must be a number > 0")
        if self.forecast_feature not in self.features:
            raise bad("forecast_feature", f"{self.forecast_feature!r} is not one of the features {self.features}")
        for key in ("training_digest", "content_sha256"):
            value = getattr(self, key)
            if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
                raise bad(key, "must be 64 lowercase hex characters")
        if not (isinstance(self.inputs_only, list) and all(isinstance(v, str) and v in self.features
                                                            for v in self.inputs_only)):
            raise bad("inputs_only", f"must be a list of names from the features {self.features}")
        if set(self.inputs_only) >= set(self.features):
            raise bad("inputs_only", "must leave at least one feature scored")
        if not isinstance(self.extra, dict):
            raise bad("extra", "must be a JSON object")


_REQUIRED = {
    "features", "units", "sample_period_s", "mean", "std", "form", "window", "hidden_size", "num_layers",
    "threshold", "horizon", "forecast_feature", "version", "training_digest", "content_sha256", "residual_std",
}


def _finite(v: object) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float (JSON allows any number of digits)
        return False


def normalise(x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(..., F) raw values in spec.features order -> (..., F) float32 z-scores (NaN stays NaN)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] != spec.n_features:
        raise ValueError(f"expected last axis {spec.n_features} ({spec.features}), got shape {x.shape}")
    return ((x - np.asarray(spec.mean)) / np.asarray(spec.std)).astype(np.float32)


def denormalise(z: np.ndarray, spec: ModelSpec, index: int | None = None) -> np.ndarray:
    """Inverse of normalise: (..., F) -> (..., F), or (...) of one feature when `index` is given."""
    z = np.asarray(z, dtype=np.float64)
    if index is None:
        return z * np.asarray(spec.std) + np.asarray(spec.mean)
    return z * spec.std[index] + spec.mean[index]


def fit_normalisation(x: np.ndarray) -> tuple[list[float], list[float]]:
    """(T, F) raw training data -> per-feature mean and std (std floored so a constant column is usable)."""
    x = np.asarray(x, dtype=np.float64)
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    std = np.maximum(std, 1e-3 * np.maximum(np.abs(mean), 1.0))
    return [float(v) for v in mean], [float(v) for v in std]


def sliding_windows(x: np.ndarray, window: int) -> np.ndarray:
    """(T, F) -> (T - window + 1, window, F) view; row i holds samples i .. i+window-1 (oldest first)."""
    x = np.asarray(x)
    if x.shape[0] < window:
        return np.empty((0, window, x.shape[-1]), dtype=x.dtype)
    return np.lib.stride_tricks.sliding_window_view(x, window, axis=0).transpose(0, 2, 1)


def future_max(x: np.ndarray, horizon: int) -> np.ndarray:
    """(T,) -> (T,) max of x[t+1 .. t+horizon]; NaN where fewer than `horizon` future samples exist."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] > horizon:
        w = sliding_windows(x[1:, None], horizon)[:, :, 0]  # row i = x[i+1 .. i+horizon]
        out[: w.shape[0]] = w.max(axis=1)
    return out


class WindowBuffer:
    """Holds the last `window` normalised samples of one stream: what a conv front end or windowed model sees."""

    def __init__(self, window: int, n_features: int):
        self.buf = np.zeros((window, n_features), dtype=np.float32)
        self.count = 0

    def push(self, z: np.ndarray) -> np.ndarray:
        """Append one (F,) normalised sample; returns the (window, F) buffer, oldest first."""
        self.buf[:-1] = self.buf[1:]
        self.buf[-1] = z
        self.count += 1
        return self.buf
