"""`firedamp evaluate`: models.evaluate's command, plus `sim --as-edge`, which runs the edge's policy stage
(edge.advisory_eval; models never import edge, so that mode is dispatched from here)."""

from __future__ import annotations

import argparse
import json

from models import evaluate as _models_evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = _models_evaluate.__doc__  # the command's help is the models module's
    _models_evaluate.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.mode == "sim" and args.as_edge:
        from edge import advisory_eval
        from models.runtime import Model

        model = Model(args.model)
        seed0 = advisory_eval.FINAL_SEED0 if args.seed0 is None else args.seed0
        res = advisory_eval.evaluate_edge(model, seeds=args.seeds, seed0=seed0)
        print(json.dumps(res, indent=2) if args.json else advisory_eval.report(res))
        return 0
    return _models_evaluate.run(args)
