"""Train one registered detector on the manifest's train split (val for model selection).

    python stages/train.py --detector efficientnet_b0 [--epochs 5 --image_size 224 ...]

Reads the params section ``models.<detector>`` (every key is also a flag) and ``seed``; opens the
cached inputs the detector declares (``faces``, ``hsi``, ...) at their DAG paths (or
``--source name=path``); logs per-epoch training curves with DVCLive to
``metrics/train/<detector>``; writes the fitted detector to ``models/<detector>/`` atomically
(written to a temporary directory, then renamed into place). Cached rows with NaN/inf inputs
are left out of the fit and listed in ``data/failures/train/<detector>.csv`` (always written);
a train split of mostly such rows, or a model file that cannot be loaded (DADA branches,
``pretrained: <path>``), stops the stage with one line naming the cause and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.store import atomic_dir  # noqa: E402


def _detector_name(argv: list[str] | None) -> str:
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--detector")
    known, _ = probe.parse_known_args(argv)
    return known.detector or ""


def _sources(specs: list[str], inputs: tuple[str, ...]) -> dict[str, Path]:
    sources = {name: common.SOURCES[name] for name in inputs if name in common.SOURCES}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--source expects name=path, got {spec!r}")
        sources[name] = Path(path)
    missing = [n for n in inputs if n not in sources]
    if missing:
        raise SystemExit(f"no path for detector inputs {missing}; give --source name=path")
    return sources


def main(argv: list[str] | None = None) -> dict:
    common.setup()
    name = _detector_name(argv)
    section = [f"models.{name}"] if name else []
    cli = StageCLI("train", __doc__, sections=section)
    cli.add("--detector", required=True, help="registered detector name (params: models.<name>)")
    cli.add("--manifest", default=None, help="manifest CSV (default: the detector's DAG manifest)")
    cli.add("--source", action="append", default=[], metavar="NAME=PATH",
            help="override the path of a detector input (repeatable)")
    cli.add("--out", default=None, help="model directory (default: models/<detector>)")
    cli.add("--live-dir", default=None, help="DVCLive directory (default: metrics/train/<detector>)")
    cli.add("--no-live", action="store_true", help="do not log with DVCLive")
    cli.add("--failures", default=None,
            help="failures CSV (default: data/failures/train/<detector>.csv)")
    cfg, args = cli.parse(argv)

    from dfdetect.data.manifest import read_manifest  # noqa: PLC0415
    from dfdetect.detectors.base import (DetectorData, ModelLoadError,  # noqa: PLC0415
                                         NonFiniteInputError, create, get)

    cls = get(args.detector)
    seed = int(cfg.pop("seed", 0))
    cfg.pop("sharding", None)
    manifest_path = Path(args.manifest) if args.manifest else common.MANIFESTS[cls.manifest]
    device = str(cfg.get("device", "cpu"))
    if device == "auto":
        from dfdetect.nn.train import resolve_device  # noqa: PLC0415

        device = resolve_device(device)
    data = DetectorData(read_manifest(manifest_path), sources=_sources(args.source, tuple(cls.inputs) + tuple(cls.extra_sources)),
                        seed=seed, device=device)
    detector = create(args.detector, cfg)

    out = Path(args.out) if args.out else common.MODELS / args.detector
    live = None
    if not args.no_live:
        from dvclive import Live  # noqa: PLC0415

        live_dir = Path(args.live_dir) if args.live_dir else common.METRICS / "train" / args.detector
        live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
    fail_path = Path(args.failures) if args.failures else common.FAILURES / "train" / f"{args.detector}.csv"
    t0 = time.perf_counter()
    try:
        summary = detector.fit(data, logger=live)
    except (NonFiniteInputError, ModelLoadError) as err:
        data.checks.failures(f"train@{args.detector}").write(fail_path)
        print(f"train {args.detector}: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        if live is not None:
            live.end()
    elapsed = time.perf_counter() - t0
    data.checks.failures(f"train@{args.detector}").write(fail_path)
    if len(data.checks):
        print(f"train {args.detector}: {len(data.checks)} cached rows with non-finite inputs left out "
              f"-> {fail_path}", file=sys.stderr)

    with atomic_dir(out) as tmp:
        detector.save(tmp)

    epochs = summary.get("epoch_seconds", []) if isinstance(summary, dict) else []
    for i, s in enumerate(epochs):
        print(f"{args.detector}: epoch {i + 1}: {s:.1f} s", file=sys.stderr)
    print(json.dumps({"detector": args.detector, "out": str(out), "seconds": round(elapsed, 2),
                      "epoch_seconds": [round(s, 2) for s in epochs],
                      "init": detector.init_info().get("init", ""),
                      "parameters": detector.num_parameters().get("total")}), file=sys.stderr)
    return summary if isinstance(summary, dict) else {}


if __name__ == "__main__":
    main()
