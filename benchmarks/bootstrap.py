"""Identity-grouped bootstrap intervals (goal: 1,000 draws on 10,000 videos well under 1 s).

    python benchmarks/bootstrap.py [--videos 10000] [--identities 2000] [--draws 1000]
                                   [--frames 8] [--naive-draws 50] [--repeat 3]

Times ``dfdetect.metrics.bootstrap_ci`` (weights per draw, AUC from rank sums, EER from the
weighted ROC, all draws of a block in one numpy pass) for AUC and EER at video level and at
frame level (``--frames`` rows per video, identities resampled with all their frames), and, in
the same run, the naive loop it replaces: per draw, build the resampled rows (np.repeat) and call
scikit-learn's roc_auc_score / ``metrics.eer``. The naive loop runs ``--naive-draws`` draws and
is scaled to ``--draws``; the vectorised timing is the best of ``--repeat`` runs (the
machine may be shared). Prints wall seconds (and the process's CPU seconds, what an idle core would need), the ratio naive / vectorised, that both give the same
intervals on a shared set of draws, and the load average (the machine may be shared: compare
ratios, not absolutes).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

from sklearn.metrics import roc_auc_score  # noqa: E402

from dfdetect import metrics as M  # noqa: E402


def data(videos: int, identities: int, frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ident = rng.integers(0, identities, videos)
    y = rng.integers(0, 2, videos)
    s = rng.normal(size=videos) + 0.3 * rng.normal(size=identities)[ident] + y
    if frames > 1:
        ident, y = np.repeat(ident, frames), np.repeat(y, frames)
        s = np.repeat(s, frames) + 0.2 * rng.normal(size=s.size * frames)
    return y, s, ident


def naive(y, s, ident, metric, draws, seed):
    """Per draw: resample identities, gather their rows, compute the metric on the copy."""
    fn = {"auc": roc_auc_score, "eer": M.eer}[metric]
    groups, codes = np.unique(ident, return_inverse=True)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        counts = np.bincount(rng.integers(0, groups.size, groups.size), minlength=groups.size)
        w = counts[codes]
        yy, ss = np.repeat(y, w), np.repeat(s, w)
        out.append(fn(yy, ss) if 0 < yy.sum() < yy.size else np.nan)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=10000)
    ap.add_argument("--identities", type=int, default=2000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--naive-draws", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for level, frames in (("video", 1), ("frame", args.frames)):
        y, s, ident = data(args.videos, args.identities, frames)
        for metric in ("auc", "eer"):
            fast = cpu = math.inf
            for _ in range(max(1, args.repeat)):
                t0, c0 = time.perf_counter(), time.process_time()
                r = M.bootstrap_ci(y, s, ident, metric, args.draws, seed=1)
                fast = min(fast, time.perf_counter() - t0)
                cpu = min(cpu, time.process_time() - c0)
            t0 = time.perf_counter()
            naive(y, s, ident, metric, args.naive_draws, seed=2)
            slow = (time.perf_counter() - t0) * args.draws / args.naive_draws
            print(f"{level:5s} {metric}: {y.size:7d} rows, {args.draws} draws: vectorised {fast:.3f} s "
                  f"(CPU {cpu:.3f} s), "
                  f"naive loop {slow:.2f} s (from {args.naive_draws} draws), ratio {slow / fast:.1f}x; "
                  f"{r['point']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]")
    # same draws, same values: the vectorised weights against the naive per-draw copies
    y, s, ident = data(2000, 300, 1, seed=3)
    rng = np.random.default_rng(4)
    groups, codes = np.unique(ident, return_inverse=True)
    counts = np.stack([np.bincount(rng.integers(0, groups.size, groups.size), minlength=groups.size)
                       for _ in range(20)])
    for metric, fn, ref in (("auc", M.weighted_auc, roc_auc_score), ("eer", M.weighted_eer, M.eer)):
        vec = fn(y, s, counts[:, codes])
        loop = [ref(np.repeat(y, c[codes]), np.repeat(s, c[codes])) for c in counts]
        print(f"{metric}: max |vectorised - naive| over 20 shared draws = {np.max(np.abs(vec - loop)):.2e}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
