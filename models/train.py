"""Train the firedamp LSTM (anomaly score + methane forecast) on the simulator or on a CSV, then export it.

`firedamp train --out models/firedamp-lstm.onnx` trains the shipped model on simulated mine data;
`firedamp train --data readings.csv --sep ';' --features ch4,flow --forecast ch4 --horizon 300 --out m.onnx`
trains on your own readings (labels, if any, are only used for the report). A site export: any number of
other columns (never read), `--period` seconds per sample, `--horizon` in samples or with a unit (300s, 5min,
2h), `--time-column` to put rows on the sample grid (a gap becomes missing samples, which the LSTM skips
as the edge does), `--inputs-only` for a column such as a machine's on/off state that the network sees but
the anomaly score leaves out. Needs the train extra (torch).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from firedamp.errors import DataError, FiredampError
from models.features import ModelSpec, fit_normalisation, future_max, normalise, sliding_windows
from models.threshold import pot_threshold

VERSION = "1.0.0"
SIM_FEATURES, SIM_UNITS = ["ch4", "flow"], ["%vol", "m3/min"]
DEFAULT_UNITS = dict(zip(SIM_FEATURES, SIM_UNITS, strict=True))  # what `firedamp history --csv` columns hold
INSTRUMENT_FAULTS = {"sensor_drift", "stuck_sensor", "spikes", "pulse_dropout"}
# Seeds: training 0.., validation/calibration 1000.., held-out evaluation TEST_SEED0 = 5000.. (models.simeval)
VAL_SEED0 = 1000


@dataclass
class Settings:
    arch: str = "lstm"  # lstm (streaming, K=1) | cnn (conv front end K + LSTM, streaming) | windowed
    hidden_size: int = 32
    num_layers: int = 1
    kernel: int = 8  # conv window for arch=cnn
    window: int = 64  # samples per call for arch=windowed
    horizon: int = 300
    chunk: int = 256  # LSTM steps per training sequence (streaming forms)
    burn_in: int = 16  # first steps of a sequence left out of the loss (state warming up)
    batch: int = 64
    batches_per_epoch: int = 150
    lr: float = 3e-3
    max_epochs: int = 60
    patience: int = 8
    seed: int = 0
    max_minutes: float = 12.0
    smoothing: int = 30
    risk: float = 1e-5
    # simulator data
    n_normal: int = 32
    n_each_anomaly: int = 8
    n_val_normal: int = 6
    duration_s: float = 3 * 3600.0


@dataclass
class Series:
    """One training stream: raw x (T, F), label (T,), and whether its labelled span is an instrument fault."""

    name: str
    x: np.ndarray
    label: np.ndarray
    instrument_fault: bool = False


def simulator_series(s: Settings, seed0: int, n_normal: int, n_each: int) -> list[Series]:
    from models import scenarios

    out = []
    for i in range(n_normal):
        sc = scenarios.make("normal", seed0 + i, duration_s=s.duration_s)
        out.append(Series(f"normal/{seed0 + i}", sc.arrays(), sc.label))
    for name in scenarios.ANOMALIES:
        for i in range(n_each):
            sc = scenarios.make(name, seed0 + i, duration_s=s.duration_s)
            out.append(Series(f"{name}/{seed0 + i}", sc.arrays(), sc.label, name in INSTRUMENT_FAULTS))
    return out


def digest(settings: dict, series: list[Series]) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for s in series:
        h.update(s.name.encode())
        h.update(np.ascontiguousarray(s.x, dtype=np.float64).tobytes())
    return h.hexdigest()


class _Prepared:
    """Normalised arrays and loss masks for one series (targets are indexed by 'now')."""

    def __init__(self, s: Series, spec: ModelSpec):
        self.z = normalise(s.x, spec)
        fi, h = spec.forecast_index, spec.horizon
        fmax = future_max(s.x[:, fi], h)
        self.fc = ((fmax - spec.mean[fi]) / spec.std[fi]).astype(np.float32)
        lab = s.label.astype(bool)
        self.pmask = np.zeros(len(lab), bool)
        self.pmask[:-1] = ~lab[:-1] & ~lab[1:] & ~np.isnan(self.z[:-1]).any(1) & ~np.isnan(self.z[1:]).any(1)
        fault = lab if s.instrument_fault else np.zeros_like(lab)
        ahead = np.convolve(fault.astype(float), np.ones(h + 1), mode="full")[h: h + len(lab)] > 0
        self.fmask = np.isfinite(self.fc) & ~ahead & ~np.isnan(self.z).any(1)
        self.z = np.nan_to_num(self.z)
        self.fc = np.nan_to_num(self.fc)


def _batches(prep: list[_Prepared], rng: np.random.Generator, n: int, steps: int, k: int):
    """n chunks -> x (n, steps + k - 1, F), next (n, steps, F), fc (n, steps), pmask, fmask."""
    lens = np.array([max(len(p.z) - steps - k, 0) for p in prep], dtype=float)
    which = rng.choice(len(prep), size=n, p=lens / lens.sum())
    xs, nx, fc, pm, fm = [], [], [], [], []
    for w in which:
        p = prep[w]
        s = int(rng.integers(0, len(p.z) - steps - k + 1))
        now = slice(s + k - 1, s + k - 1 + steps)
        xs.append(p.z[s: s + steps + k - 1])
        nx.append(p.z[now.start + 1: now.stop + 1])
        fc.append(p.fc[now])
        pm.append(p.pmask[now])
        fm.append(p.fmask[now])
    return tuple(np.stack(a) for a in (xs, nx, fc, pm, fm))


def fit(train: list[Series], val: list[Series], spec: ModelSpec, s: Settings, work: Path,
        init: dict | None = None, verbose: bool = True):
    """Train with early stopping on the validation loss; returns (net, history dict).

    init: a state_dict to start from (fine-tuning a pretrained net of the same shape); verbose=False keeps
    stdout and stderr quiet (a caller with its own progress bar)."""
    import torch
    from tqdm import tqdm

    from models.network import FiredampNet

    torch.manual_seed(s.seed)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    kernel = s.kernel if s.arch == "cnn" else 1
    net_args = dict(n_features=spec.n_features, hidden_size=s.hidden_size, num_layers=s.num_layers,
                    kernel=kernel, forecast_index=spec.forecast_index)
    net = FiredampNet(**net_args)
    if init is not None:
        net.load_state_dict(init)
    log = print if verbose else _quiet
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    steps = s.window - kernel + 1 if s.arch == "windowed" else s.chunk
    rng = np.random.default_rng(s.seed)
    ptrain = [_Prepared(x, spec) for x in train]
    pval = [_Prepared(x, spec) for x in val]
    vb = [torch.from_numpy(a) for a in _batches(pval, np.random.default_rng(s.seed + 1), 512, steps, kernel)]

    def loss_of(batch):
        x, nx, fc, pm, fm = batch
        pred, fcp, _ = net.sequence(x)
        pm, fm = pm[:, s.burn_in:], fm[:, s.burn_in:]
        lp = ((pred[:, s.burn_in:] - nx[:, s.burn_in:]) ** 2).mean(-1)
        # Huber: an outburst's forecast error (tens of std) must not drown the everyday accuracy
        lf = torch.nn.functional.huber_loss(fcp[:, s.burn_in:, 0], fc[:, s.burn_in:], reduction="none", delta=1.0)
        lp = (lp * pm).sum() / pm.sum().clamp(min=1)
        lf = (lf * fm).sum() / fm.sum().clamp(min=1)
        return lp + lf, lp, lf

    hist: dict[str, list[float]] = {"train": [], "val": [], "val_pred": [], "val_forecast": []}
    best, best_state, bad, t0 = float("inf"), None, 0, time.monotonic()
    for epoch in range(s.max_epochs):
        net.train()
        total = 0.0
        bar = tqdm(range(s.batches_per_epoch), desc=f"epoch {epoch + 1:2d}", leave=False, ncols=90,
                   disable=not verbose)
        for _ in bar:
            batch = [torch.from_numpy(a) for a in _batches(ptrain, rng, s.batch, steps, kernel)]
            loss, _, _ = loss_of(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        net.eval()
        with torch.no_grad():
            vl, vp, vf = (float(v) for v in loss_of(vb))
        hist["train"].append(total / s.batches_per_epoch)
        hist["val"].append(vl)
        hist["val_pred"].append(vp)
        hist["val_forecast"].append(vf)
        log(f"epoch {epoch + 1:2d}  train {hist['train'][-1]:.4f}  val {vl:.4f} (next {vp:.4f}, forecast {vf:.4f})",
              flush=True)
        if vl < best - 1e-4:
            best, bad = vl, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
        if bad >= s.patience:
            log(f"early stop: no improvement in {s.patience} epochs")
            break
        if time.monotonic() - t0 > s.max_minutes * 60:
            log(f"time budget of {s.max_minutes} min reached")
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.net_args = net_args  # saved with the final (calibrated) spec by train()
    _plot_loss(hist, work / "loss.png")
    return net.eval(), hist


def _plot_loss(hist: dict[str, list[float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ep = np.arange(1, len(hist["train"]) + 1)
    for key in hist:
        ax.plot(ep, hist[key], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised MSE)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def residual_std(net, spec: ModelSpec, normal: list[Series]) -> list[float]:
    """Per-feature std of (z_{t+1} - pred_t) on normal data, in the form the model will run."""
    import torch

    errs = []
    with torch.no_grad():
        for s in normal:
            z = np.nan_to_num(normalise(s.x, spec))
            if spec.form == "streaming":
                pred, _, _ = net.sequence(torch.from_numpy(z[None]))
                pred = pred[0].numpy()  # row j predicts z[j + K]
                e = z[net.kernel:] - pred[:-1]
            else:
                from models.network import Windowed

                w = Windowed(net)
                win = sliding_windows(z, spec.window)  # row j ends at z[j + W - 1]
                pred = np.concatenate([w(torch.from_numpy(np.ascontiguousarray(win[i: i + 4096])))[0].numpy()
                                       for i in range(0, len(win), 4096)])
                e = z[spec.window:] - pred[:-1]
            errs.append(e[spec.warmup:])
    e = np.concatenate(errs)
    return [float(max(v, 1e-4)) for v in e.std(axis=0)]


def calibrate(model_path: Path, normal: list[Series], risk: float) -> tuple[float, np.ndarray]:
    """Score normal validation streams with the real runtime; POT threshold on the ready scores."""
    from models.runtime import Model

    model = Model(model_path)
    by_len: dict[int, list[np.ndarray]] = {}
    for s in normal:  # streams of one length are scored in lock-step (the simulator's are all one length)
        by_len.setdefault(len(s.x), []).append(s.x)
    scores = []
    for group in by_len.values():
        out = model.score_batch(np.stack(group))
        scores.append(out["score"][out["ready"]])
    scores = np.concatenate(scores)
    return pot_threshold(scores, risk=risk), scores


def train(train_set: list[Series], val_set: list[Series], features: list[str], units: list[str],
          forecast: str, period_s: float, s: Settings, out: Path, work: Path, data_digest_extra: str = "",
          init: dict | None = None, verbose: bool = True, inputs_only: list[str] | None = None) -> ModelSpec:
    """The whole pipeline: fit normalisation, train, residual scale, export, calibrate, export sealed.

    init / verbose: as for `fit` (a pretrained state_dict to fine-tune; quiet for a caller's own progress bar)."""
    from models.export import write_model

    work.mkdir(parents=True, exist_ok=True)
    mean, std = fit_normalisation(np.concatenate([x.x for x in train_set if not x.label.any()] or [train_set[0].x]))
    kernel = s.kernel if s.arch == "cnn" else 1
    form = "windowed" if s.arch == "windowed" else "streaming"
    spec = ModelSpec(
        features=features, units=units, sample_period_s=period_s, mean=mean, std=std, form=form,
        window=s.window if form == "windowed" else kernel, hidden_size=s.hidden_size, num_layers=s.num_layers,
        threshold=1.0, horizon=s.horizon, forecast_feature=forecast, version=VERSION,
        training_digest=digest(asdict(s) | {"extra": data_digest_extra}, train_set),
        residual_std=[1.0] * len(features), smoothing=s.smoothing, warmup=max(120, 4 * s.smoothing),
        architecture=s.arch, inputs_only=list(inputs_only or []),
    )
    normal_val = [v for v in val_set if not v.label.any()] or val_set
    if min(len(v.x) for v in normal_val) <= spec.warmup + 50:
        raise DataError(f"the calibration rows ({min(len(v.x) for v in normal_val)}) must be longer than the warm-up "
                        f"({spec.warmup} samples = max(120, 4 x smoothing)) plus 50 scores")
    t0 = time.monotonic()
    net, hist = fit(train_set, val_set, spec, s, work, init=init, verbose=verbose)
    spec.residual_std = residual_std(net, spec, normal_val)
    write_model(net, spec, work / "uncalibrated.onnx")
    spec.threshold, scores = calibrate(work / "uncalibrated.onnx", normal_val, s.risk)
    spec.extra = {"epochs": str(len(hist["train"])), "train_minutes": f"{(time.monotonic() - t0) / 60:.1f}",
                  "calibration_samples": str(scores.size), "risk": str(s.risk),
                  "forecast_typical_rise": repr(typical_rise(train_set, spec.forecast_index, spec.horizon))}
    write_model(net, spec, out)
    import torch

    torch.save({"net_args": net.net_args, "state_dict": net.state_dict(), "spec": spec.to_metadata()},
               str(work / "model.pt"))
    log = print if verbose else _quiet
    log(f"threshold {spec.threshold:.3f} (POT, risk {s.risk:g}/sample, {scores.size} normal samples); "
          f"residual std {[round(v, 3) for v in spec.residual_std]}")
    log(f"wrote {out} in {(time.monotonic() - t0) / 60:.1f} min; loss curve {work / 'loss.png'}")
    return spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="FILE", help="the .onnx model file to write")
    parser.add_argument("--data", metavar="FILE", help="train on this CSV instead of the built-in mine simulator")
    parser.add_argument("--sep", default=",", help="CSV column separator (default ','; SKAB uses ';')")
    parser.add_argument("--features", metavar="A,B,C", help="comma-separated CSV columns to use, in order (e.g. ch4,flow)")
    parser.add_argument("--forecast", metavar="COLUMN", help="the column to forecast (one of --features; default: the first)")
    parser.add_argument("--horizon", default="300", metavar="H",
                        help="forecast horizon: samples (300), or a time with a unit (300s, 5min, 2h: rounded to "
                             "whole samples of --period); default 300 samples")
    parser.add_argument("--units", metavar="U,V",
                        help="unit of each feature, in order (default: %%vol for ch4, m3/min for flow, none for "
                             "others); the edge checks a board's units against these before scoring")
    parser.add_argument("--label-column", metavar="NAME", help="0/1 anomaly column: not used for training, only reported")
    parser.add_argument("--period", type=float, default=1.0, metavar="S",
                        help="seconds per sample (default 1; e.g. 60 for one-minute averages)")
    parser.add_argument("--time-column", metavar="NAME",
                        help="column with each row's time (seconds, or ISO 8601): rows are put on the --period grid "
                             "and gaps become missing samples; without it rows are taken as consecutive samples")
    parser.add_argument("--inputs-only", metavar="A,B",
                        help="features the network sees but the anomaly score leaves out (e.g. a 0/1 machine-running "
                             "column: its switching is not an anomaly)")
    parser.add_argument("--arch", choices=["lstm", "cnn", "windowed"], default="lstm",
                        help="lstm: streaming LSTM (shipped); cnn: conv front end + LSTM; windowed: LSTM over a window")
    parser.add_argument("--hidden", type=int, default=32, help="LSTM hidden size (default 32)")
    parser.add_argument("--epochs", type=int, default=60, help="maximum epochs (early stopping ends sooner)")
    parser.add_argument("--minutes", type=float, default=12.0, help="training time budget in minutes (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same model)")
    parser.add_argument("--quick", action="store_true", help="a tiny run for smoke tests (minutes -> seconds)")
    parser.add_argument("--work-dir", default="build/train", metavar="DIR", help="checkpoint and loss curve go here")


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise FiredampError("training needs the train extra: pip install -e '.[train]'") from exc
    if not (args.period > 0 and np.isfinite(args.period)):
        raise DataError(f"--period {args.period}: must be a number of seconds > 0")
    horizon = parse_horizon(args.horizon, args.period)
    s = Settings(arch=args.arch, hidden_size=args.hidden, horizon=horizon, max_epochs=args.epochs,
                 max_minutes=args.minutes, seed=args.seed)
    if args.quick:
        s.n_normal, s.n_each_anomaly, s.n_val_normal, s.duration_s = 3, 1, 2, 3600.0
        s.max_epochs, s.batches_per_epoch, s.batch = 2, 5, 16
    out, work = Path(args.out), Path(args.work_dir)
    if args.data:
        from models.csvdata import EDGE_MAX_GAP_SAMPLES, read_csv, regularise, stretches

        table = read_csv(args.data, sep=args.sep, columns=_split(args.features), label_column=args.label_column,
                         time_column=args.time_column)
        features = table.columns
        if args.label_column and args.label_column in features:
            raise DataError(f"--label-column {args.label_column!r} is also in --features: a label is never an input")
        forecast = args.forecast or features[0]
        if forecast not in features:
            raise DataError(f"--forecast {forecast!r} must be one of --features {features}")
        inputs_only = _split(args.inputs_only) or []
        for name in inputs_only:
            if name not in features:
                raise DataError(f"--inputs-only {name!r} must be one of --features {features}")
        if set(inputs_only) >= set(features):
            raise DataError("--inputs-only names every feature: at least one must be scored")
        present = None
        if table.t_s is not None:
            table, info, present = regularise(table, args.period)
            print(f"{args.data}: {info['rows']} rows on a {args.period:g} s grid of {info['samples']} samples: "
                  f"{info['gaps']} gap{'' if info['gaps'] == 1 else 's'} ({info['missing_samples']} missing samples, longest {info['longest_gap_s']:g} s), "
                  f"{info['merged_rows']} rows shared a sample with a later one (the later kept)")
        missing = np.isnan(table.x).any(axis=1)
        if missing.any():
            print(f"{int(missing.sum())} of {len(table.x)} samples have a missing value: left out of the loss and "
                  "skipped by the scorer, as the edge skips a sample without a valid reading")
        need = max(2000, 10 * s.horizon)
        if len(table.x) < need:
            raise DataError(f"{args.data}: {len(table.x)} rows; training needs at least {need} "
                            f"(max(2000, 10 x --horizon {s.horizon}))")
        cut = int(len(table.x) * 0.8)
        for j, name in enumerate(features):
            col = table.x[:cut, j]
            if np.isfinite(col).sum() and np.nanstd(col) == 0:
                print(f"warning: {name!r} is constant ({np.nanmin(col):g}) in the training rows; any other value "
                      "will look anomalous (train on rows where it varies)")
        label = table.label if table.label is not None else np.zeros(len(table.x), np.int8)
        # one training sequence never spans a silence the edge would restart the stream after
        spans = stretches(present) if present is not None else [(0, len(table.x))]
        warm = max(120, 4 * s.smoothing)
        tr = [Series(f"train/{a}", table.x[a:min(b, cut)], np.zeros(min(b, cut) - a, np.int8))
              for a, b in spans if min(b, cut) - a >= 64]
        va = [Series(f"val/{a}", table.x[max(a, cut):b], np.zeros(b - max(a, cut), np.int8))
              for a, b in spans if b - max(a, cut) > warm + 50]
        if not tr or not va:
            raise DataError(f"{args.data}: after splitting at silences longer than {EDGE_MAX_GAP_SAMPLES} samples, "
                            f"the first 80 % needs a stretch of >= 64 samples and the last 20 % one of more than "
                            f"{warm + 50} (warm-up + 50)")
        if len(spans) > 1:
            print(f"{len(spans)} stretches between silences longer than {EDGE_MAX_GAP_SAMPLES} samples: "
                  f"{len(tr)} train, {len(va)} calibrate (shorter ones left out)")
        longest_val = max(len(v.x) for v in va)
        s.chunk = max(32, min(s.chunk, longest_val // 4, min(max(len(t.x) for t in tr), longest_val) - 2))
        s.window = min(s.window, s.chunk)
        units = _split(args.units) or [DEFAULT_UNITS.get(f, "") for f in features]
        if len(units) != len(features):
            raise DataError(f"--units has {len(units)} entries but there are {len(features)} features {features}")
        spec = train(tr, va, features, units, forecast, args.period, s, out, work,
                     data_digest_extra=f"{Path(args.data).name}:{label.sum()}", inputs_only=inputs_only)
        if table.label is not None:
            _report_labels(out, table.x, table.label, spec, present)
        return 0
    tr = simulator_series(s, 0, s.n_normal, s.n_each_anomaly)
    va = simulator_series(s, VAL_SEED0, s.n_val_normal, max(1, s.n_each_anomaly // 3))
    train(tr, va, SIM_FEATURES, SIM_UNITS, "ch4", 1.0, s, out, work, data_digest_extra="simulator")
    return 0


def parse_horizon(text: str, period_s: float) -> int:
    """'300' (samples), '300s', '5min', '2h' -> whole samples of period_s (at least 1); DataError otherwise."""
    t = str(text).strip().lower()
    units = (("min", 60.0), ("ms", 1e-3), ("s", 1.0), ("h", 3600.0))
    for suffix, scale in units:
        if t.endswith(suffix) and t[: -len(suffix)].strip():
            try:
                seconds = float(t[: -len(suffix)]) * scale
            except ValueError:
                break
            n = int(round(seconds / period_s))
            if not np.isfinite(seconds) or n < 1:
                raise DataError(f"--horizon {text!r} is less than one sample of --period {period_s:g} s")
            return n
    else:
        try:
            n = int(t)
        except ValueError:
            n = 0
        if n >= 1:
            return n
    raise DataError(f"--horizon {text!r}: give samples (300) or a time with a unit (300s, 5min, 2h)")


def typical_rise(series: list[Series], fi: int, horizon: int) -> float:
    """Median over the normal training samples of (max of the forecast feature over the next `horizon`) - now:
    the naive baseline 'current value + typical rise' that `firedamp evaluate` sets beside the forecast."""
    rises = []
    for s in series:
        if s.label.any():
            continue
        c = s.x[:, fi]
        rises.append(future_max(c, horizon) - c)
    r = np.concatenate(rises) if rises else np.zeros(0)
    r = r[np.isfinite(r)]
    return float(np.median(r)) if r.size else 0.0


def _report_labels(path: Path, x: np.ndarray, label: np.ndarray, spec: ModelSpec,
                   present: np.ndarray | None = None) -> None:
    """The labels were not used for training: show how the new model's alerts match them (whole file, scored
    as `firedamp evaluate` scores it)."""
    from models import metrics
    from models.evaluate import score_stream
    from models.runtime import Model

    out = score_stream(Model(path), x, present)
    ready = out["ready"]
    r = metrics.rates(metrics.confusion(out["anomalous"][ready], label[ready]))
    e = metrics.events(out["anomalous"], label, spec.sample_period_s)
    print(f"against --label-column (not used for training): precision {r['precision']:.3f} recall {r['recall']:.3f} "
          f"F1 {r['f1']:.3f} FAR {r['far']:.2%}; events {e['detected']}/{e['events']} detected")


def _quiet(*args, **kwargs) -> None:
    return None


def _split(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None
