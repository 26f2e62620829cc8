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
plots). Metric definitions: src/dfdetect/metrics.py. Rows whose cached inputs hold NaN/inf are
not scored: they are listed in data/failures/evaluate/<detector>.csv (always written) and counted
per split in the metrics JSON (``unscored``: frames, and videos left with no scored row). A model
file that cannot be loaded stops the stage with one line (file: reason) and exit status 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from dfdetect.config import StageCLI, unknown_key_error  # noqa: E402
from dfdetect.data.manifest import read_manifest  # noqa: E402
from dfdetect.detectors.base import DetectorData, ModelLoadError, get, registry  # noqa: E402
from dfdetect.detectors.evaluation import NothingScoredError, evaluate_detector  # noqa: E402
from dfdetect.store import write_csv_atomic, write_json_atomic  # noqa: E402

log = logging.getLogger("dfdetect.evaluate")
SET_SCORE_COLUMNS = ("label", "identity", "method", "quality")


def main(argv=None) -> int:
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
    cli.add("--set", default=None, help="score test set NAME (params test_sets) from data/sets/NAME/ "
            "into data/set_scores/NAME/ and metrics/sets/NAME/ (test split only)")
    cli.add("--failures", default=None,
            help="failures CSV (default: data/failures/evaluate/<detector>.csv)")
    cfg, args = cli.parse(argv)
    given_thresholds = None
    name = args.detector
    if name not in registry():
        cli.fail(unknown_key_error("models", name, None, registry(), what="detector"))
    cls = get(name)
    manifest_path = Path(args.manifest) if args.manifest else common.MANIFESTS[cls.manifest]
    sources = {n: common.SOURCES[n] for n in cls.inputs if n in common.SOURCES}
    if args.set:
        if cls.manifest != "video":
            print(f"evaluate: {name} scores {cls.manifest} datasets; test sets are video datasets",
                  file=sys.stderr)
            return 2
        paths = common.set_paths(args.set)
        manifest_path = Path(args.manifest) if args.manifest else paths["manifest"]
        sources.update({n: paths[n] for n in cls.inputs if n in paths})
        args.scores_dir, args.metrics_dir, args.splits = paths["scores"], paths["metrics"], "test"
        args.failures = args.failures or str(paths["failures"] / "evaluate" / f"{name}.csv")
        own = Path(common.METRICS) / f"{name}.json"   # the in-dataset result: its val thresholds
        try:
            given_thresholds = json.loads(own.read_text())["thresholds"]
        except (OSError, ValueError, KeyError) as err:
            print(f"evaluate {name} --set {args.set}: no thresholds in {own} (run evaluate@{name} "
                  f"first): {type(err).__name__}: {err}", file=sys.stderr)
            return 2
    for spec in args.source:
        key, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--source expects name=path, got {spec!r}")
        sources[key] = Path(path)
    missing = [n for n in cls.inputs if n not in sources]
    if missing:
        raise SystemExit(f"no path for detector inputs {missing}; give --source name=path")
    try:
        det = cls.load(Path(args.models_dir) / name)
    except ModelLoadError as err:
        print(f"evaluate {name}: cannot load the model: {err}", file=sys.stderr)
        sys.exit(2)
    data = DetectorData(read_manifest(manifest_path), sources=sources, seed=int(cfg.get("seed", 0)))
    keys = ("aggregate", "far_points", "recall_for_logwp", "logwp_alpha", "tauc_steps", "threshold",
            "roc_max_points", "threshold_from", "logwp_recalls", "bootstrap", "ci_level")
    fail_path = Path(args.failures) if args.failures else common.FAILURES / "evaluate" / f"{name}.csv"
    try:
        scores, result, roc = evaluate_detector(
            det, data, splits=[s for s in args.splits.split(",") if s], seed=int(cfg.get("seed", 0)),
            thresholds=given_thresholds, **{k: cfg[k] for k in keys if k in cfg})
    except NothingScoredError as err:
        data.checks.failures(f"evaluate@{name}").write(fail_path)
        print(f"{err} -> {fail_path}", file=sys.stderr)
        sys.exit(2)
    data.checks.failures(f"evaluate@{name}").write(fail_path)
    if args.set:   # the set's labels beside its scores: the report pools sets from these alone
        keep = [c for c in SET_SCORE_COLUMNS if c in data.manifest.columns]
        scores = scores.merge(data.manifest[["video_id", *keep]], on="video_id", how="left")
    write_csv_atomic(Path(args.scores_dir) / f"{name}.csv", scores)
    write_json_atomic(Path(args.metrics_dir) / f"{name}.json", result)
    write_csv_atomic(Path(args.metrics_dir) / "roc" / f"{name}.csv", roc)
    for level, m in result["test"].items():
        if level in ("frame", "video"):
            log.info("%s %s-level test: AUC %s, EER %s, n=%d", name, level, m.get("auc"), m.get("eer"), m["n"])
    for split in args.splits.split(","):
        un = result.get(split, {}).get("unscored") or {}
        if un.get("frames"):
            log.warning("%s %s: %d rows unscored for non-finite inputs (%d videos left unscored) -> %s",
                        name, split, un["frames"], un["videos"], fail_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
