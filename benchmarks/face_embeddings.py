"""Cost of the face_embeddings stage (metric_learning.txt): seconds per 1,000 faces on 2 cores.

    python benchmarks/face_embeddings.py [--faces data/faces/shard-0.h5] [--videos 12] [--per-video 8]

Faces: a faces shard of the DAG (``--faces``, e.g. the demo's ``data/faces/shard-0.h5``), or, by
default, scikit-image's astronaut aligned at 224 px / margin 0.3 (the align_faces defaults),
shifted by a pixel from face to face, ``--videos`` x ``--per-video`` faces. Runs the stage body
(:func:`dfdetect.faceid.embed.embed_shard`, dlib descriptors) side by side in one run with the
serial executor (one process) and the process executor with 2 workers, and prints wall and CPU
seconds per 1,000 faces of each (worker start-up included), their ratio, and the machine's load
average (the machine may be shared: compare the ratio and the CPU seconds, not wall times).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(before: dict | None = None):
    """CPU seconds (user + system) of this process and its live worker processes (loky keeps
    its workers alive after a map); with ``before``, the seconds spent since that snapshot."""
    import psutil

    procs = [psutil.Process()] + psutil.Process().children(recursive=True)
    now = {}
    for p in procs:
        try:
            t = p.cpu_times()
            now[p.pid] = t.user + t.system
        except psutil.Error:
            continue
    if before is None:
        return now
    return sum(v - before.get(pid, 0.0) for pid, v in now.items())


def astronaut_shard(path: Path, videos: int, per_video: int) -> int:
    import dlib  # noqa: F401
    from skimage import data

    from dfdetect.faces.align import align_face
    from dfdetect.faces.models import dlib_hog_detector, dlib_shape_predictor
    from dfdetect.store import ShardWriter

    img = np.ascontiguousarray(data.astronaut())
    det = dlib_hog_detector()(img, 1)[0]
    lm = np.array([[p.x, p.y] for p in dlib_shape_predictor()(img, det).parts()], np.float64)
    with ShardWriter(path, stage="align_faces", params={"face_size": 224, "margin": 0.3}) as w:
        for v in range(videos):
            faces, lms = [], []
            for k in range(per_video):
                shifted = lm + np.array([(v + k) % 5 - 2, (v * k) % 3 - 1], np.float64)
                faces.append(align_face(img, shifted, 224, 0.3)[0])
                lms.append(shifted.astype(np.float32))
            w.add_video(f"bench/{v:03d}.mp4", np.arange(per_video), face=np.stack(faces), landmarks=np.stack(lms))
    return videos * per_video


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", default="", help="a faces shard (default: the astronaut, synthetic)")
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--per-video", type=int, default=8)
    args = ap.parse_args()

    from dfdetect.faceid.embed import embed_shard
    from dfdetect.store import ShardReader

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.faces:
            faces = Path(args.faces)
            with ShardReader(faces) as r:
                n = int(len(r.index()))
        else:
            faces = tmp / "faces.h5"
            n = astronaut_shard(faces, args.videos, args.per_video)
        print(f"{n} faces ({faces}); load average before: {load()}")
        results = {}
        for label, executor, workers in (("serial, 1 process", "serial", 1), ("process, 2 workers", "process", 2)):
            t0 = time.perf_counter()
            before = cpu_seconds()
            counts = embed_shard(faces, tmp / f"out-{executor}.h5", {"embedder": "dlib"}, executor=executor,
                                 workers=workers, progress=False)
            wall = time.perf_counter() - t0
            cpu = cpu_seconds(before)
            assert counts["faces"] == n, counts
            results[label] = wall
            print(f"{label:20s}: {wall:7.1f} s wall for {n} faces = {1000 * wall / n:7.1f} s per 1,000 faces "
                  f"(CPU, this process + workers: {1000 * cpu / n:.1f} s per 1,000 faces)")
        a, b = results.values()
        print(f"ratio serial / 2 workers: {a / b:.2f}x; load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
