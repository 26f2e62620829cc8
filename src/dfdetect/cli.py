"""The ``dfdetect`` console script (``[project.scripts]`` in pyproject.toml).

    dfdetect predict PATH... [--models models/] [--out DIR] [--detectors a,b]
    dfdetect profile full [--params params.yaml]
    dfdetect repro [STAGE...] [--jobs N]

``predict`` scores video files or folders with every trained detector of ``--models`` (or
those of ``--detectors``), with the DAG's own preprocessing and the params of
``--params`` (default: ``params.yaml`` next to the models folder); see
:mod:`dfdetect.predict.run`. Exit status 0 when at least one video was scored, 1 when none
was, 2 on a bad argument or when no detector can be used.

``repro`` is ``dvc repro`` with independent stages run side by side, at most ``--jobs`` at a
time (:mod:`dfdetect.repro`); exit status 1 when a stage failed, 2 on a bad argument.

``profile full`` prints the full-size params profile as ``dvc exp run -S`` flags
(:mod:`dfdetect.profiles`): ``dvc exp run $(dfdetect profile full) -S ingest.layout=ffpp ...``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _predict(args: argparse.Namespace) -> int:
    from .config import load_params  # noqa: PLC0415
    from .predict import predict  # noqa: PLC0415

    models = Path(args.models)
    if not models.is_dir():
        print(f"dfdetect predict: models folder {models} not found", file=sys.stderr)
        return 2
    params_path = Path(args.params) if args.params else models.parent / "params.yaml"
    if not params_path.is_file():   # the DAG's params decide the features: never guess them
        print(f"dfdetect predict: params file {params_path} not found (give --params)", file=sys.stderr)
        return 2
    params = load_params(params_path)
    names = [n.strip() for n in args.detectors.split(",") if n.strip()] if args.detectors else None
    try:
        result = predict(args.paths, models=models, out=args.out, detectors=names, params=params,
                         metrics_dir=args.metrics, dag_root=args.dag_root, chunk_size=args.chunk_size,
                         executor=args.executor, workers=args.workers, progress=not args.no_progress,
                         fusion=not args.no_fusion)
    except ValueError as err:
        print(f"dfdetect predict: {err}", file=sys.stderr)
        return 2
    print(f"{result.videos} videos, {result.scored} scored, {result.failed} failed, "
          f"{result.videos_per_s:.2f} videos/s; report: {result.html}")
    return 0 if result.scored else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfdetect", description="dfdetect command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="score new videos with the trained detectors",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="video files or folders (searched recursively)")
    p.add_argument("--models", default="models", help="trained models folder (models/<detector>/config.json)")
    p.add_argument("--out", default="predictions", help="output folder (JSON, PNG per video, index.html)")
    p.add_argument("--detectors", default="", help="comma-separated detectors (default: every trained one)")
    p.add_argument("--params", default="", help="params.yaml (default: next to the models folder)")
    p.add_argument("--metrics", default=None, help="evaluate's metrics folder, for the thresholds "
                   "(default: metrics/ next to the models folder)")
    p.add_argument("--dag-root", default=None, help="training DAG root, for the fusion's val split "
                   "(default: the models folder's parent)")
    p.add_argument("--chunk-size", type=int, default=16, help="videos preprocessed and scored together")
    p.add_argument("--executor", default=None, help="serial | process (default: params executor)")
    p.add_argument("--workers", type=int, default=None, help="worker processes")
    p.add_argument("--no-fusion", action="store_true", help="skip the audio-video fusion")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_predict)
    from . import profiles  # noqa: PLC0415  (yaml and config only)

    q = sub.add_parser("profile", help="print a params profile as dvc exp run -S flags",
                       description=profiles.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("profile", choices=profiles.PROFILES)
    q.add_argument("--params", default="params.yaml", help="the params file the flags apply to")
    q.set_defaults(func=lambda args: profiles.print_flags(args.profile, args.params))
    from . import repro  # noqa: PLC0415  (stdlib only until it runs)

    r = sub.add_parser("repro", help="dvc repro with independent stages run side by side",
                       description=repro.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("targets", nargs="*", help="stages to bring up to date with their upstream (default: all)")
    r.add_argument("-j", "--jobs", type=int, default=None,
                   help="stages at a time (default: the cores, at most 4)")
    r.add_argument("--cwd", default=".", help="the DVC project (default: here)")
    r.add_argument("--logs", default="", help="folder of the per-stage logs (default: .dvc/tmp/repro-logs)")
    r.set_defaults(func=repro.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("DFDETECT_LOGLEVEL", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
