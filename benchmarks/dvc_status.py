"""DVC bookkeeping cost as the dataset grows: `dvc status` and a no-op `dvc repro`.

Goals: `dvc status` with a 10,000-video manifest <= 3 s, and a no-op `dvc repro` of the whole
DAG <= 3 s, at 16 shards (issue 8; 64 shards reported beside it). Sharding keeps the number of
stages and tracked files independent of the number of videos, so both stay flat as videos grow;
they grow with shards (each shard adds 4 stages).

What it does, in a temporary copy of the project for each size N:
  1. a generic-layout dataset of N small files (real/ and fake/ folders; content is irrelevant
     because probing is switched off with `--probe false`),
  2. `dvc repro ingest` (manifest + per-shard manifests),
  3. `dvc commit` of every downstream stage with placeholder outputs, so that the lock file
     describes a fully built DAG,
  4. times `dvc status` and `dvc repro` (no-op) three times each and prints the best.

Run: `.venv/bin/python benchmarks/dvc_status.py [--sizes 1000 10000] [--shards 2 16 64]`
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

import yaml
from dfdetect.servers import copy_project

REPO = Path(__file__).resolve().parents[1]


def run(cmd, cwd, env, check=True):
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if check and p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def best_of(fn, n=3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def build(n: int, shards: int, work: Path, env: dict) -> tuple[Path, list[str]]:
    proj = work / f"proj{n}-{shards}"
    copy_project(REPO, proj)
    data = proj / "data" / "bench"
    for i in range(n):
        sub = data / ("real" if i % 2 == 0 else "fake") / f"id{i % 97:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:06d}.mp4").write_bytes(i.to_bytes(4, "little"))
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["ingest"].update({"layout": "generic", "root": "data/bench", "probe": False, "csv": ""})
    params["sharding"] = {"num_shards": shards, "shards": list(range(shards))}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q"], proj, env)
    run(dvc + ["init", "-q"], proj, env)
    run(dvc + ["config", "core.analytics", "false"], proj, env)
    # the demo builder is not part of this DAG: the dataset is given
    run(dvc + ["remove", "make_demo"], proj, env, check=False)
    run(dvc + ["repro", "ingest"], proj, env)
    # placeholder outputs for every other stage, then record them in dvc.lock, so that the
    # lock describes a fully built DAG (what `dvc status` checks after a real run)
    code = (
        "from pathlib import Path\n"
        "from dvc.repo import Repo\n"
        "repo = Repo('.')\n"
        "stages = [s for s in repo.index.stages if s.addressing != 'ingest']\n"
        "for stage in stages:\n"
        "    for out in list(stage.deps) + list(stage.outs):\n"
        "        p = Path(out.fs_path)\n"
        "        if p.exists():\n"
        "            continue\n"
        "        p.parent.mkdir(parents=True, exist_ok=True)\n"
        "        if p.suffix:\n"
        "            p.write_text(stage.addressing)\n"
        "        else:\n"
        "            p.mkdir()\n"
        "            (p / 'part').write_text(stage.addressing)\n"
        "for _ in range(2):   # upstream first, then again so every dep hash is final\n"
        "    repo.commit(None, force=True)\n"
    )
    run([sys.executable, "-c", code], proj, env)
    lock_targets = []
    return proj, lock_targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--shards", type=int, nargs="+", default=[2, 16, 64])
    args = ap.parse_args()
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b",
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    dvc = [sys.executable, "-m", "dvc"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shards in args.shards:
            for n in args.sizes:
                proj, _ = build(n, shards, Path(tmp), env)
                state = run(dvc + ["status"], proj, env, check=False).stdout.strip().splitlines()
                t_status = best_of(lambda: run(dvc + ["status"], proj, env, check=False))
                t_repro = best_of(lambda: run(dvc + ["repro"], proj, env))
                rows[n, shards] = (t_status, t_repro)
                print(f"N={n:>6} videos, {shards:>3} shards: dvc status {t_status:.2f} s, no-op dvc repro "
                      f"(whole DAG) {t_repro:.2f} s   [status: {state[-1] if state else '(nothing)'}]",
                      flush=True)
                shutil.rmtree(proj)
    n0, n1 = min(args.sizes), max(args.sizes)
    for shards in args.shards:
        if n0 != n1:
            (s0, r0), (s1, r1) = rows[n0, shards], rows[n1, shards]
            print(f"{shards} shards, growth {n0} -> {n1} videos: status x{s1 / s0:.2f}, no-op repro x{r1 / r0:.2f}")
    for shards in args.shards:
        s, r = rows[n1, shards]
        verdict = "MET" if max(s, r) <= 3 else "NOT MET"
        goal = " (goal <= 3 s for both)" if shards == 16 else ""
        print(f"{n1} videos, {shards} shards: status {s:.2f} s, no-op repro {r:.2f} s: {verdict}{goal}")


if __name__ == "__main__":
    main()
