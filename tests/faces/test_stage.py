import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.faces.stage import run_align_faces
from dfdetect.store import ShardReader, ShardWriter

REPO = Path(__file__).resolve().parents[2]
PARAMS = {"detector": "hog", "fallback": "mtcnn", "detect_max_side": 640, "upsample": 1,
          "face_size": 64, "margin": 0.3, "defakehop_size": 128, "patch_size": 32}


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def frames_shard(tmp_path_factory, face_crop, tilted_face, write_frames_shard):
    path = tmp_path_factory.mktemp("frames") / "shard-0.h5"
    blank = np.zeros_like(face_crop)
    write_frames_shard(path, {
        "people/face.mp4": ([0, 10], [face_crop, face_crop[:, ::-1].copy()]),
        "people/blank.mp4": ([0, 1], [blank, blank + 40]),
        "people/mixed.mp4": ([3, 4, 7], [face_crop, blank, tilted_face[0]]),
    })
    # a broken item: a video group without frames
    with ShardWriter(path.with_name("broken.h5"), stage="sample_frames") as w:
        w.add_video("people/face.mp4", [0], frame=np.stack([face_crop]))
        w.add_video("people/noframes.mp4", [0])
        w.add_video("people/zero.mp4", [], frame=np.zeros((0,), np.uint8))
    return path


def test_stage_outputs_failures_and_byte_identical_reruns(tmp_path, frames_shard):
    import torch

    out1, fail1 = tmp_path / "faces" / "shard-0.h5", tmp_path / "failures" / "shard-0.csv"
    # the serial run in a process whose torch has 2 threads (an earlier Whisper load, a stage's
    # num_threads) must still give the single-threaded workers' bytes: MTCNN pins its own count
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        counts = run_align_faces(frames_shard, out1, fail1, PARAMS, executor="serial", progress=False)
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    assert counts["videos"] == 3 and counts["frames"] == 7 and counts["faces"] == 4
    assert counts["by_detector"] == {"hog": 3, "mtcnn": 1} and counts["videos_without_face"] == 1

    r = ShardReader(out1)
    assert sorted(r.videos()) == ["people/face.mp4", "people/mixed.mp4"]  # no face: not written
    assert r.frame_indices("people/mixed.mp4").tolist() == [3, 7]
    assert r.read("people/mixed.mp4", "detector").tolist() == ["hog", "mtcnn"]
    assert r.read("people/face.mp4", "face").shape == (2, 64, 64, 3)
    assert r.read("people/face.mp4", "face128").shape == (2, 128, 128, 3)
    assert r.read("people/face.mp4", "patches").shape == (2, 3, 32, 32, 3)
    assert r.read("people/face.mp4", "box").dtype == np.float32
    assert r.read("people/face.mp4", "landmarks").shape == (2, 68, 2)
    assert r.video_attrs("people/face.mp4")["fps"] == 25.0
    assert r.attrs["params"]["face_size"] == 64 and r.index().shape[0] == 4
    r.close()

    fails = pd.read_csv(fail1, keep_default_na=False)
    rows = set(zip(fails.video_id, fails.frame_index, fails.reason))
    assert ("people/mixed.mp4", 4, "no face found by hog nor mtcnn") in rows
    assert ("people/blank.mp4", 0, "no face found by hog nor mtcnn") in rows
    assert ("people/blank.mp4", -1, "no face in any of its 2 frames (no face found by hog nor mtcnn)") in rows
    assert len(fails) == 4 and set(fails.stage) == {"align_faces"}

    # a rerun in parallel (2 worker processes) gives the same bytes
    out2, fail2 = tmp_path / "faces2" / "shard-0.h5", tmp_path / "failures2" / "shard-0.csv"
    run_align_faces(frames_shard, out2, fail2, PARAMS, executor="process", workers=2, progress=False)
    assert sha(out1) == sha(out2) and sha(fail1) == sha(fail2)
    assert not [p for p in out1.parent.iterdir() if p.name != out1.name]  # no temp files left


def test_broken_video_is_recorded_and_the_rest_written(tmp_path, frames_shard):
    broken = frames_shard.with_name("broken.h5")
    out, fail = tmp_path / "shard-0.h5", tmp_path / "shard-0.csv"
    counts = run_align_faces(broken, out, fail, PARAMS, executor="serial", progress=False)
    assert counts["faces"] == 1
    fails = pd.read_csv(fail, keep_default_na=False)
    row = fails[fails.video_id == "people/noframes.mp4"].iloc[0]
    assert "no 'frame' field" in row.reason and row.path == str(broken)
    row = fails[fails.video_id == "people/zero.mp4"].iloc[0]
    assert row.reason == "the video has no sampled frames in the frames shard"
    assert ShardReader(out).videos() == ["people/face.mp4"]


def test_stage_cli_reads_params_and_overrides(tmp_path, frames_shard):
    import shutil

    (tmp_path / "data" / "frames").mkdir(parents=True)
    shutil.copy(frames_shard, tmp_path / "data" / "frames" / "shard-0.h5")
    (tmp_path / "params.yaml").write_text(
        "executor: {backend: serial, workers: 1}\n"
        "align_faces: {detector: hog, fallback: mtcnn, detect_max_side: 640, upsample: 1,\n"
        "  face_size: 224, margin: 0.3, defakehop_size: 128, patch_size: 32,\n"
        "  compression: {codec: zstd, level: 3}}\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO / "stages" / "align_faces.py"), "--shard", "0", "--face_size", "48",
           "--fallback", "''"]
    subprocess.run(cmd, cwd=tmp_path, check=True, env=env, capture_output=True)
    r = ShardReader(tmp_path / "data" / "faces" / "shard-0.h5")
    assert r.read("people/face.mp4", "face").shape[1:] == (48, 48, 3)
    assert r.attrs["params"]["fallback"] == "" and "workers" not in r.attrs["params"]
    assert r.attrs["params"]["compression"] == {"codec": "zstd", "level": 3}
    assert r.read("people/face.mp4", "face128").std() > 20  # zstd-compressed, read back through hdf5plugin
    fails = pd.read_csv(tmp_path / "data" / "failures" / "align_faces" / "shard-0.csv", keep_default_na=False)
    assert (fails.reason == "no face found by hog").sum() == 4  # blank x2, mixed blank + tilted
