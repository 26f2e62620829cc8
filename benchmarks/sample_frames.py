"""Frame sampling benchmarks (run by hand; every ratio is measured side by side in this run).

    python benchmarks/sample_frames.py [--source VIDEO] [--reps 3] [--keep DIR]

1. uniform 32 frames of a 10 s 720p H.264 clip (x264 default keyframe interval: one GOP)
   vs ``ffmpeg -i clip -f null -`` decoding it all.                      goal: <= 1.15x
   (also shown: OpenCV backend, naive CAP_PROP_POS_FRAMES seek per frame, read() of all)
2. sparse: 8 frames of a 60 s clip with a 2 s keyframe interval (-g 50 at 25 fps)
   vs decoding all of it.                                                goal: >= 3x faster
3. videos/s of the stage on 8 short clips, 2 workers vs 1 (one decoder thread each).
                                                                          goal: >= 1.8x
4. peak memory (ru_maxrss) of the stage, in a fresh process, on N and 10N videos: flat.
5. peak memory of ``strategy: all`` on a 10 s and a 60 s 1080p clip (two copies each, two
   workers): the whole process tree's RSS (psutil, sampled every 50 ms) and the largest single
   process (ru_maxrss of the finished tree).                         goal: 60 s / 10 s <= 1.10

Clips are generated into a temporary folder with ffmpeg (testsrc2 plus temporal noise so the
encoder works like on camera footage, or ``--source``: any real video, scaled to 720p and
looped). Run it on an idle machine; the load average is printed with the figures.
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

import cv2
import numpy as np
import pandas as pd

from dfdetect.video.decode import read_frames
from dfdetect.video.indices import uniform
from dfdetect.video.keyframes import probe
from dfdetect.video.sample import sample_shard, sample_video


def make_clip(path: Path, seconds: float, size: str = "1280x720", gop: int | None = None,
              preset: str = "medium", source: str | None = None) -> Path:
    if source:
        inp = ["-stream_loop", "-1", "-i", source]
        vf = [f"-vf", f"scale={size.replace('x', ':')},fps=25"]
    else:
        inp = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
        vf = ["-vf", "noise=alls=3:allf=t"]   # light grain: about 4 Mbit/s at 720p
    cmd = ["ffmpeg", "-v", "error", "-y", *inp, "-t", str(seconds), *vf, "-an", "-c:v", "libx264",
           "-preset", preset, "-pix_fmt", "yuv420p"]
    if gop:
        cmd += ["-g", str(gop)]
    subprocess.run(cmd + [str(path)], check=True)
    return path


def best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ffmpeg_null(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], check=True)


def cv_seek_each(path: Path, indices) -> None:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    for i in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, _ = cap.read()
        assert ok
    cap.release()


def cv_read_all(path: Path) -> None:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    while cap.read()[0]:
        pass
    cap.release()


def pyav_decode_all(path: Path) -> None:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            pass


def sample(path: Path, n: int, decoder: str = "pyav") -> None:
    out = sample_video(path, {"strategy": "uniform", "num_frames": n, "decoder": decoder})
    assert len(out["frame_index"]) == n


def stage_videos_per_s(manifest: pd.DataFrame, tmp: Path, workers: int, threads: int) -> float:
    params = {"strategy": "uniform", "num_frames": 32, "decoder": "pyav", "threads": threads,
              "compression": {"codec": "gzip", "level": 1, "shuffle": True}}
    t0 = time.perf_counter()
    sample_shard(manifest, tmp / f"w{workers}.h5", tmp / f"w{workers}.csv", params,
                 executor="process" if workers > 1 else "serial", workers=workers, progress=False)
    return len(manifest) / (time.perf_counter() - t0)


def _burn(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
    return s


def control_ratio() -> float:
    """Items/s of a pure-Python CPU loop on 2 workers vs 1: what the machine's load leaves."""
    from dfdetect.parallel import imap

    rate = {}
    list(imap(_burn, [10] * 2, executor="process", workers=2, progress=False))
    for w in (1, 2):
        t0 = time.perf_counter()
        list(imap(_burn, [3_000_000] * 8, executor="process", workers=w, progress=False))
        rate[w] = 8 / (time.perf_counter() - t0)
    return rate[2] / rate[1]


MEM_SCRIPT = """
import resource, sys, pandas as pd
from dfdetect.video.sample import sample_shard
df = pd.read_csv(sys.argv[1], keep_default_na=False)
params = {"strategy": "uniform", "num_frames": 16, "compression": {"codec": "gzip", "level": 1}}
sample_shard(df, sys.argv[2], sys.argv[3], params, executor="process", workers=2, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(clip: Path, n: int, tmp: Path) -> float:
    d = tmp / f"mem{n}"
    d.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        p = d / f"v{i:04d}.mp4"
        if not p.exists():
            os.link(clip, p)
        paths.append(p)
    df = pd.DataFrame({"video_id": [p.name for p in paths], "label": "real", "path": [str(p) for p in paths]})
    df.to_csv(d / "m.csv", index=False)
    out = subprocess.run([sys.executable, "-c", MEM_SCRIPT, str(d / "m.csv"), str(d / "o.h5"),
                          str(d / "f.csv")], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


ALL_SCRIPT = """
import subprocess, sys, resource
# run the stage as a child, then read the peak RSS of every process it left (main + workers)
subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], check=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(ru.ru_maxrss, ru.ru_utime + ru.ru_stime)
"""

ALL_STAGE = """
import sys, pandas as pd
from dfdetect.video.sample import sample_shard
df = pd.read_csv(sys.argv[1], keep_default_na=False)
params = {"strategy": "all", "decoder": "pyav",
          "compression": {"codec": "gzip", "level": 1, "shuffle": True}}
fails = sample_shard(df, sys.argv[2], sys.argv[3], params, executor="process", workers=2,
                     progress=False)
assert len(fails) == 0, fails.frame()
"""


def peak_rss_all(clip: Path, tmp: Path, copies: int = 2) -> tuple[float, float, float, float, int]:
    """(tree peak MB, largest process MB, wall s, CPU s of the tree, frames written) of
    ``strategy: all``."""
    import h5py
    import psutil

    d = tmp / f"all_{clip.stem}"
    d.mkdir(exist_ok=True)
    paths = []
    for i in range(copies):
        p = d / f"copy{i}.mp4"
        if not p.exists():
            os.link(clip, p)
        paths.append(p)
    pd.DataFrame({"video_id": [p.name for p in paths], "label": "real",
                  "path": [str(p) for p in paths]}).to_csv(d / "m.csv", index=False)
    out = d / "o.h5"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", ALL_SCRIPT, ALL_STAGE, str(d / "m.csv"),
                             str(out), str(d / "f.csv")], stdout=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    tree_peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root] + root.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        tree_peak = max(tree_peak, total)
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    stdout = proc.stdout.read()
    if proc.returncode != 0:
        raise RuntimeError(f"stage failed ({proc.returncode})")
    with h5py.File(out, "r") as f:
        frames = int(len(f["index/frame_index"]))
    out.unlink()
    maxrss, cpu = stdout.strip().splitlines()[-1].split()
    return tree_peak / 2**20, int(maxrss) / 1024, seconds, float(cpu), frames


def bench_all_memory(tmp: Path, seconds: list[int], size: str = "1920x1080") -> None:
    rows = []
    for sec in seconds:
        clip = tmp / f"clip{sec}_{size}.mp4"
        if not clip.exists():
            make_clip_plain(clip, sec, size)
        rows.append((sec,) + peak_rss_all(clip, tmp))
    print(f"\n[5] strategy all, {size}, 2 copies, 2 workers, gzip level 1")
    for sec, tree, big, t, cpu, n in rows:
        print(f"  {sec:3d} s clip  ({n:5d} frames written, {t:6.1f} s wall, {cpu:6.1f} s CPU)  "
              f"tree peak {tree:7.0f} MB   largest process {big:7.0f} MB")
    if len(rows) >= 2:
        (_, t0, b0, *_), (_, t1, b1, *_) = rows[0], rows[-1]
        print(f"  ratio {rows[-1][0]} s / {rows[0][0]} s: tree {t1 / t0:.2f}x, largest process "
              f"{b1 / b0:.2f}x  (goal <= 1.10)")


def make_clip_plain(path: Path, seconds: float, size: str) -> Path:
    """testsrc2 (no grain), x264 ultrafast: cheap to make at 1080p."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=25", "-t", str(seconds), "-an", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def bench_dense(clip10: Path, reps: int) -> None:
    info = probe(clip10)
    idx32 = uniform(info.n_frames, 32)
    t_ff = best(lambda: ffmpeg_null(clip10), reps)
    t_s = best(lambda: sample(clip10, 32), reps)
    t_cv = best(lambda: sample(clip10, 32, "opencv"), reps)
    t_all = best(lambda: cv_read_all(clip10), 1)
    t_seek = best(lambda: cv_seek_each(clip10, idx32), 1)
    print(f"\n[1] 10 s 720p ({len(info.keyframes)} GOP(s): keyframes at {info.keyframes.tolist()}), "
          "uniform 32 frames")
    print(f"  ffmpeg -f null (decode all)      {t_ff:7.3f} s")
    print(f"  dfdetect pyav  uniform-32        {t_s:7.3f} s   ratio {t_s / t_ff:.2f}x  (goal <= 1.15x)")
    print(f"  dfdetect opencv uniform-32       {t_cv:7.3f} s   ratio {t_cv / t_ff:.2f}x")
    print(f"  OpenCV read() all frames         {t_all:7.3f} s   ratio {t_all / t_ff:.2f}x")
    print(f"  OpenCV seek each of 32 (naive)   {t_seek:7.3f} s   ratio {t_seek / t_ff:.2f}x")


def bench_sparse(clip60: Path, reps: int) -> None:
    info = probe(clip60)
    r = read_frames(clip60, uniform(info.n_frames, 8), info=info)
    t_all60 = best(lambda: pyav_decode_all(clip60), max(1, reps - 1))
    t_ff60 = best(lambda: ffmpeg_null(clip60), max(1, reps - 1))
    t_s8 = best(lambda: sample(clip60, 8), reps)
    t_s8cv = best(lambda: sample(clip60, 8, "opencv"), reps)
    print(f"\n[2] 60 s 720p, {len(info.keyframes)} keyframes (-g 50), uniform 8 frames "
          f"({r.seeks} seeks, {r.decoded} of {info.n_frames} frames decoded)")
    print(f"  PyAV decode all                  {t_all60:7.3f} s")
    print(f"  ffmpeg -f null (decode all)      {t_ff60:7.3f} s")
    print(f"  dfdetect pyav  sparse-8          {t_s8:7.3f} s   {t_all60 / t_s8:.1f}x faster than PyAV all, "
          f"{t_ff60 / t_s8:.1f}x than ffmpeg  (goal >= 3x)")
    print(f"  dfdetect opencv sparse-8         {t_s8cv:7.3f} s   {t_all60 / t_s8cv:.1f}x faster than PyAV all")


def short_clips(clip10: Path, tmp: Path) -> list[Path]:
    shorts = []
    for i in range(8):
        p = tmp / f"short{i}.mp4"
        if not p.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(i), "-i", str(clip10), "-t", "2",
                            "-c:v", "libx264", "-preset", "veryfast", "-vf", "scale=640:360", str(p)],
                           check=True)
        shorts.append(p)
    return shorts


def bench_workers(shorts: list[Path], tmp: Path) -> None:
    reps = 3  # each clip three times (distinct ids): steady-state throughput, not pool start-up
    man = pd.DataFrame({"video_id": [f"{r}/{p.name}" for r in range(reps) for p in shorts],
                        "label": "real", "path": [str(p) for _ in range(reps) for p in shorts]})
    work = Path(tempfile.mkdtemp(dir=tmp))
    stage_videos_per_s(man.iloc[:2], work, 2, 1)                      # start the workers
    v1 = max(stage_videos_per_s(man, work, 1, 1) for _ in range(2))
    v2 = max(stage_videos_per_s(man, work, 2, 1) for _ in range(2))
    v1auto = stage_videos_per_s(man, work, 1, 0)
    print(f"\n[3] stage throughput, {len(man)} videos (2 s, 360p), uniform 32")
    print(f"  1 worker, 1 thread               {v1:7.2f} videos/s")
    print(f"  2 workers, 1 thread each         {v2:7.2f} videos/s   ratio {v2 / v1:.2f}x  (goal >= 1.8x)")
    print(f"  1 worker, auto threads           {v1auto:7.2f} videos/s")
    print(f"  control: CPU-bound loop, 2 workers vs 1: {control_ratio():.2f}x "
          "(what the machine's load leaves; about 2x on 2 idle cores)")


def bench_memory(clip: Path, n: int, tmp: Path) -> None:
    m1 = peak_rss_mb(clip, n, tmp)
    m10 = peak_rss_mb(clip, 10 * n, tmp)
    print(f"\n[4] peak RSS of the stage's main process (2 workers): {n} videos {m1:.0f} MB, "
          f"{10 * n} videos {m10:.0f} MB   ratio {m10 / m1:.2f}x  (goal: flat)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", help="a real video to transcode into the test clips")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", help="keep clips in this folder (reused when present)")
    ap.add_argument("--mem-videos", type=int, default=8, help="N for the memory check (and 10N)")
    ap.add_argument("--parts", default="1,2,3,4", help="which measurements to run (comma list; "
                    "5: strategy-all memory, 10 s vs 60 s 1080p, run on its own)")
    ap.add_argument("--all-seconds", default="10,60", help="clip lengths for part 5")
    args = ap.parse_args()
    parts = {int(x) for x in args.parts.split(",")}
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dfdetect-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"load before: {os.getloadavg()}  cpus: {os.cpu_count()}  clips in {tmp}")
    try:
        if 5 in parts:
            bench_all_memory(tmp, [int(x) for x in args.all_seconds.split(",")])
        clip10 = tmp / "clip10_720p.mp4"
        clip60 = tmp / "clip60_720p_g50.mp4"
        if parts & {1, 2, 3, 4} and not clip10.exists():
            make_clip(clip10, 10, source=args.source)
        if 2 in parts and not clip60.exists():
            make_clip(clip60, 60, gop=50, preset="veryfast", source=args.source)
        if 1 in parts:
            bench_dense(clip10, args.reps)
        if 2 in parts:
            bench_sparse(clip60, args.reps)
        shorts = short_clips(clip10, tmp) if parts & {3, 4} else []
        if 3 in parts:
            bench_workers(shorts, tmp)
        if 4 in parts:
            bench_memory(shorts[0], args.mem_videos, tmp)
        print(f"\nload after: {os.getloadavg()}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
