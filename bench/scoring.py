"""Row 1, scoring cost per sample: streaming vs windowed, ONNX Runtime vs the same weights in PyTorch eager.

The shipped model's weights are read from the ONNX initializers into the MODELS code's torch network
(models.network.FiredampNet) and checked against ONNX Runtime on the same input; the windowed form is that
network exported by models.export with a window of WINDOW samples. Everything runs on one thread
(torch.set_num_threads(1); the runtime's sessions are single-threaded as the edge runs them).

Measured per batch of 1, 8 and 32 boards scored together, in µs per sample per board:
- graph: one inference call alone (ORT `session.run` / torch `forward` under inference_mode);
- step:  models.runtime.Model.step, what the edge pays per sample (normalise, state, score, result).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np

from bench.common import per_call_us

BOARDS = (1, 8, 32)
WINDOW = 64  # samples per call of the windowed form (models.export's default)
GOAL_SPEEDUP = 5.0
GOAL_US_AT_32 = 10.0


def _gates(w: np.ndarray, hidden: int) -> np.ndarray:
    """ONNX LSTM gate order (i, o, f, c) -> torch's (i, f, g, o), along axis 0."""
    i, o, f, c = (w[k * hidden:(k + 1) * hidden] for k in range(4))
    return np.concatenate([i, f, c, o], axis=0)


def torch_from_onnx(path: Path, spec):
    """The shipped graph's weights in models.network.FiredampNet; returns the net in eval mode."""
    import onnx
    import torch
    from onnx import numpy_helper

    from models.network import FiredampNet

    g = onnx.load(str(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    init.update(consts)
    convs = [n for n in g.node if n.op_type == "Conv"]
    lstms = [n for n in g.node if n.op_type == "LSTM"]
    if len(lstms) != spec.num_layers:
        raise ValueError(f"{path}: {len(lstms)} LSTM nodes for num_layers={spec.num_layers}")
    kernel = spec.window if convs else 1
    conv_channels = init[convs[0].input[1]].shape[0] if convs else 16
    net = FiredampNet(spec.n_features, spec.hidden_size, spec.num_layers, kernel, conv_channels, spec.forecast_index)
    h = spec.hidden_size
    sd = {}
    if convs:
        sd["conv.weight"] = init[convs[0].input[1]]
        sd["conv.bias"] = init[convs[0].input[2]]
    for layer, node in enumerate(lstms):
        w, r, b = (init[node.input[k]][0] for k in (1, 2, 3))
        sd[f"lstm.weight_ih_l{layer}"] = _gates(w, h)
        sd[f"lstm.weight_hh_l{layer}"] = _gates(r, h)
        sd[f"lstm.bias_ih_l{layer}"] = _gates(b[:4 * h], h)
        sd[f"lstm.bias_hh_l{layer}"] = _gates(b[4 * h:], h)
    for head in ("head_pred", "head_fc"):
        mm = next(n for n in g.node if n.op_type in ("MatMul", "Gemm") and n.name.startswith(f"/{head}/"))
        weight = init[mm.input[1]]
        sd[f"{head}.weight"] = weight.T if mm.op_type == "MatMul" else weight
        if mm.op_type == "Gemm":
            sd[f"{head}.bias"] = init[mm.input[2]]
        else:
            add = next(n for n in g.node if n.op_type == "Add" and n.name.startswith(f"/{head}/"))
            sd[f"{head}.bias"] = init[next(i for i in add.input if i in init)]
    net.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()})
    return net.eval()


def _ort_graph(model, x: np.ndarray, b: int):
    spec = model.spec
    sess = model._session
    feeds = {"x": x}
    if spec.form == "streaming":
        feeds["h0"] = np.zeros((spec.num_layers, b, spec.hidden_size), np.float32)
        feeds["c0"] = np.zeros_like(feeds["h0"])
    return lambda: sess.run(None, feeds)


def measure(quick: bool = False) -> dict:
    import torch

    from models.export import to_onnx_bytes
    from models.network import Windowed
    from models.runtime import DEFAULT_MODEL, Model

    torch.set_num_threads(1)
    min_s, repeats = (0.01, 1) if quick else (0.25, 3)
    stream = Model(DEFAULT_MODEL)
    spec = stream.spec
    if spec.form != "streaming":
        raise ValueError(f"the shipped model is {spec.form!r}; this row expects the streaming form")
    net = torch_from_onnx(DEFAULT_MODEL, spec)
    wspec = copy.deepcopy(spec)
    wspec.form, wspec.window = "windowed", WINDOW
    with tempfile.TemporaryDirectory() as tmp:
        wpath = Path(tmp) / "windowed.onnx"
        wpath.write_bytes(to_onnx_bytes(net, wspec))
        windowed = Model(wpath)
    wnet = Windowed(net).eval()
    rng = np.random.default_rng(0)
    f, k = spec.n_features, spec.window

    # same weights: torch and ONNX Runtime agree on one streaming step and one window
    x = rng.standard_normal((4, k, f)).astype(np.float32)
    h = rng.standard_normal((spec.num_layers, 4, spec.hidden_size)).astype(np.float32) * 0.1
    ort_out = stream._session.run(None, {"x": x, "h0": h, "c0": h})
    xw = rng.standard_normal((4, WINDOW, f)).astype(np.float32)
    ort_w = windowed._session.run(None, {"x": xw})
    with torch.inference_mode():
        t_out = net(torch.from_numpy(x), torch.from_numpy(h), torch.from_numpy(h))
        t_w = wnet(torch.from_numpy(xw))
    diff = max(float(np.abs(a - b.numpy()).max()) for a, b in zip(ort_out, t_out, strict=True))
    diff = max(diff, *(float(np.abs(a - b.numpy()).max()) for a, b in zip(ort_w, t_w, strict=True)))
    if diff > 1e-4:
        raise RuntimeError(f"torch copy of the ONNX weights disagrees with ONNX Runtime by {diff:g}")

    mean, std = np.asarray(spec.mean), np.asarray(spec.std)
    per: dict[str, dict[str, float]] = {}
    for b in BOARDS:
        xs = rng.standard_normal((b, k, f)).astype(np.float32)
        xws = rng.standard_normal((b, WINDOW, f)).astype(np.float32)
        hs = np.zeros((spec.num_layers, b, spec.hidden_size), np.float32)
        txs, txw, ths = torch.from_numpy(xs), torch.from_numpy(xws), torch.from_numpy(hs)

        def torch_stream(txs=txs, ths=ths):
            net(txs, ths, ths)

        def torch_window(txw=txw):
            wnet(txw)

        raw = mean + std * rng.standard_normal((256, b, f))
        states = {"s": [stream.new_state() for _ in range(b)], "w": [windowed.new_state() for _ in range(b)]}
        tick = {"i": 0}

        def step(model, key, raw=raw, states=states, tick=tick):
            tick["i"] = (tick["i"] + 1) % len(raw)
            model.step(states[key], raw[tick["i"]])

        row = {
            "ort_streaming_graph": per_call_us(_ort_graph(stream, xs, b), min_s, repeats),
            "ort_windowed_graph": per_call_us(_ort_graph(windowed, xws, b), min_s, repeats),
        }
        with torch.inference_mode():  # entered once, as a serving loop would: torch at its best
            row["torch_streaming_graph"] = per_call_us(torch_stream, min_s, repeats)
            row["torch_windowed_graph"] = per_call_us(torch_window, min_s, repeats)
        row |= {
            "ort_streaming_step": per_call_us(lambda: step(stream, "s"), min_s, repeats),
            "ort_windowed_step": per_call_us(lambda: step(windowed, "w"), min_s, repeats),
        }
        order = ("ort_streaming_graph", "torch_streaming_graph", "ort_windowed_graph", "torch_windowed_graph",
                 "ort_streaming_step", "ort_windowed_step")
        per[str(b)] = {key: round(row[key] / b, 2) for key in order}

    speed = {b: p["torch_streaming_graph"] / p["ort_streaming_graph"] for b, p in per.items()}
    speed_w = {b: p["torch_windowed_graph"] / p["ort_streaming_graph"] for b, p in per.items()}
    at32 = per[str(BOARDS[-1])]["ort_streaming_step"]
    return {
        "model": spec.version, "form": spec.form, "hidden_size": spec.hidden_size, "num_layers": spec.num_layers,
        "window": WINDOW, "threads": 1, "torch_max_abs_diff": diff,
        "us_per_sample": per,
        "speedup_vs_torch_streaming": {b: round(v, 2) for b, v in speed.items()},
        "speedup_vs_torch_windowed": {b: round(v, 2) for b, v in speed_w.items()},
        "speedup_min": round(min(speed.values()), 2),
        "step_us_per_board_at_32": at32,
        "goal_speedup": GOAL_SPEEDUP, "goal_us_at_32": GOAL_US_AT_32,
        "goal_met": bool(min(speed.values()) >= GOAL_SPEEDUP and at32 <= GOAL_US_AT_32),
    }


def table(r: dict) -> list[tuple[str, str, str, str]]:
    """(measure, firedamp, reference, goal) rows."""
    rows = []
    for b in (str(n) for n in BOARDS):
        p = r["us_per_sample"][b]
        rows.append((f"scoring µs/sample/board, {b} board(s): ORT streaming graph | edge step",
                     f"{p['ort_streaming_graph']:.2f} | {p['ort_streaming_step']:.2f}",
                     f"torch eager streaming {p['torch_streaming_graph']:.2f} (x{r['speedup_vs_torch_streaming'][b]:.1f}); "
                     f"windowed W={r['window']}: ORT {p['ort_windowed_graph']:.2f}, "
                     f"torch {p['torch_windowed_graph']:.2f} (x{r['speedup_vs_torch_windowed'][b]:.0f})", ""))
    rows.append(("scoring goal: ORT ≥ 5× cheaper than torch eager (same form, worst batch); edge step at 32",
                 f"x{r['speedup_min']:.1f}; {r['step_us_per_board_at_32']:.2f} µs",
                 f"same weights (max diff {r['torch_max_abs_diff']:.1e})",
                 f"≥ x{r['goal_speedup']:g}; ≤ {r['goal_us_at_32']:g} µs " + ("met" if r["goal_met"] else "NOT met")))
    return rows
