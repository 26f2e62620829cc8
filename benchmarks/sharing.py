"""A teammate's ``dvc pull && dvc repro`` vs a full recompute, side by side, over a real SSH remote.

    python benchmarks/sharing.py [--params demo|tiny] [--targets evaluate@resnet50 evaluate@defakehop]

A temporary copy of the project (``--params demo``: params.yaml as it is, the embedded demo;
``tiny``: the TINY params of tests/test_pipeline.py) is user A's working copy. An OpenSSH server
on 127.0.0.1 (dfdetect.servers.SSHServer) is the DVC remote (dvc-ssh). Timed:

1. full recompute: A's ``dvc repro <targets>`` from nothing (every stage runs);
2. A's ``dvc push`` (printed, not part of the ratio);
3. teammate: ``git clone`` of A's repository (empty DVC cache), ``dvc pull --with-deps <targets>
   && dvc repro <targets>`` (nothing runs: checked).

Printed: both wall times and the speed-up (goal: >= 10x). The default targets are the video
branch up to two detectors (what tests/test_sharing.py runs); ``--targets report`` takes the
whole DAG (minutes on 2 cores with ``--params demo``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from dfdetect.servers import SSHServer
from dfdetect.servers import copy_project

REPO = Path(__file__).resolve().parents[1]


def timed(cmd, cwd, env) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return elapsed, proc.stdout


def tiny_params(params: dict) -> dict:
    spec = importlib.util.spec_from_file_location("_tiny_pipeline", REPO / "tests" / "test_pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod._deep_update(params, mod.TINY)
    mod._shrink_models(params)
    return params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", choices=["demo", "tiny"], default="demo")
    ap.add_argument("--targets", nargs="+", default=["evaluate@resnet50", "evaluate@defakehop"])
    args = ap.parse_args()
    dvc = [sys.executable, "-m", "dvc"]
    with tempfile.TemporaryDirectory(prefix="dfdetect-sharing-bench-") as tmp:
        root = Path(tmp)
        a, b = root / "A", root / "B"
        a.mkdir()
        copy_project(REPO, a)
        if args.params == "tiny":
            p = tiny_params(yaml.safe_load((a / "params.yaml").read_text()))
            (a / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
                   DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@a",
                   GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@a")
        env.pop("DFDETECT_MEDIA", None)
        env_a, env_b = dict(env, PYTHONPATH=str(a / "src")), dict(env, PYTHONPATH=str(b / "src"))
        with SSHServer(root / "sshd") as server:
            for cmd in (["git", "init", "-q"], dvc + ["init", "-q"], dvc + ["config", "core.analytics", "false"],
                        dvc + ["remote", "add", "-d", "team", server.url(root / "remote")],
                        dvc + ["remote", "modify", "--local", "team", "keyfile", str(server.keyfile)],
                        ["git", "add", "-A"], ["git", "commit", "-qm", "project"]):
                timed(cmd, a, env_a)
            full, out = timed(dvc + ["repro", *args.targets], a, env_a)
            stages = [line for line in out.splitlines() if line.startswith("Running stage")]
            timed(["git", "add", "-A"], a, env_a)
            timed(["git", "commit", "-qm", "results"], a, env_a)
            push, _ = timed(dvc + ["push", "--with-deps", *args.targets], a, env_a)
            timed(["git", "clone", "-q", str(a), str(b)], root, env)
            timed(dvc + ["remote", "modify", "--local", "team", "keyfile", str(server.keyfile)], b, env_b)
            pull, _ = timed(dvc + ["pull", "--with-deps", *args.targets], b, env_b)
            repro, out = timed(dvc + ["repro", *args.targets], b, env_b)
            if "Running stage" in out:
                sys.exit(f"the teammate's repro recomputed something:\n{out}")
    teammate = pull + repro
    print(f"params {args.params}, targets {' '.join(args.targets)} ({len(stages)} stages); "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  full recompute (A: dvc repro)          {full:8.1f} s")
    print(f"  A: dvc push (ssh remote)               {push:8.1f} s")
    print(f"  teammate: dvc pull                     {pull:8.1f} s")
    print(f"  teammate: dvc repro (nothing runs)     {repro:8.1f} s")
    ratio = full / teammate
    print(f"teammate pull && repro is {ratio:.1f}x faster than a full recompute  goal >= 10x: "
          f"{'met' if ratio >= 10 else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
