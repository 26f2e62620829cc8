"""face_embeddings: dlib descriptors from the stored crops, the shard it writes, FaceNet from a
local file (weights_only), and the errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.faceid.embed import dlib_descriptor, crop_landmarks, embed_shard, load_facenet
from dfdetect.failures import Failures
from dfdetect.store import ShardReader, ShardWriter

SIZE, MARGIN = 224, 0.3


@pytest.fixture(scope="module")
def astronaut_face():
    """(full photo, its dlib 68 landmarks, the aligned 224 / 0.3 crop, dlib's own descriptor of
    the full photo)."""
    import dlib
    from skimage import data

    from dfdetect.faces.align import align_face
    from dfdetect.faces.models import dlib_hog_detector, dlib_model_path, dlib_shape_predictor

    img = np.ascontiguousarray(data.astronaut())
    det = dlib_hog_detector()(img, 1)[0]
    shape = dlib_shape_predictor()(img, det)
    lm = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
    face, _ = align_face(img, lm, SIZE, MARGIN)
    rec = dlib.face_recognition_model_v1(str(dlib_model_path("face_recognition")))
    full = np.asarray(rec.compute_face_descriptor(img, shape, 0, 0.25), np.float32)
    return img, lm, face, full


def _faces_shard(path: Path, face, lm, bad_landmarks: bool = True) -> None:
    with ShardWriter(path, stage="align_faces", params={"face_size": SIZE, "margin": MARGIN}) as w:
        w.add_video("people/a.mp4", [0, 5], face=np.stack([face, face[:, ::-1].copy()]),
                    landmarks=np.stack([lm, lm]).astype(np.float32))
        w.add_video("people/empty.mp4", [], face=np.zeros((0, SIZE, SIZE, 3), np.uint8),
                    landmarks=np.zeros((0, 68, 2), np.float32))
        if bad_landmarks:
            nan = np.full((68, 2), np.nan, np.float32)
            w.add_video("people/bad.mp4", [2, 3], face=np.stack([face, face]),
                        landmarks=np.stack([lm.astype(np.float32), nan]))


def test_crop_descriptor_close_to_full_frame(astronaut_face):
    _, lm, face, full = astronaut_face
    e = dlib_descriptor(face, crop_landmarks(lm, SIZE, MARGIN))
    assert e.shape == (128,) and e.dtype == np.float32
    assert np.linalg.norm(e - full) < 0.1           # dlib's same-person threshold is 0.6
    # the landmarks must be mapped into the crop: full-frame coordinates give another chip
    wrong = dlib_descriptor(face, lm)
    assert np.linalg.norm(wrong - full) > 0.1


def test_shard_round_trip_failures_and_reruns(tmp_path, astronaut_face):
    _, lm, face, full = astronaut_face
    faces = tmp_path / "faces" / "shard-0.h5"
    _faces_shard(faces, face, lm)
    failures = Failures("face_embeddings")
    out = tmp_path / "emb" / "shard-0.h5"
    counts = embed_shard(faces, out, {"embedder": "auto"}, failures=failures, executor="serial",
                         progress=False)
    assert counts["faces"] == 3 and counts["embedder"] == "dlib_face_recognition_resnet_model_v1"
    r = ShardReader(out)
    assert sorted(r.videos()) == ["people/a.mp4", "people/bad.mp4"]   # no face: absent
    assert r.frame_indices("people/a.mp4").tolist() == [0, 5]
    assert r.frame_indices("people/bad.mp4").tolist() == [2]           # the NaN-landmark face: a row
    emb = r.read("people/a.mp4", "embedding")
    assert emb.shape == (2, 128) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.linalg.norm(emb[0] - full) < 0.1        # landmarks mapped into the stored crop
    assert r.attrs["embedder"].startswith("{") and '"dim": 128' in r.attrs["embedder"]
    assert r.attrs["params"]["embedder"] == "auto"
    r.close()
    rows = failures.frame()
    assert set(zip(rows.video_id, rows.frame_index.astype(int))) == {
        ("people/bad.mp4", 3), ("people/empty.mp4", -1)}
    assert rows["reason"].str.contains("stored landmarks must be 68 finite points").any()
    out2 = tmp_path / "emb2" / "shard-0.h5"
    embed_shard(faces, out2, {"embedder": "dlib"}, executor="process", workers=2, progress=False)
    a, b = ShardReader(out), ShardReader(out2)
    assert np.array_equal(a.read("people/a.mp4", "embedding"), b.read("people/a.mp4", "embedding"))


def test_facenet_from_a_local_file(tmp_path, astronaut_face):
    import torch

    from dfdetect.nn.compat import ensure_torchvision

    ensure_torchvision()
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    state = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    state["logits.weight"] = torch.zeros(3, 512)     # a classifier head (VGGFace2: 8631 x 512): ignored
    state["logits.bias"] = torch.zeros(3)
    weights = tmp_path / "vggface2.pt"
    torch.save(state, weights)
    model = load_facenet(weights)
    assert not hasattr(model, "logits") or not model.classify
    _, lm, face, _ = astronaut_face
    faces = tmp_path / "faces" / "shard-0.h5"
    _faces_shard(faces, face, lm, bad_landmarks=False)
    out = tmp_path / "emb" / "shard-0.h5"
    counts = embed_shard(faces, out, {"embedder": "auto", "facenet_weights": str(weights), "threads": 1},
                         progress=False)
    assert counts["embedder"] == "facenet_inception_resnet_v1" and counts["dim"] == 512
    with ShardReader(out) as r:
        emb = r.read("people/a.mp4", "embedding")
        assert emb.shape == (2, 512)
        assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        assert hashlib.sha256(weights.read_bytes()).hexdigest() in r.attrs["embedder"]


def test_facenet_errors_name_the_file(tmp_path):
    faces = tmp_path / "shard-0.h5"
    with pytest.raises(ValueError, match="facenet_weights"):
        embed_shard(faces, tmp_path / "o.h5", {"embedder": "facenet"}, progress=False)
    missing = tmp_path / "nowhere" / "vggface2.pt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        embed_shard(faces, tmp_path / "o.h5", {"embedder": "facenet", "facenet_weights": str(missing)},
                    progress=False)
    pickled = tmp_path / "pickled.pt"
    import torch

    torch.save({"w": pd.DataFrame({"a": [1]})}, pickled)       # pickled code: refused (weights_only)
    with pytest.raises(Exception, match="pickled.pt"):
        load_facenet(pickled)
    assert not (tmp_path / "o.h5").exists()


def test_stage_missing_weights_file_exits_2_naming_it(tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    missing = tmp_path / "vggface2.pt"
    proc = subprocess.run([sys.executable, str(repo / "stages" / "face_embeddings.py"), "--shard", "0",
                           "--params", str(repo / "params.yaml"), "--embedder", "facenet",
                           "--facenet_weights", str(missing), "--faces", str(tmp_path / "faces"),
                           "--out", str(tmp_path / "emb"), "--failures", str(tmp_path / "f.csv")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(missing) in proc.stderr and "missing file" in proc.stderr
    assert not (tmp_path / "emb").exists()
