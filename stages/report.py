"""Leaderboard of every evaluated detector, combined ROC plot and failures summary.

Reads every <metrics-dir>/*.json that has a "test" entry (written by stages/evaluate.py; other
JSON files such as metrics/transcribe.json are ignored). Writes <out>.csv and <out>.md (one
row per detector and level, video then frame: AUC and EER with their bootstrap intervals,
accuracy, precision, recall, F1, TPR/TNR at the val threshold, pAUC/tAUC/TAR at each FAR,
log(wP), counts of items, videos and identities, init and parameter count, then one column
group per extra test set and pooled; sorted by video-level AUC; the .md adds a cross-dataset
table and the per-method / per-quality breakdowns), <plots-dir>/roc.png (video-level test ROC
of every detector, linear and log-FAR axes) and <failures-out> (every data/failures/**/*.csv
in one table; rows per stage are printed).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from dfdetect.config import StageCLI, load_params  # noqa: E402
from dfdetect.report import (breakdown_table, collect_failures, failure_counts,  # noqa: E402
                             attach_sets, leaderboard, load_metrics, load_rocs, plot_roc, to_markdown)
from dfdetect.store import write_csv_atomic, write_text_atomic  # noqa: E402

log = logging.getLogger("dfdetect.report")


def main(argv=None) -> None:
    common.setup()
    cli = StageCLI("report", __doc__, sections=["report", "evaluate"])
    cli.add("--metrics-dir", default=str(common.METRICS))
    cli.add("--out", default=str(common.METRICS / "leaderboard"), help="leaderboard path without suffix")
    cli.add("--roc-dir", default=str(common.METRICS / "roc"))
    cli.add("--plots-dir", default=str(common.METRICS / "plots"))
    cli.add("--failures-dir", default=str(common.FAILURES))
    cli.add("--failures-out", default=str(common.METRICS / "failures.csv"))
    cli.add("--split", default="test")
    cli.add("--sets-dir", default=str(common.SET_METRICS), help="metrics of the test sets (one folder each)")
    cli.add("--set-scores-dir", default=str(common.SET_SCORES), help="scores of the test sets")
    cfg, args = cli.parse(argv)
    docs = load_metrics(args.metrics_dir, args.split)
    keys = ("aggregate", "far_points", "recall_for_logwp", "logwp_alpha", "tauc_steps", "bootstrap",
            "ci_level")
    kw = {k: cfg[k] for k in keys if k in cfg}
    if "logwp_alpha" in kw:
        kw["alpha"] = kw.pop("logwp_alpha")
    wanted = list(load_params(args.params).get("test_sets") or {})   # not stale folders of removed sets
    sets = attach_sets(docs, args.sets_dir, args.set_scores_dir, names=wanted,
                       seed=int(cfg.get("seed", 0)), **kw)
    board = leaderboard(docs, args.split)
    write_csv_atomic(f"{args.out}.csv", board)
    write_text_atomic(f"{args.out}.md", to_markdown(board, f"Leaderboard ({args.split} split)",
                                                    breakdown_table(docs, args.split)))
    aucs = {d: float(r["auc"]) for d, r in board[board["level"] == "video"].set_index("detector").iterrows()}
    plot_roc(load_rocs(args.roc_dir, list(board["detector"].unique())), Path(args.plots_dir) / "roc.png", aucs)
    failures = collect_failures(args.failures_dir)
    write_csv_atomic(args.failures_out, failures)
    print(f"leaderboard: {len(docs)} detectors, {len(sets)} test sets -> {args.out}.csv, {args.out}.md")
    counts = failure_counts(failures)
    print(f"failures: {len(failures)} rows -> {args.failures_out}")
    for stage, n in counts.items():
        print(f"  {stage}: {n}")


if __name__ == "__main__":
    main()
