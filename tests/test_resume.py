"""Resumable shards (dfdetect.resume): kill -9 a per-item stage, rerun it, get the same shard.

The stage is the real ``stages/sample_frames.py`` (a subprocess, as DVC runs it) on a tiny
synthetic shard: four MJPG clips (one long enough to stream through a spill file) and one junk
file (a failure row, reused like a result). Kill points are exact (``DFDETECT_RESUME_KILL``: the
process SIGKILLs itself after its n-th record, or once every item was handed to the writer), and
one test kills the stage's whole process group from outside while its two workers run. Each
rerun says how many items it reused and computed; the shard and the failures table must be
byte-identical to an uninterrupted run's.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "stages" / "sample_frames.py"
N_ITEMS = 5
COUNTS = re.compile(r"resume: \S+: (\d+) items reused, (\d+) computed")


def _clip(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (48, 48))
    for _ in range(n):
        w.write(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    w.release()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A working folder with params.yaml, a 5-item manifest shard and a reference run."""
    root = tmp_path_factory.mktemp("resume")
    media = root / "media"
    media.mkdir()
    for i, n in enumerate([6, 40, 6, 6]):          # 40 frames > STREAM_FRAMES: a spill file
        _clip(media / f"v{i}.avi", n, i)
    (media / "junk.avi").write_bytes(bytes(range(256)) * 8)
    ids = ["v0.avi", "v1.avi", "junk.avi", "v2.avi", "v3.avi"]
    (root / "manifest").mkdir()
    pd.DataFrame({"video_id": ids, "label": ["real"] * 5, "path": [str(media / v) for v in ids]}) \
        .to_csv(root / "manifest" / "shard-0.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["executor"] = {"backend": "serial", "workers": 1, "address": ""}
    params["sample_frames"].update(strategy="all", decoder="opencv", threads=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    ref = _run(root, "ref")
    assert ref.returncode == 0, ref.stderr
    assert _counts(ref) == (0, N_ITEMS)
    return root


def _env(kill: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DFDETECT_RESUME_KILL"}
    env.update(PYTHONPATH=str(REPO / "src"), DFDETECT_LOGLEVEL="INFO")
    if kill:
        env["DFDETECT_RESUME_KILL"] = kill
    return env


def _args(root: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--shard", "0", "--manifest-dir", str(root / "manifest"),
            "--out-dir", str(root / name / "frames"),
            "--failures-dir", str(root / name / "failures"), *extra]


def _run(root: Path, name: str, *extra: str, kill: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_args(root, name, *extra), cwd=root, env=_env(kill), capture_output=True,
                          text=True, timeout=120)


def _counts(proc) -> tuple[int, int]:
    found = COUNTS.findall(proc.stderr)
    assert len(found) == 1, proc.stderr
    return int(found[0][0]), int(found[0][1])


def _resume_dirs(root: Path, name: str) -> list[Path]:
    return sorted((root / name / "frames").glob(".shard-0.h5.resume-*.tmp"))


def _records(root: Path, name: str) -> list[Path]:
    return sorted(p for d in _resume_dirs(root, name) for p in (d / "items").glob("*.rec"))


def _rerun_reuses(project, name: str, done: int) -> None:
    """A rerun succeeds, reuses exactly the ``done`` recorded items, computes the rest and writes
    the uninterrupted run's bytes."""
    again = _run(project, name)
    assert again.returncode == 0, again.stderr
    assert _counts(again) == (done, N_ITEMS - done)
    _same_as_reference(project, name)


def _same_as_reference(root: Path, name: str) -> None:
    for sub in ("frames/shard-0.h5", "failures/shard-0.csv"):
        assert (root / name / sub).read_bytes() == (root / "ref" / sub).read_bytes(), sub
    assert _resume_dirs(root, name) == []          # removed once the shard is in place


@pytest.mark.parametrize("kill, done", [("saved:0", 0), ("saved:2", 2), ("saved:5", 5),
                                        ("assembled", 5)])
def test_kill9_then_rerun_reuses_finished_items(project, kill, done):
    name = f"kill-{kill.replace(':', '')}"
    first = _run(project, name, kill=kill)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert not (project / name / "frames" / "shard-0.h5").exists()   # never a half shard
    assert len(_resume_dirs(project, name)) == 1
    assert len(_records(project, name)) == done
    _rerun_reuses(project, name, done)


def test_kill9_of_the_process_group_with_workers(project):
    """kill -9 from outside, stage and its two loky workers at once, after its first records."""
    name = "external"
    proc = subprocess.Popen(_args(project, name, "--backend", "process", "--workers", "2"),
                            cwd=project, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 90
    while not _records(project, name) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    if proc.returncode != -signal.SIGKILL:
        pytest.fail("the stage finished before it could be killed (make the shard longer)")
    time.sleep(0.5)
    left = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(proc.pid)], capture_output=True,
                          text=True).stdout
    assert [ln for ln in left.splitlines() if " Z" not in ln] == [], f"still running: {left}"
    done = len(_records(project, name))
    assert done >= 1
    _rerun_reuses(project, name, done)


def test_other_params_discard_the_partial_results(project):
    name = "params"
    assert _run(project, name, kill="saved:3").returncode == -signal.SIGKILL
    (old,) = _resume_dirs(project, name)
    other = _run(project, name, "--max_side", "32", kill="saved:0")   # other params: a new folder
    assert other.returncode == -signal.SIGKILL
    (new,) = _resume_dirs(project, name)
    assert new != old and not old.exists()
    assert "made with other params" in other.stderr
    # and back to the first params: nothing of the max_side=32 attempt is reused either
    again = _run(project, name)
    assert again.returncode == 0, again.stderr
    assert _counts(again) == (0, N_ITEMS)
    assert not new.exists()
    _same_as_reference(project, name)


def test_corrupt_or_truncated_records_are_recomputed(project):
    name = "corrupt"
    assert _run(project, name, kill="saved:4").returncode == -signal.SIGKILL
    recs = _records(project, name)
    assert len(recs) == 4
    by_item = {pickle.loads(r.read_bytes().split(b"\n", 1)[1])["key"][0]: r for r in recs}
    assert sorted(by_item) == ["junk.avi", "v0.avi", "v1.avi", "v2.avi"]
    # damage three: v0's record truncated, a flipped bit in the junk file's (failure) record,
    # a flipped byte in v1's spill file (its record points at it); only v2 stays trusted
    by_item["v0.avi"].write_bytes(by_item["v0.avi"].read_bytes()[:-10])
    data = bytearray(by_item["junk.avi"].read_bytes())
    data[len(data) // 2] ^= 0x01
    by_item["junk.avi"].write_bytes(bytes(data))
    (spill,) = list(_resume_dirs(project, name)[0].glob("spill/*"))
    with open(spill, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = _run(project, name)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("not trusted") == 3, again.stderr
    assert _counts(again) == (1, N_ITEMS - 1)
    _same_as_reference(project, name)


def test_a_second_run_of_the_same_shard_stops_while_the_first_runs(project, tmp_path):
    from dfdetect.resume import ResumableShard, ResumeBusy

    out = tmp_path / "shard-0.h5"
    with ResumableShard(out, "sample_frames", {"a": 1}):
        with pytest.raises(ResumeBusy, match="another run is writing this shard"):
            ResumableShard(out, "sample_frames", {"a": 1}).__enter__()
        with ResumableShard(out, "sample_frames", {"a": 2}) as other:   # other params
            assert len(list(tmp_path.glob(".shard-0.h5.resume-*.tmp"))) == 2   # the held one kept
        assert not other.dir.exists()
    assert list(tmp_path.iterdir()) == []


DVC_YAML = """stages:
  sample:
    cmd: {python} {script} --shard 0 --manifest-dir manifest --out-dir frames --failures-dir failures
    deps:
      - manifest/shard-0.csv
    params:
      - sample_frames
    outs:
      - frames/shard-0.h5
      - failures/shard-0.csv
"""


def test_resume_under_dvc_repro(project):
    """dvc repro deletes the stage's outs before running it, not the resume folder beside them."""
    if shutil.which("dvc", path=os.path.dirname(sys.executable)) is None and shutil.which("dvc") is None:
        pytest.skip("dvc is not installed")
    dvc = shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")
    work = project / "dvcwork"
    work.mkdir()
    shutil.copytree(project / "manifest", work / "manifest")
    shutil.copy(project / "params.yaml", work / "params.yaml")
    (work / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable, script=SCRIPT))
    env = _env()
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=work, env=env, check=True)
    ok = subprocess.run([dvc, "repro", "-q"], cwd=work, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (work / "frames" / "shard-0.h5").read_bytes() == \
        (project / "ref" / "frames" / "shard-0.h5").read_bytes()
    # other params: dvc removes the committed shard-0.h5, runs the stage, which is killed after
    # two records (a new params value: the run-cache cannot restore the outputs either)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["sample_frames"]["max_side"] = 32
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    killed = subprocess.run([dvc, "repro", "-q"], cwd=work, env=_env("saved:2"), capture_output=True,
                            text=True)
    assert killed.returncode != 0
    assert not (work / "frames" / "shard-0.h5").exists()
    (folder,) = sorted((work / "frames").glob(".shard-0.h5.resume-*.tmp"))
    assert len(list((folder / "items").glob("*.rec"))) == 2
    again = subprocess.run([dvc, "repro"], cwd=work, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _counts(again) == (2, N_ITEMS - 2)
    assert not folder.exists()
    direct = _run(project, "dvc-ref", "--max_side", "32")     # the same params, uninterrupted
    assert direct.returncode == 0, direct.stderr
    assert (work / "frames" / "shard-0.h5").read_bytes() == \
        (project / "dvc-ref" / "frames" / "shard-0.h5").read_bytes()


def test_hyperspectral_reuses_finished_batches(tmp_path):
    """hyperspectral records whole model batches (their make-up is the same in every run):
    interrupted in its third batch, the rerun runs the model only on the batches left."""
    import torch

    from dfdetect.spectral import mst
    from dfdetect.spectral.reconstruct import reconstruct_shard
    from dfdetect.store import ShardWriter, remove_stale_temporaries

    faces = tmp_path / "faces" / "shard-0.h5"
    rng = np.random.default_rng(0)
    with ShardWriter(faces, stage="align_faces") as w:
        for vid, n in {"v/a.mp4": 3, "v/b.mp4": 2, "v/c.mp4": 3}.items():   # 8 faces: 4 batches
            w.add_video(vid, list(range(n)), face128=rng.integers(0, 256, (n, 16, 16, 3), np.uint8))
    torch.manual_seed(0)
    model = mst.build("smsa")
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self, stop_at=None):
            super().__init__()
            self.inner, self.stop_at = model, stop_at

        def forward(self, x):
            calls.append(len(x))
            if len(calls) == self.stop_at:
                raise KeyboardInterrupt("interrupted (test)")
            return self.inner(x)

    kw = dict(size=16, batch_size=2, progress=False, params={"size": 16})
    ref = tmp_path / "ref" / "shard-0.h5"
    reconstruct_shard(faces, ref, Counting(), **kw)
    assert len(calls) == 4
    out = tmp_path / "hsi" / "shard-0.h5"
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        reconstruct_shard(faces, out, Counting(stop_at=3), **kw)
    (folder,) = list(out.parent.glob(".shard-0.h5.resume-*.tmp"))
    assert len(list((folder / "items").glob("*.rec"))) == 2
    assert remove_stale_temporaries(out) == [] and folder.exists()   # not a pid-named temporary
    calls.clear()
    summary = reconstruct_shard(faces, out, Counting(), **kw)
    assert len(calls) == 2 and (summary["reused_batches"], summary["computed_batches"]) == (2, 2)
    assert out.read_bytes() == ref.read_bytes()
    assert not folder.exists()
