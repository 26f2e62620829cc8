"""`dfdetect predict` makes face embeddings (the triplet detectors' input) as the DAG does:
frames -> faces -> face_emb, with the face_embeddings section's embedder."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dfdetect.failures import Failures
from dfdetect.predict.features import Preprocessor, collect_videos, probe_manifest, steps_for
from dfdetect.store import ShardReader

# --import-mode=importlib keeps tests/ off sys.path: the predict tests' helper module by its path
_spec = importlib.util.spec_from_file_location("_predict_helpers_emb",
                                               Path(__file__).resolve().parents[1] / "predict_helpers.py")
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)


def test_steps_for_face_embeddings():
    assert steps_for(["face_emb"]) == ["frames", "faces", "face_emb"]
    assert steps_for(["face_emb", "saab"]) == ["frames", "faces", "saab", "face_emb"]


def test_predict_preprocessor_embeds_faces_like_the_stage(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    from dfdetect.faceid.embed import embed_shard

    params = yaml.safe_load((H.REPO / "params.yaml").read_text())
    for key, value in H.TINY_PARAMS.items():
        params[key] = {**params.get(key, {}), **value}
    videos = tmp_path / "videos"
    videos.mkdir()
    H.make_video(videos / "real_00.mp4", seed=0, fake=False)
    H.make_video(videos / "fake_01.mp4", seed=1, fake=True)
    fails = Failures("predict")
    manifest = probe_manifest(collect_videos([videos], fails), fails, executor="serial")
    pre = Preprocessor(params, tmp_path / "models", ["frames", "faces", "face_emb"], executor="serial", workers=1)
    assert not pre.unavailable and "dlib" in pre.versions["face_emb"]["name"]
    sources = pre.run(manifest, tmp_path / "work", fails)
    emb, faces = sources["face_emb"] / "shard-0.h5", sources["faces"] / "shard-0.h5"
    with ShardReader(faces) as f, ShardReader(emb) as e:
        assert sorted(e.videos()) == sorted(f.videos()) == sorted(manifest["video_id"])
        vid = e.videos()[0]
        assert np.array_equal(e.frame_indices(vid), f.frame_indices(vid))
        got = {v: e.read(v, "embedding") for v in e.videos()}
    assert all(g.shape[1] == 128 and np.isfinite(g).all() for g in got.values())
    # the DAG's stage function on the same faces shard gives the same embeddings
    ref = tmp_path / "ref.h5"
    embed_shard(faces, ref, {k: v for k, v in params["face_embeddings"].items()}, executor="serial",
                progress=False)
    with ShardReader(ref) as r:
        for v, g in got.items():
            assert np.array_equal(r.read(v, "embedding"), g)
    assert not [r for r in fails.rows if r.get("stage") == "face_embeddings"], fails.rows


def test_unloadable_facenet_weights_block_the_step(tmp_path):
    params = yaml.safe_load((H.REPO / "params.yaml").read_text())
    params["face_embeddings"] = {**params["face_embeddings"], "embedder": "facenet",
                                 "facenet_weights": str(tmp_path / "missing.pt")}
    pre = Preprocessor(params, tmp_path / "models", ["frames", "faces", "face_emb"], executor="serial")
    assert "missing.pt" in pre.unavailable["face_emb"]
    assert pre.blocked(["face_emb"]) == pre.unavailable["face_emb"]
