"""Export a trained checkpoint to one sealed .onnx file (no external data, opset 17) with its ModelSpec.

`firedamp export --checkpoint build/train/model.pt --out model.onnx [--form windowed] [--int8]`.
The seal: metadata `content_sha256` is written as 64 '0', the file is hashed, and the hex is written into
the same place (same length), so models.runtime can verify it with hashlib alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import warnings
from pathlib import Path

from firedamp.errors import ModelError
from models.features import ZERO_DIGEST, ModelSpec

OPSET = 17


def seal(data: bytes) -> bytes:
    """Replace the single all-zero content_sha256 placeholder by the sha256 of the whole file."""
    marker = ZERO_DIGEST.encode("ascii")
    if data.count(marker) != 1:
        raise ModelError("export: the content_sha256 placeholder must occur exactly once")
    return data.replace(marker, hashlib.sha256(data).hexdigest().encode("ascii"))


def to_onnx_bytes(net, spec: ModelSpec) -> bytes:
    """Trace `net` (a models.network.FiredampNet) in spec.form and return the sealed ONNX bytes."""
    import onnx
    import torch

    from models.network import Windowed

    net = net.eval()
    f, layers, hidden = spec.n_features, spec.num_layers, spec.hidden_size
    x = torch.zeros(2, spec.window, f)
    buf = io.BytesIO()
    # the legacy (TorchScript) exporter: opset 17, needs only `onnx`; its deprecation and batch-size notes
    # do not apply (h0/c0 are inputs, batch is a dynamic axis; tests check parity at batch 1 and 2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.form == "streaming":
            h = torch.zeros(layers, 2, hidden)
            torch.onnx.export(
                net, (x, h, h.clone()), buf, dynamo=False, opset_version=OPSET,
                input_names=["x", "h0", "c0"], output_names=["pred", "forecast", "h1", "c1"],
                dynamic_axes={"x": {0: "batch"}, "h0": {1: "batch"}, "c0": {1: "batch"}, "pred": {0: "batch"},
                              "forecast": {0: "batch"}, "h1": {1: "batch"}, "c1": {1: "batch"}},
            )
        else:
            torch.onnx.export(
                Windowed(net), (x,), buf, dynamo=False, opset_version=OPSET,
                input_names=["x"], output_names=["pred", "forecast"],
                dynamic_axes={"x": {0: "batch"}, "pred": {0: "batch"}, "forecast": {0: "batch"}},
            )
    model = onnx.load_from_string(buf.getvalue())
    spec.content_sha256 = ZERO_DIGEST
    del model.metadata_props[:]
    for key, value in spec.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "firedamp"
    model.model_version = 1
    onnx.checker.check_model(model)
    return seal(model.SerializeToString())


def write_model(net, spec: ModelSpec, out: str | Path) -> Path:
    """Export and write atomically; returns the path."""
    data = to_onnx_bytes(net, spec)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a shipped model is world-readable
    os.replace(tmp, out)
    return out


def quantize_int8(src: str | Path, out: str | Path) -> Path:
    """Dynamic int8 quantisation of the weights (onnxruntime.quantization), resealed with the same spec."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.onnx"
        model = onnx.load(str(src))
        for p in model.metadata_props:
            if p.key == "content_sha256":
                p.value = ZERO_DIGEST
            if p.key == "version":
                p.value = p.value + "+int8"
        onnx.save(model, str(plain))
        q = Path(tmp) / "q.onnx"
        quantize_dynamic(str(plain), str(q), weight_type=QuantType.QInt8)
        model = onnx.load(str(q))
        del model.metadata_props[:]
        for key, value in _props(onnx.load(str(plain))).items():
            model.metadata_props.add(key=key, value=value)
        Path(out).write_bytes(seal(model.SerializeToString()))
    return Path(out)


def _props(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def load_checkpoint(path: str | Path):
    """-> (net, spec) from a checkpoint written by models.train."""
    import torch

    from models.network import FiredampNet

    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"cannot read checkpoint {path}: {exc}") from exc
    spec = ModelSpec.from_metadata(ck["spec"])
    net = FiredampNet(**ck["net_args"])
    net.load_state_dict(ck["state_dict"])
    return net.eval(), spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by `firedamp train` (model.pt)")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--form", choices=["streaming", "windowed"], default=None,
                        help="graph form (default: the one the checkpoint was calibrated for)")
    parser.add_argument("--window", type=int, default=64, help="samples per call for --form windowed (default 64)")
    parser.add_argument("--int8", action="store_true", help="also write <out>.int8.onnx (dynamic int8 weights)")


def run(args: argparse.Namespace) -> int:
    net, spec = load_checkpoint(args.checkpoint)
    if args.form and args.form != spec.form:
        spec.form = args.form
        spec.window = args.window if args.form == "windowed" else max(1, net.kernel)
        print("note: the threshold was calibrated for the other form; re-run `firedamp evaluate` before use")
    out = write_model(net, spec, args.out)
    print(f"wrote {out} ({out.stat().st_size} bytes, form {spec.form}, window {spec.window})")
    if args.int8:
        q = quantize_int8(out, Path(str(out)[:-5] + ".int8.onnx"))
        print(f"wrote {q} ({q.stat().st_size} bytes)")
    return 0
