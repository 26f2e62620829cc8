"""The committed ``dvc.lock`` is the committed code's: every stage dependency that git tracks (code,
``params.yaml``, the demo's tracked source folder) has the hash ``dvc.lock`` records for it.

A commit that changes a stage's code (even a docstring) without rerunning the DAG leaves a lock
that a fresh clone's ``make demo`` cannot trust: DVC reruns every stage whose recorded dependency
changed, so the newcomer pays the whole DAG again and gets a lock other than the committed one.
DVC's own ``dvc status`` does the hashing; dependencies that are other stages' outputs (absent in
a fresh clone) are not git's and are left to DVC.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dvc() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else (shutil.which("dvc") or "")


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _lock_outs() -> set[str]:
    import yaml  # noqa: PLC0415

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    return {o["path"] for st in lock.values() for o in st.get("outs", [])}


def stale_dependencies(status: dict, tracked: set[str], outs: set[str]) -> list[str]:
    """``stage: path (what changed)`` for each git-tracked dependency ``dvc status --json`` reports.

    A folder is git's when git tracks a file in it (other than DVC's ``.gitignore`` of its
    outputs) and no stage writes into it; a folder that mixes the two is left to DVC.
    """
    folders = set()
    for f in tracked:
        if Path(f).name != ".gitignore":
            folders.update(str(p) for p in Path(f).parents)
    folders = {d for d in folders if not any(o == d or o.startswith(d + "/") for o in outs)}
    stale = []
    for stage, entries in sorted(status.items()):
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            for path, change in entry.get("changed deps", {}).items():
                if path in tracked or path in folders:
                    stale.append(f"{stage}: {path} ({json.dumps(change)})")
    return stale


def test_stale_dependencies_names_only_git_tracked_paths():
    status = {"train@x": [{"changed deps": {"src/a.py": "modified", "data/faces/0": "deleted",
                                            "params.yaml": {"models.x.lr": "modified"}}},
                          {"changed outs": {"models/x": "not in cache"}}],
              "report_old": [{"changed outs": {"metrics/leaderboard.md": "deleted"}}],
              "make_demo": [{"changed deps": {"data/demo_source": "modified"}}], "bad": "changed",
              "transcribe": [{"changed deps": {"data/audio": "modified"}}],
              "report": [{"changed deps": {"data/set_scores": "modified"}}]}
    got = stale_dependencies(status, {"src/a.py", "params.yaml", "data/demo_source/README.md",
                                      "data/audio/.gitignore", "data/set_scores/README.md"},
                             {"data/set_scores/demo_unseen", "data/audio/x.wav"})
    assert got == ['make_demo: data/demo_source ("modified")', 'train@x: src/a.py ("modified")',
                   'train@x: params.yaml ({"models.x.lr": "modified"})']


def test_committed_lock_matches_the_committed_code():
    dvc = _dvc()
    if not dvc or not (ROOT / ".git").exists():
        pytest.skip("needs dvc and a git checkout")
    res = subprocess.run([dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    stale = stale_dependencies(json.loads(res.stdout or "{}"), _tracked(), _lock_outs())
    assert not stale, ("dvc.lock records other hashes for these git-tracked dependencies: rerun "
                       "the DAG (`make demo`) and commit dvc.lock with the code:\n  " + "\n  ".join(stale))
