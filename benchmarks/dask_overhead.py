"""Per-video overhead of the Dask backend vs local processes, same 2 workers, side by side.

    python benchmarks/dask_overhead.py [--videos 24] [--reps 3] [--workers 2]

One shard of ``--videos`` short H.264 clips of a real face (scikit-image's astronaut drifting over
a background, 256x256, 25 frames) goes through ``sample_frames`` (8 frames) and ``align_faces``
(HOG) three ways, interleaved, best of ``--reps``:

1. ``executor.backend: process`` (joblib loky, ``--workers`` processes, warm);
2. ``executor.backend: dask`` with ``executor.address`` = a ``dask scheduler`` and ``--workers``
   ``dask worker`` processes (1 thread each) started on 127.0.0.1 before timing (a running cluster);
3. ``executor.backend: dask`` with an empty address: the stage starts and closes a LocalCluster
   (start-up included: what one stage run pays).

Printed: seconds per video of each, and the ratio dask / process (goal: <= 1.15x for 2.). The
shards of every run are checked byte-identical to the process backend's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dfdetect.faces.stage import run_align_faces
from dfdetect.servers import DaskCluster
from dfdetect.video.sample import sample_shard

FRAMES = {"strategy": "uniform", "num_frames": 8, "every_k": 10, "fps": 1.0, "max_side": 0,
          "decoder": "pyav", "threads": 0, "compression": {"codec": "gzip", "level": 4, "shuffle": True}}
ALIGN = {"detector": "hog", "fallback": "", "detect_max_side": 640, "coarse_side": 0, "upsample": 1,
         "face_size": 224, "margin": 0.3, "defakehop_size": 128, "patch_size": 32,
         "compression": {"codec": "zstd", "level": 3}}


def make_videos(root: Path, n: int) -> Path:
    import cv2
    from skimage import data

    face = cv2.resize(np.ascontiguousarray(data.astronaut()[40:260, 120:330]), (168, 176))
    rows = []
    for k in range(n):
        frames = []
        for i in range(25):
            img = np.full((256, 256, 3), 60 + 7 * (k % 20), np.uint8)
            y, x = 30 + (i + k) % 20, 20 + (2 * i + k) % 40
            img[y:y + 176, x:x + 168] = face if k % 2 else face[:, ::-1]
            frames.append(img)
        path = root / "videos" / f"clip{k:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                        "256x256", "-r", "25", "-i", "-", "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "1", str(path)],
                       input=b"".join(f.tobytes() for f in frames), check=True)
        rows.append((f"videos/clip{k:03d}.mp4", "real", str(path)))
    manifest = root / "shard-0.csv"
    pd.DataFrame(rows, columns=["video_id", "label", "path"]).to_csv(manifest, index=False)
    return manifest


def one_run(manifest: Path, out: Path, **executor) -> tuple[float, str]:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sample_shard(manifest, out / "frames.h5", out / "ff.csv", FRAMES, progress=False, **executor)
    run_align_faces(out / "frames.h5", out / "faces.h5", out / "fa.csv", ALIGN, progress=False, **executor)
    elapsed = time.perf_counter() - t0
    digest = hashlib.sha256((out / "frames.h5").read_bytes() + (out / "faces.h5").read_bytes()).hexdigest()
    return elapsed, digest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dfdetect-dask-bench-") as tmp:
        root = Path(tmp)
        manifest = make_videos(root, args.videos)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
        with DaskCluster(root / "cluster", n_workers=args.workers, env=env) as cluster:
            runs = {"process": {"executor": "process", "workers": args.workers},
                    "dask (scheduler)": {"executor": "dask", "workers": args.workers,
                                         "address": cluster.address},
                    "dask (LocalCluster per stage)": {"executor": "dask", "workers": args.workers,
                                                      "address": ""}}
            for name, kw in runs.items():          # warm-up: loky pool, worker imports, dlib models
                one_run(manifest, root / "warm" / name.split()[0], **kw)
            times: dict[str, list[float]] = {name: [] for name in runs}
            digests: dict[str, set[str]] = {name: set() for name in runs}
            for rep in range(args.reps):
                for name, kw in runs.items():
                    t, d = one_run(manifest, root / f"r{rep}" / name.split()[0], **kw)
                    times[name].append(t)
                    digests[name].add(d)
        ref = digests["process"]
        print(f"{args.videos} videos (sample_frames 8 frames + align_faces HOG), {args.workers} workers, "
              f"best of {args.reps}; load average {os.getloadavg()[0]:.2f}")
        base = min(times["process"]) / args.videos
        for name in runs:
            per = min(times[name]) / args.videos
            same = "byte-identical" if digests[name] == ref and len(ref) == 1 else "DIFFERENT BYTES"
            print(f"  {name:32s} {per * 1000:8.1f} ms/video  {per / base:5.2f}x process  ({same})")
        ratio = min(times["dask (scheduler)"]) / min(times["process"])
        print(f"dask (running scheduler) / process: {ratio:.2f}x  goal <= 1.15x: "
              f"{'met' if ratio <= 1.15 else 'not met'}")
        ok = all(digests[name] == ref for name in runs) and len(ref) == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
