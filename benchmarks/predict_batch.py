"""Batch `dfdetect predict`: videos/s and peak memory as the folder grows (issue 9).

Goal: a folder of 1,000 videos streams through predict in chunks (`--chunk-size`, 16) with
bounded memory: peak RSS at N videos within 1.1x of the peak at N/4 (the work per chunk is the
same; only the number of chunks grows), and the rate in videos/s reported.

What it does: copies one video (`--video`, default: the first video of `data/demo`) N times into
a temporary folder, then for each N of `--sizes` runs `python -m dfdetect.cli predict` in a fresh
process on that folder with the trained models of `--models` and prints wall time, videos/s and
the peak resident memory of the process and its workers (getrusage of the children), side by
side, with the ratios to the smallest size. Needs a trained DAG (`make demo`, or any project
root with models/, metrics/ and params.yaml: `--root`).

Run: `.venv/bin/python benchmarks/predict_batch.py [--sizes 16 64 256 1000] [--root .]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


WRAPPER = ("import resource, subprocess, sys\n"
           "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
           "sys.stderr.write(p.stderr)\n"
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
           "sys.exit(p.returncode)\n")


def run_once(root: Path, folder: Path, out: Path, chunk: int, extra: list[str]) -> dict:
    """One predict run in a fresh wrapper process, which reports the peak RSS (KiB) of the
    largest process below it (predict or one of its workers)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "dfdetect.cli", "predict", str(folder), "--models", str(root / "models"),
           "--out", str(out), "--chunk-size", str(chunk), "--no-progress", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], cwd=root, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"predict failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stderr.splitlines() if "videos/s" in ln][-1]
    return {"wall": wall, "peak_mb": int(proc.stdout.split()[-1]) / 1024, "line": line}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO), help="trained project root (models/, metrics/, params.yaml)")
    ap.add_argument("--video", default="", help="the video copied N times (default: first of data/demo)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--chunk-size", type=int, default=16)
    ap.add_argument("--detectors", default="", help="comma-separated (default: every trained one)")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    video = Path(args.video) if args.video else next(iter(sorted((root / "data" / "demo").rglob("*.mp4"))), None)
    if video is None or not video.is_file():
        raise SystemExit("no video: give --video or build the demo (make demo)")
    extra = ["--detectors", args.detectors] if args.detectors else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="dfdetect-bench-predict-") as tmp:
        for n in sorted(args.sizes):
            folder = Path(tmp) / f"videos-{n}"
            folder.mkdir()
            for i in range(n):
                shutil.copy(video, folder / f"{i:05d}{video.suffix}")
            r = run_once(root, folder, Path(tmp) / f"out-{n}", args.chunk_size, extra)
            rows.append((n, r))
            shutil.rmtree(folder)
            shutil.rmtree(Path(tmp) / f"out-{n}")
            print(f"N={n:5d}: {r['wall']:7.1f} s wall, {n / r['wall']:6.2f} videos/s (incl. start-up), "
                  f"peak RSS {r['peak_mb']:7.1f} MB"
                  f"\n         {r['line']}", flush=True)
    base_n, base = rows[0]
    for n, r in rows[1:]:
        print(f"N={n} vs N={base_n}: {n / base_n:.0f}x the videos, peak memory x{r['peak_mb'] / base['peak_mb']:.2f}, "
              f"videos/s x{(n / r['wall']) / (base_n / base['wall']):.2f}; marginal rate (start-up "
              f"excluded) {(n - base_n) / max(r['wall'] - base['wall'], 1e-9):.2f} videos/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
