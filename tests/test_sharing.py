"""Sharing the DVC cache between teammates, against a real OpenSSH server on 127.0.0.1.

The DAG is the tiny demo of ``tests/test_pipeline.py`` (its ``TINY`` params, in one shard, serial
executor), restricted to the video branch up to two cheap detectors:
``dvc repro evaluate@resnet50 evaluate@defakehop`` (make_demo, ingest, sample_frames@0,
align_faces@0, saab_features, train/evaluate of both;
the report needs every detector, so it is not in this subset). Every step is a real command in a
real working copy:

- user A runs the subset and ``dvc push``es to ``ssh://<user>@127.0.0.1:<port>/<tmp>/remote``
  (dvc-ssh; the key set with ``dvc remote modify --local``);
- user B makes a fresh ``git clone`` (own, empty DVC cache), ``dvc pull``s and ``dvc repro``s:
  no stage runs and ``dvc status`` is clean; B changes ``models.resnet50.lr``: only
  ``train@resnet50`` and ``evaluate@resnet50`` run, every feature cache came from the remote;
- run-cache: A runs ``dvc exp run -S models.resnet50.lr=...`` and ``dvc push --run-cache``; C,
  a fresh clone of the same commit, ``dvc pull --run-cache`` and ``dvc exp run --pull`` of the
  same value: ``train@resnet50`` is restored from the run-cache (A's weights, not retrained);
  only ``evaluate@resnet50`` runs (its metrics are ``cache: false``, outside any DVC cache);
- a team cache directory on one machine (``dvc cache dir``, ``cache.shared group``,
  ``cache.type symlink``): D1 pulls into it, D2 (no remote key at all) only checks out from it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import dvc_ssh  # noqa: F401  (installed with the project: missing is a failure, not a skip)
import pytest
import yaml

from dfdetect.servers import ServerError, SSHServer
from dfdetect.servers import copy_project

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.pipeline
TARGETS = ["evaluate@resnet50", "evaluate@defakehop"]
FEATURES = ["data/frames/shard-0.h5", "data/faces/shard-0.h5", "data/saab", "models/saab",
            "data/manifest.csv"]
# on top of TINY: one shard, and no worker processes (sharing is about which stages run, not
# how; the executor is not a tracked param and never changes a shard's bytes: test_dask.py)
CHEAP = {"sharding": {"num_shards": 1, "shards": [0]},
         "executor": {"backend": "serial", "workers": 1},
         "saab": {"executor": {"backend": "serial", "workers": 1}}}


def _tiny():
    spec = importlib.util.spec_from_file_location("_tiny_pipeline", REPO / "tests" / "test_pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(cmd, cwd, env, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} in {cwd} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def ran_stages(out: str) -> list[str]:
    return sorted({line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")})


class Team:
    """Working copies of one project: A's original and its git clones."""

    def __init__(self, root: Path, server: SSHServer):
        self.root, self.server = root, server
        self.remote = root / "remote"
        self.dvc = [sys.executable, "-m", "dvc"]
        self.base_env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep
                             + os.environ.get("PATH", ""), DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1",
                             HF_HUB_OFFLINE="1", GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@a",
                             GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@a")
        self.base_env.pop("DFDETECT_MEDIA", None)

    def env(self, wc: Path) -> dict:
        return dict(self.base_env, PYTHONPATH=str(wc / "src"))

    def dvc_run(self, wc: Path, *args, check=True):
        return run(self.dvc + list(args), wc, self.env(wc), check=check)

    def git(self, wc: Path, *args):
        return run(["git", *args], wc, self.env(wc))

    def clone(self, name: str, key: bool = True) -> Path:
        wc = self.root / name
        run(["git", "clone", "-q", str(self.root / "A"), str(wc)], self.root, self.base_env)
        assert not (wc / ".dvc" / "cache").exists()          # its own, empty DVC cache
        if key:
            self.dvc_run(wc, "remote", "modify", "--local", "team", "keyfile", str(self.server.keyfile))
        return wc


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    root = tmp_path_factory.mktemp("team")
    try:
        server = SSHServer(root / "sshd").start()
    except (ServerError, OSError) as err:
        pytest.skip(f"sshd cannot run here: {err}")
    try:
        t = Team(root, server)
        a = root / "A"
        a.mkdir()
        copy_project(REPO, a)
        tiny = _tiny()
        params = yaml.safe_load((a / "params.yaml").read_text())
        tiny._deep_update(params, tiny.TINY)
        tiny._shrink_models(params)
        tiny._deep_update(params, CHEAP)
        (a / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        t.git(a, "init", "-q")
        t.dvc_run(a, "init", "-q")
        t.dvc_run(a, "config", "core.analytics", "false")
        t.dvc_run(a, "remote", "add", "-d", "team", server.url(t.remote))
        t.dvc_run(a, "remote", "modify", "--local", "team", "keyfile", str(server.keyfile))
        t.git(a, "add", "-A")
        t.git(a, "commit", "-qm", "tiny project")
        first = t.dvc_run(a, "repro", *TARGETS)
        assert {"make_demo", "saab_features", "train@resnet50", "evaluate@defakehop"} <= set(
            ran_stages(first.stdout))
        t.git(a, "add", "-A")
        t.git(a, "commit", "-qm", "A's results")
        t.dvc_run(a, "push", "--with-deps", *TARGETS)
        yield t
    finally:
        server.stop()


def test_teammate_pull_runs_nothing_then_only_the_changed_detector(team):
    a = team.root / "A"
    assert any(team.remote.rglob("*")), "dvc push wrote nothing to the ssh remote"
    b = team.clone("B")
    team.dvc_run(b, "pull", "--with-deps", *TARGETS)
    for path in FEATURES:
        assert (b / path).exists(), path
    assert (b / "data/faces/shard-0.h5").read_bytes() == (a / "data/faces/shard-0.h5").read_bytes()
    out = team.dvc_run(b, "repro", *TARGETS).stdout
    assert ran_stages(out) == [], out
    status = team.dvc_run(b, "status", "--with-deps", *TARGETS).stdout
    assert "up to date" in status.lower(), status

    p = yaml.safe_load((b / "params.yaml").read_text())
    p["models"]["resnet50"]["lr"] = p["models"]["resnet50"]["lr"] * 0.5
    (b / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    out = team.dvc_run(b, "repro", *TARGETS).stdout
    assert ran_stages(out) == ["evaluate@resnet50", "train@resnet50"], out
    assert "up to date" in team.dvc_run(b, "status", "--with-deps", *TARGETS).stdout.lower()


def test_run_cache_gives_a_teammate_the_experiment_without_recomputing(team):
    """train@resnet50 comes from the run-cache; evaluate@resnet50 reruns (seconds) because its
    metrics are git-tracked (``cache: false`` in dvc.yaml), which no DVC cache holds."""
    a = team.root / "A"
    value = "models.resnet50.lr=0.0007"
    out = team.dvc_run(a, "exp", "run", "-S", value, *TARGETS).stdout
    assert ran_stages(out) == ["evaluate@resnet50", "train@resnet50"], out
    team.dvc_run(a, "push", "--run-cache", "--with-deps", *TARGETS)
    model_a = {p.relative_to(a): p.read_bytes() for p in (a / "models" / "resnet50").rglob("*") if p.is_file()}

    c = team.clone("C")                      # same commit as A's HEAD, empty cache
    team.dvc_run(c, "pull", "--run-cache", "--with-deps", *TARGETS)
    out = team.dvc_run(c, "exp", "run", "--pull", "-S", value, *TARGETS).stdout
    assert "Stage 'train@resnet50' is cached - skipping run, checking out outputs" in out, out
    assert ran_stages(out) == ["evaluate@resnet50"], out      # the training was not recomputed
    model_c = {p.relative_to(c): p.read_bytes() for p in (c / "models" / "resnet50").rglob("*") if p.is_file()}
    assert model_c == model_a and model_a                       # A's experiment's weights


def test_shared_cache_directory_for_two_working_copies(team):
    shared = team.root / "shared-cache"
    d1, d2 = team.clone("D1"), team.clone("D2", key=False)   # D2 never talks to the remote
    for wc in (d1, d2):
        team.dvc_run(wc, "cache", "dir", "--local", str(shared))
        team.dvc_run(wc, "config", "--local", "cache.shared", "group")
        team.dvc_run(wc, "config", "--local", "cache.type", "symlink")
    team.dvc_run(d1, "pull", "--with-deps", *TARGETS)
    team.dvc_run(d2, "checkout", "--with-deps", *TARGETS)
    for wc in (d1, d2):
        assert not (wc / ".dvc" / "cache").exists()
        out = team.dvc_run(wc, "repro", *TARGETS).stdout
        assert ran_stages(out) == [], out
        assert "up to date" in team.dvc_run(wc, "status", "--with-deps", *TARGETS).stdout.lower()
    f1, f2 = d1 / "data/faces/shard-0.h5", d2 / "data/faces/shard-0.h5"
    assert f1.is_symlink() and f2.is_symlink()
    assert os.path.realpath(f1) == os.path.realpath(f2)            # one copy on disk
    assert Path(os.path.realpath(f2)).is_relative_to(shared.resolve())
    objects = [p for p in (shared / "files").rglob("*") if p.is_file()]
    assert objects
    assert all(p.stat().st_mode & stat.S_IRGRP for p in objects)   # the group reads every object
    dirs = [p for p in (shared / "files").rglob("*") if p.is_dir()]
    assert all(p.stat().st_mode & stat.S_IWGRP for p in dirs)      # ... and adds to every folder
