"""Score a trained detector on the test split (and val, for reference) and measure it.

Loads models/<detector>/ through the registry and scores the manifest's test split (and val
when present). Writes data/scores/<detector>.csv (video_id, frame_index, score, split;
frame_index -1 for video-level scores); metrics/<detector>.json (frame- and video-level
metrics per split: AUC and EER with 95 % identity-bootstrap intervals (evaluate.bootstrap draws,
seeded by params.yaml seed), pAUC, tAUC and TAR at each FAR, log(wP), accuracy, precision,
recall, F1, TPR/TNR at the threshold chosen on val (evaluate.threshold_from), per-method and
per-quality breakdowns, coverage; the detector's init and parameter counts; undefined values as
null; layout in metrics/README.md);
and metrics/roc/<detector>.csv (video-level test ROC points far, tar, threshold for dvc
plots). Metric definitions: src/dfdetect/metrics.py.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.data.manifest import read_manifest  # noqa: E402
from dfdetect.detectors.base import DetectorData, get  # noqa: E402
from dfdetect.detectors.evaluation import evaluate_detector  # noqa: E402
from dfdetect.store import write_csv_atomic, write_json_atomic  # noqa: E402

log = logging.getLogger("dfdetect.evaluate")


def main(argv=None) -> None:
    common.setup()
    cli = StageCLI("evaluate", __doc__)
    cli.add("--detector", required=True, help="registered detector name (models/<name>/)")
    cli.add("--models-dir", default=str(common.MODELS))
    cli.add("--scores-dir", default=str(common.SCORES))
    cli.add("--metrics-dir", default=str(common.METRICS))
    cli.add("--splits", default="test,val", help="splits to score; the first one is reported")
    cli.add("--manifest", default=None, help="manifest CSV (default: the detector's DAG manifest)")
    cli.add("--source", action="append", default=[], metavar="NAME=PATH",
            help="override the path of a detector input (repeatable)")
    cfg, args = cli.parse(argv)
    name = args.detector
    cls = get(name)
    manifest_path = Path(args.manifest) if args.manifest else common.MANIFESTS[cls.manifest]
    sources = {n: common.SOURCES[n] for n in cls.inputs if n in common.SOURCES}
    for spec in args.source:
        key, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--source expects name=path, got {spec!r}")
        sources[key] = Path(path)
    missing = [n for n in cls.inputs if n not in sources]
    if missing:
        raise SystemExit(f"no path for detector inputs {missing}; give --source name=path")
    det = cls.load(Path(args.models_dir) / name)
    data = DetectorData(read_manifest(manifest_path), sources=sources, seed=int(cfg.get("seed", 0)))
    keys = ("aggregate", "far_points", "recall_for_logwp", "logwp_alpha", "tauc_steps", "threshold",
            "roc_max_points", "threshold_from", "logwp_recalls", "bootstrap", "ci_level")
    scores, result, roc = evaluate_detector(
        det, data, splits=[s for s in args.splits.split(",") if s], seed=int(cfg.get("seed", 0)),
        **{k: cfg[k] for k in keys if k in cfg})
    write_csv_atomic(Path(args.scores_dir) / f"{name}.csv", scores)
    write_json_atomic(Path(args.metrics_dir) / f"{name}.json", result)
    write_csv_atomic(Path(args.metrics_dir) / "roc" / f"{name}.csv", roc)
    for level, m in result["test"].items():
        if level in ("frame", "video"):
            log.info("%s %s-level test: AUC %s, EER %s, n=%d", name, level, m.get("auc"), m.get("eer"), m["n"])


if __name__ == "__main__":
    main()
