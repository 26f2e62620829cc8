"""Alignment throughput on 720p frames (goal: >= 30 frames/s on 2 cores) and peak memory of the
align_faces stage as the dataset grows 10x (goal: flat).

    python benchmarks/align_faces.py [--videos 8] [--frames 8] [--memory]

Frames: with DFDETECT_MEDIA set, real talking-head clips of ../shared/media (videoretalking,
sadtalker: 512-844 px squares) scaled to 720 px high and pillarboxed into 1280 x 720; otherwise
scikit-image's astronaut scaled the same way, shifted a little from frame to frame. Prints the
per-frame cost of each step (one process), then frames/s of the whole stage with 1 and 2 workers
(warm workers: the model-loading start-up of each worker is reported separately), their ratio,
and the machine's load average (the machine may be shared: compare ratios, not absolutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def to_720p(rgb: np.ndarray, dx: int = 0) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = 720 / h
    img = cv2.resize(rgb, (int(round(w * s)), 720), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((720, 1280, 3), np.uint8)
    x0 = (1280 - img.shape[1]) // 2 + dx
    out[:, x0:x0 + img.shape[1]] = img[:, : 1280 - x0]
    return out


def make_videos(n_videos: int, n_frames: int) -> list[tuple[str, np.ndarray]]:
    import cv2

    media = os.environ.get("DFDETECT_MEDIA")
    clips = []
    if media and Path(media).is_dir():
        clips = sorted(Path(media, "videos").glob("videoretalking__*.mp4")) + \
            sorted(Path(media, "videos").glob("sadtalker__*.mp4"))
    videos = []
    for v in range(n_videos):
        frames = []
        if clips:
            cap = cv2.VideoCapture(str(clips[v % len(clips)]))
            step = 5 + v // len(clips)
            while len(frames) < n_frames:
                for _ in range(step):
                    ok = cap.grab()
                ok, bgr = cap.retrieve() if ok else (False, None)
                if not ok:
                    break
                frames.append(to_720p(np.ascontiguousarray(bgr[:, :, ::-1])))
            cap.release()
        if len(frames) < n_frames:
            from skimage import data

            a = data.astronaut()
            rng = np.random.default_rng(v)
            while len(frames) < n_frames:
                frames.append(to_720p(a, int(rng.integers(-200, 200))))
        videos.append((f"bench/{'media' if clips else 'astronaut'}_{v:03d}.mp4", np.stack(frames)))
    return videos


def write_shard(path: Path, videos, compression=None) -> None:
    """A frames shard compressed as sample_frames compresses it (its params section)."""
    from dfdetect.store import ShardWriter

    with ShardWriter(path, stage="sample_frames", default_compression=compression) as w:
        for vid, frames in videos:
            w.add_video(vid, np.arange(len(frames)), frame=frames)


def step_costs(frames: np.ndarray, params: dict) -> dict:
    """Mean CPU milliseconds per frame of each step, in this process (CPU time, not wall time, so
    that other users of a shared machine inflate it less)."""
    import dataclasses

    from dfdetect.faces.align import align_face, defakehop_align
    from dfdetect.faces.detect import detect
    from dfdetect.faces.pipeline import AlignConfig, downscale, find_face

    cfg = AlignConfig.from_params(params)
    nocoarse = dataclasses.replace(cfg, coarse_side=0)
    t = {k: 0.0 for k in ("hog_at_detect_max_side", "find_face_without_coarse", "find_face", "align_face",
                          "defakehop")}
    found = 0
    find_face(frames[0], cfg)  # load the models
    for rgb in frames:
        t0 = time.process_time()
        detect(downscale(rgb, cfg.detect_max_side)[0], cfg.detector, cfg.upsample)
        t1 = time.process_time()
        find_face(rgb, nocoarse)
        t2 = time.process_time()
        res = find_face(rgb, cfg)
        t3 = time.process_time()
        t["hog_at_detect_max_side"] += t1 - t0
        t["find_face_without_coarse"] += t2 - t1
        t["find_face"] += t3 - t2
        if res is None:
            continue
        found += 1
        align_face(rgb, res[1], cfg.face_size, cfg.margin)
        t4 = time.process_time()
        defakehop_align(rgb, res[1], cfg.defakehop_size, cfg.patch_size)
        t5 = time.process_time()
        t["align_face"] += t4 - t3
        t["defakehop"] += t5 - t4
    out = {k: round(1000 * v / len(frames), 2) for k, v in t.items()}
    out["found"] = f"{found}/{len(frames)}"
    return out


def _cpu_seconds() -> float:
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def stage_fps(shard: Path, out_dir: Path, params: dict, workers: int) -> tuple[float, float, float, dict]:
    """(frames/s wall, frames per CPU-second (all processes), seconds of the cold first run, counts).
    The second (timed) run reuses the warm worker processes of the first."""
    from dfdetect.faces.stage import run_align_faces

    executor = "serial" if workers == 1 else "process"
    t0 = time.perf_counter()
    run_align_faces(shard, out_dir / "cold.h5", out_dir / "cold.csv", params, executor=executor,
                    workers=workers, progress=False)
    cold = time.perf_counter() - t0
    c0, t0 = _cpu_seconds(), time.perf_counter()
    counts = run_align_faces(shard, out_dir / "warm.h5", out_dir / "warm.csv", params, executor=executor,
                             workers=workers, progress=False)
    warm, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return counts["frames"] / warm, counts["frames"] / cpu, cold, counts


def peak_rss_mb(shard: Path, out: Path, params: dict, workers: int) -> tuple[float, float]:
    """Peak resident memory (MB) of a fresh process running the stage on ``shard``: (main
    process, sum over its worker processes), sampled every 20 ms with psutil."""
    code = (
        "import json, resource, sys, threading, time, psutil\n"
        "from dfdetect.faces.stage import run_align_faces\n"
        "a = json.loads(sys.argv[1]); peak = [0, 0]; done = threading.Event()\n"
        "def sample():\n"
        "    me = psutil.Process()\n"
        "    while not done.is_set():\n"
        "        kids = 0\n"
        "        for c in me.children(recursive=True):\n"
        "            try: kids += c.memory_info().rss\n"
        "            except psutil.Error: pass\n"
        "        peak[1] = max(peak[1], kids); time.sleep(0.02)\n"
        "t = threading.Thread(target=sample, daemon=True); t.start()\n"
        "run_align_faces(a['shard'], a['out'], a['out'] + '.csv', a['params'],"
        " executor='serial' if a['workers'] == 1 else 'process', workers=a['workers'], progress=False)\n"
        "done.set(); t.join()\n"
        "peak[0] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps(peak))\n")
    arg = json.dumps({"shard": str(shard), "out": str(out), "params": params, "workers": workers})
    res = subprocess.run([sys.executable, "-c", code, arg], check=True, capture_output=True, text=True)
    me, kids = json.loads(res.stdout.strip().splitlines()[-1])
    return me / 2**20, kids / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8, help="frames per video")
    ap.add_argument("--memory", action="store_true", help="also measure peak memory at 1x and 10x videos")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    from dfdetect.config import load_params, section

    all_params = load_params(args.params)
    params = section(all_params, "align_faces") or {}
    frames_codec = section(all_params, "sample_frames").get("compression")
    print(f"align_faces params: {params}")
    print(f"load average at start: {load()}  (cores: {os.cpu_count()})")
    videos = make_videos(args.videos, args.frames)
    print(f"{len(videos)} videos x {args.frames} frames of {videos[0][1].shape[2]}x{videos[0][1].shape[1]} "
          f"({videos[0][0].split('/')[1].split('_')[0]})")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shard = tmp / "frames" / "shard-0.h5"
        write_shard(shard, videos, frames_codec)
        costs = step_costs(np.concatenate([f for _, f in videos])[:32], params)
        total = costs["find_face"] + costs["align_face"] + costs["defakehop"]
        print(f"per-frame CPU cost in one process (ms): {costs}; detect+landmarks+both alignments "
              f"{total:.1f} ms = {1000 / total:.1f} frames per CPU-second")
        fps, per_cpu = {}, {}
        for w in (1, 2):
            fps[w], per_cpu[w], cold, counts = stage_fps(shard, tmp, params, w)
            print(f"stage, {w} worker(s): {fps[w]:.1f} frames/s wall, {per_cpu[w]:.1f} frames per CPU-second "
                  f"({counts['faces']}/{counts['frames']} faces, {counts['by_detector']}); first run incl. "
                  f"worker start-up {cold:.1f} s; load {load()}")
        print(f"2 workers / 1 worker (wall): {fps[2] / fps[1]:.2f}x; goal >= 30 frames/s on 2 cores: "
              f"{'met' if fps[2] >= 30 else 'NOT met'} ({fps[2]:.1f} frames/s wall)")
        print(f"on 2 idle cores (2 x frames per CPU-second of the 2-worker run, the workers share nothing): "
              f"about {2 * per_cpu[2]:.0f} frames/s")
        if args.memory:
            big = tmp / "frames10" / "shard-0.h5"
            from dfdetect.store import ShardWriter

            with ShardWriter(big, stage="sample_frames", default_compression=frames_codec) as w:
                for rep in range(10):
                    for vid, frames in videos:
                        w.add_video(f"{vid}#{rep}", np.arange(len(frames)), frame=frames)
            for w in (1, 2):
                m1 = peak_rss_mb(shard, tmp / "m1.h5", params, w)
                m10 = peak_rss_mb(big, tmp / "m10.h5", params, w)
                print(f"peak RSS, {w} worker(s): {len(videos)} videos: main {m1[0]:.0f} MB, workers (sum) "
                      f"{m1[1]:.0f} MB; {10 * len(videos)} videos: main {m10[0]:.0f} MB, workers {m10[1]:.0f} MB "
                      f"(10x data -> main x{m10[0] / m1[0]:.2f}"
                      + (f", workers x{m10[1] / m1[1]:.2f})" if w > 1 and m1[1] else ")"))
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
