"""Saab / PixelHop++ benchmark (issue 3, section 5). Run by hand:

    DFDETECT_MEDIA=/work/shared/media python benchmarks/saab.py [--authors DIR] [--stage-patches 100000]

1. Builds N real-face 32x32x3 patches (default 10,000) from the real clips of ``DFDETECT_MEDIA``:
   frames are decoded, dlib finds the face and its 68 landmarks on every ``--detect-every``-th
   frame, and every frame is aligned with the DefakeHop alignment of ``dfdetect.faces`` using the
   nearest detection's landmarks; the three patches (left eye, right eye, mouth) of each frame
   are all used. Cached under ``--cache`` (outside the repository). Without media, crops of
   skimage's photographs are used and the output says so.
2. Fit + transform of one PixelHop++ (3 hops, 3x3, thresholds 0.01 / 0.001, 10 channels) on
   those patches, each measurement in a fresh subprocess that reports wall times and its peak
   resident memory (``ru_maxrss``), beside the same for the authors' published code when
   ``--authors`` points to a checkout of it (never part of this repository).
3. The ``saab_features`` stage on ``--stage-patches`` patches (frames x 3 regions) written as a
   2-shard face store, run as a subprocess with the stage's default params.

Prints the machine load (``uptime``) with the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


# ----------------------------------------------------------------------------- real patches
def media_patches(media: Path, n: int, detect_every: int, max_per_video: int) -> np.ndarray:
    import cv2

    from dfdetect.faces.align import defakehop_align
    from dfdetect.faces.landmarks import detect_landmarks

    videos = sorted(p for p in (media / "videos").rglob("*.mp4"))
    out: list[np.ndarray] = []
    total = 0
    for path in videos:
        cap = cv2.VideoCapture(str(path))
        lm = None
        i = used = 0
        while total < n and used < max_per_video:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if i % detect_every == 0:
                scale = min(1.0, 640 / max(rgb.shape[:2]))
                small = cv2.resize(rgb, None, fx=scale, fy=scale) if scale < 1 else rgb
                found = detect_landmarks(small, 1)
                lm = found[0][1] / scale if found else None
            i += 1
            if lm is None:
                continue
            _, patches, _ = defakehop_align(rgb, lm, 128, 32)
            out.append(np.asarray(patches, np.uint8))
            used += 1
            total += len(patches)
        cap.release()
        print(f"  {path.name}: {used} frames", file=sys.stderr)
        if total >= n:
            break
    if not out:
        raise SystemExit(f"no faces found in {media}/videos")
    allp = np.concatenate(out).reshape(-1, 32, 32, 3)
    if len(allp) < n:  # reuse with flips to reach n (recorded in the output)
        reps = int(np.ceil(n / len(allp)))
        allp = np.concatenate([allp if r % 2 == 0 else allp[:, :, ::-1] for r in range(reps)])
    return np.ascontiguousarray(allp[:n])


def skimage_patches(n: int, seed: int = 0) -> np.ndarray:
    from skimage import data

    rng = np.random.default_rng(seed)
    imgs = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    out = []
    for i in range(n):
        img = imgs[i % len(imgs)]
        y, x = rng.integers(0, img.shape[0] - 32), rng.integers(0, img.shape[1] - 32)
        out.append(img[y:y + 32, x:x + 32])
    return np.stack(out)


# ----------------------------------------------------------------------------- measurements
OURS = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from dfdetect.saab import PixelHop
    x = np.load(sys.argv[1])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter(); ph = PixelHop(seed=0).fit(x); t1 = time.perf_counter()
    outs = ph.transform(x); t2 = time.perf_counter()
    print(json.dumps({"fit_s": t1 - t0, "transform_s": t2 - t1,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "after_load_rss_mb": base / 1024,
                      "shapes": [list(o.shape) for o in outs], "params": ph.num_parameters()}))
""")

AUTHORS = textwrap.dedent("""
    import json, resource, sys, time, io, contextlib
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from multi_cwSaab import MultiChannelWiseSaab
    x = np.load(sys.argv[1])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m = MultiChannelWiseSaab(num_hop=3, kernel_sizes=[3, 3, 3], split_thr=0.01, keep_thr=0.001)
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter(); m.fit(x); t1 = time.perf_counter()
        outs = m.transform(x); t2 = time.perf_counter()
    print(json.dumps({"fit_s": t1 - t0, "transform_s": t2 - t1,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "after_load_rss_mb": base / 1024,
                      "shapes": [list(outs[k].shape) for k in sorted(outs)]}))
""")


def run_child(code: str, *args: str) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    res = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def stage_benchmark(patches: np.ndarray, n_patches: int, work: Path, seed: int = 0) -> dict:
    """The saab_features stage on n_patches / 3 frames (3 regions each), 8 frames per video."""
    import pandas as pd

    from dfdetect.store import ShardWriter, shard_of, shard_path

    n_frames = int(np.ceil(n_patches / 3))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(patches), size=(n_frames, 3))
    frames = patches[idx]                                               # (n, 3, 32, 32, 3)
    per_video = 8
    vids = [f"real/{i:06d}.mp4" for i in range(int(np.ceil(n_frames / per_video)))]
    faces = work / "faces"
    rows = []
    writers = {s: ShardWriter(shard_path(faces, s), stage="bench").__enter__() for s in (0, 1)}
    for i, vid in enumerate(vids):
        sl = frames[i * per_video:(i + 1) * per_video]
        writers[shard_of(vid, 2)].add_video(vid, np.arange(len(sl)), patches=sl)
        rows.append({"video_id": vid, "path": vid, "dataset": "bench", "label": "real",
                     "method": "", "quality": "", "split": ["train", "val", "test"][i % 3],
                     "identity": vid, "source_id": ""})
    for w in writers.values():
        w.__exit__(None, None, None)
    pd.DataFrame(rows).to_csv(work / "manifest.csv", index=False)
    cmd = [PY, str(REPO / "stages" / "saab_features.py"), "--params", str(REPO / "params.yaml"),
           "--faces", str(faces), "--manifest", str(work / "manifest.csv"),
           "--out", str(work / "saab"), "--models", str(work / "models"),
           "--failures", str(work / "failures.csv")]
    # a fresh wrapper process whose only children are the stage and its workers, so that its
    # RUSAGE_CHILDREN peak is the stage's largest process
    wrapper = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(json.dumps({'rc': r.returncode, 'wall_s': time.perf_counter() - t, "
               "'err': r.stderr[-3000:], "
               "'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")
    res = subprocess.run([PY, "-c", wrapper, *cmd], capture_output=True, text=True,
                         env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE", DFDETECT_LOGLEVEL="WARNING"))
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        raise RuntimeError(out["err"])
    size = sum(p.stat().st_size for p in (work / "saab").glob("*.h5"))
    return {"frames": n_frames, "patches": 3 * n_frames, "wall_s": out["wall_s"],
            "max_child_rss_mb": out["rss_mb"], "output_gb": size / 1e9,
            "stage_log": out["err"].strip().splitlines()[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="patches for the fit/transform benchmark")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "dfdetect-bench-saab"))
    ap.add_argument("--detect-every", type=int, default=10)
    ap.add_argument("--max-per-video", type=int, default=400)
    ap.add_argument("--authors", default=os.environ.get("DFDETECT_DEFAKEHOP_AUTHORS", ""),
                    help="folder with the authors' saab.py and multi_cwSaab.py (a checkout of "
                         "github.com/hongshuochen/DefakeHop; env DFDETECT_DEFAKEHOP_AUTHORS)")
    ap.add_argument("--stage-patches", type=int, default=100000, help="0 skips the stage run")
    args = ap.parse_args()

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    media = os.environ.get("DFDETECT_MEDIA")
    src = "skimage crops (DFDETECT_MEDIA unset)"
    path = cache / f"patches-{args.n}.npy"
    if media and Path(media).is_dir():
        src = f"real faces from {media}/videos"
        if not path.exists():
            print(f"extracting {args.n} real-face patches ...", file=sys.stderr)
            np.save(path, media_patches(Path(media), args.n, args.detect_every, args.max_per_video))
        patches = np.load(path)
    else:
        path = cache / f"skimage-{args.n}.npy"
        patches = skimage_patches(args.n)
        np.save(path, patches)
    print(f"patches: {patches.shape} {patches.dtype} ({src})")
    print(f"load before: {uptime()}")
    ours = run_child(OURS, str(path))
    if args.authors:
        # ours, theirs, ours again: the mean of our two runs brackets theirs in time, which
        # evens out load drift on a shared machine
        theirs = run_child(AUTHORS, str(path), args.authors)
        again = run_child(OURS, str(path))
        print(f"ours (first / second run): fit {ours['fit_s']:.2f} / {again['fit_s']:.2f} s, "
              f"transform {ours['transform_s']:.2f} / {again['transform_s']:.2f} s")
        for k in ("fit_s", "transform_s"):
            ours[k] = (ours[k] + again[k]) / 2
        ours["peak_rss_mb"] = max(ours["peak_rss_mb"], again["peak_rss_mb"])
    print(f"ours   : fit {ours['fit_s']:.2f} s, transform {ours['transform_s']:.2f} s, "
          f"total {ours['fit_s'] + ours['transform_s']:.2f} s, peak RSS {ours['peak_rss_mb']:.0f} MB "
          f"(after loading the patches {ours['after_load_rss_mb']:.0f} MB); shapes {ours['shapes']}; "
          f"kernel weights {ours['params']}")
    if args.authors:
        print(f"authors: fit {theirs['fit_s']:.2f} s, transform {theirs['transform_s']:.2f} s, "
              f"total {theirs['fit_s'] + theirs['transform_s']:.2f} s, peak RSS "
              f"{theirs['peak_rss_mb']:.0f} MB; shapes {theirs['shapes']}")
        tot_o = ours["fit_s"] + ours["transform_s"]
        tot_t = theirs["fit_s"] + theirs["transform_s"]
        print(f"ratio authors/ours: fit {theirs['fit_s'] / ours['fit_s']:.2f}x, transform "
              f"{theirs['transform_s'] / ours['transform_s']:.2f}x, total {tot_t / tot_o:.2f}x, "
              f"peak memory {theirs['peak_rss_mb'] / ours['peak_rss_mb']:.2f}x")
    else:
        print("authors: not run (give --authors DIR with their saab.py and multi_cwSaab.py); issue's "
              "figures for theirs: fit 20 s, transform 10 s, 3.9 GB")
    print(f"load after: {uptime()}")
    if args.stage_patches:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            st = stage_benchmark(patches, args.stage_patches, Path(tmp))
        print(f"stage  : {st['patches']} patches ({st['frames']} frames x 3 regions): "
              f"{st['wall_s']:.1f} s wall, largest process {st['max_child_rss_mb']:.0f} MB, "
              f"features {st['output_gb']:.2f} GB; {st['stage_log']}")
        print(f"load after stage: {uptime()}")


if __name__ == "__main__":
    main()
