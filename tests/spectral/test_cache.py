"""The HSI cache: exact float16 round trip, one chunk per face, band statistics, the stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from dfdetect.spectral import cache, mst
from dfdetect.spectral.reconstruct import reconstruct_shard
from dfdetect.store import ShardWriter

REPO = Path(__file__).resolve().parents[2]


def _cubes(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 1.0, (n, 31, 1, 1)).astype(np.float32)
    return base * rng.uniform(0.5, 1.0, (n, 1, size, size)).astype(np.float32)


@pytest.mark.parametrize("codec", [None, {"codec": "gzip", "level": 4, "shuffle": True}, "none"])
def test_round_trip_is_exact_fp16_and_one_chunk_per_face(tmp_path, codec):
    path = tmp_path / "shard-0.h5"
    a, b = _cubes(3, seed=1), _cubes(2, seed=2)
    with cache.HSIWriter(path, params={"size": 16}, codec=codec, model_info={"variant": "smsa"}) as w:
        w.add("real/a.mp4", [0, 5, 9], a)
        w.add("fake/b.mp4", [1, 2], b)
    c = cache.HSICache(tmp_path)
    for vid, cubes in (("real/a.mp4", a), ("fake/b.mp4", b)):
        for row, cube in enumerate(cubes):
            got = c.read(vid, row)
            assert got.dtype == torch.float32 and got.shape == (31, 16, 16)
            assert torch.equal(got, torch.from_numpy(cube.astype(np.float16)).float())
            assert np.array_equal(c.read_numpy(vid, row), cube.astype(np.float16))
    assert torch.equal(c.read_frame("real/a.mp4", 9), c.read("real/a.mp4", 2))
    lay = cache.chunk_layout(path, "real/a.mp4")
    assert lay["dtype"] == "float16" and lay["chunks"] == (1, 31, 16, 16) and lay["num_chunks"] == 3
    # per-band statistics of everything written
    stats = c.band_stats()[0]
    both = np.concatenate([a, b]).astype(np.float16).astype(np.float64)
    assert stats["count"] == 5 * 16 * 16
    assert np.allclose(stats["mean"], both.mean(axis=(0, 2, 3)), atol=1e-5)
    assert np.allclose(stats["max"], both.max(axis=(0, 2, 3)), atol=1e-6)
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["model"])["variant"] == "smsa"
        assert f["videos"]["real%2Fa.mp4"]["band_mean"].shape == (3, 31)
    c.close()


def test_fp16_conversion_never_overflows():
    x = np.array([[[[1e6, -1e6, 0.5]]]], dtype=np.float32)
    assert np.isfinite(cache.to_fp16(x)).all()


def _face_shard(path: Path, videos: dict[str, int], size: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    with ShardWriter(path, stage="align_faces") as w:
        for vid, n in videos.items():
            faces = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
            w.add_video(vid, list(range(0, 2 * n, 2)), face128=faces)


def test_reconstruct_shard_batches_across_videos(tmp_path):
    faces = tmp_path / "faces" / "shard-0.h5"
    _face_shard(faces, {"v/one.mp4": 3, "v/two.mp4": 1, "v/three.mp4": 2})
    torch.manual_seed(0)
    model = mst.build("smsa")
    out = tmp_path / "hsi" / "shard-0.h5"
    summary = reconstruct_shard(faces, out, model, size=16, batch_size=4, progress=False)
    assert summary["faces"] == 6
    c = cache.HSICache(out.parent)
    assert sorted(c.store.videos()) == ["v/one.mp4", "v/three.mp4", "v/two.mp4"]
    # the cached cube equals MST++ run on that face alone (batching changes nothing beyond fp16)
    from dfdetect.spectral.reconstruct import prepare_faces
    from dfdetect.store import ShardReader

    x = prepare_faces(ShardReader(faces).read("v/three.mp4", "face128")[1:2], 16)
    with torch.no_grad():
        raw = model.eval()(torch.from_numpy(x))[0].numpy()
    assert raw.min() < 0                               # an untrained MST++ leaves [0, 1] ...
    ref = np.clip(raw, 0, 1).astype(np.float16)        # ... and the cache holds the clipped cube
    got = np.concatenate([c.read_numpy(v, i)[None] for v in c.store.videos()
                          for i in range(len(c.store.frame_indices(v)))])
    assert got.min() >= 0 and got.max() <= 1
    info = json.loads(c.store.shards[0].file.attrs["model"])
    assert (info["engine"], info["precision"]) == ("torch", "fp32")
    assert np.array_equal(c.read_numpy("v/three.mp4", 1), ref) or \
        np.abs(c.read_numpy("v/three.mp4", 1).astype(np.float32) - ref.astype(np.float32)).max() < 2e-3


def test_hyperspectral_stage_cli(tmp_path):
    faces = tmp_path / "faces"
    _face_shard(faces / "shard-1.h5", {"a.mp4": 2})
    models = tmp_path / "mst"
    mst.save_weights(mst.build("flexi"), models / "mst_flexi.pt")
    out = tmp_path / "hsi"
    cmd = [sys.executable, str(REPO / "stages/hyperspectral.py"), "--params", str(REPO / "params.yaml"),
           "--shard", "1", "--faces", str(faces), "--models", str(models), "--out", str(out),
           "--failures", str(tmp_path / "fail.csv"), "--size", "16", "--device", "cpu",
           "--threads", "1", "--checkpoint", ""]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, timeout=120)
    c = cache.HSICache(out)
    assert c.read("a.mp4", 1).shape == (31, 16, 16)
    assert json.loads(c.store.shards[0].file.attrs["model"])["variant"] == "flexi"


@pytest.mark.slow
def test_openvino_engine_matches_torch_and_is_recorded(tmp_path):
    pytest.importorskip("openvino")
    from dfdetect.spectral.reconstruct import make_engine

    torch.manual_seed(0)
    model = mst.build("flexi")
    faces = tmp_path / "faces" / "shard-0.h5"
    _face_shard(faces, {"v/one.mp4": 3})                 # batches of 2: the last one padded
    reconstruct_shard(faces, tmp_path / "hsi" / "shard-0.h5", model, size=16, batch_size=2,
                      progress=False, engine="openvino")
    c = cache.HSICache(tmp_path / "hsi")
    info = json.loads(c.store.shards[0].file.attrs["model"])
    assert (info["engine"], info["precision"]) == ("openvino", "fp32")
    from dfdetect.spectral.reconstruct import prepare_faces
    from dfdetect.store import ShardReader

    x = prepare_faces(ShardReader(faces).read("v/one.mp4", "face128"), 16)
    ref = np.clip(make_engine(model, "torch", "fp32")(x), 0, 1)
    got = np.stack([c.read_numpy("v/one.mp4", i).astype(np.float32) for i in range(3)])
    assert np.abs(got - ref).max() < 2e-3                # fp16 storage of equal fp32 outputs


@pytest.mark.slow
def test_openvino_bf16_is_close():
    pytest.importorskip("openvino")
    from dfdetect.spectral.reconstruct import make_engine

    torch.manual_seed(0)
    model = mst.build("flexi")
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 16, 16)).astype(np.float32)
    ref = make_engine(model, "torch", "fp32")(x)
    from dfdetect.spectral.reconstruct import BF16Unavailable

    try:
        engine = make_engine(model, "openvino", "bf16", batch_size=2, size=16)
    except BF16Unavailable as err:      # a CPU capability (or the AVX2 pin), named in the error
        assert "hyperspectral.precision: fp32" in str(err)
        pytest.skip(str(err))
    assert np.abs(engine(x) - ref).max() < 5e-2


def test_checkpoint_param_resolves_files_and_placeholder_folders(tmp_path):
    from dfdetect.spectral.reconstruct import resolve_checkpoint

    assert resolve_checkpoint("") is None
    assert resolve_checkpoint(REPO / "data" / "mst_checkpoint") is None      # README only
    (tmp_path / "README.md").write_text("x")
    (tmp_path / "mst_plus_plus.pth").write_bytes(b"")
    assert resolve_checkpoint(tmp_path) == tmp_path / "mst_plus_plus.pth"
    (tmp_path / "other.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="2 checkpoints"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        resolve_checkpoint(tmp_path / "missing")


def test_classifier_params_do_not_invalidate_the_cache():
    """DVC reruns a stage only when its deps/params change: the cache stage must not depend on
    the classifier's params section or code."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = dvc["stages"]["hyperspectral"]["do"]
    assert stage["params"] == ["hyperspectral"]
    assert not any("detectors" in d or d.startswith("src/dfdetect/nn") for d in stage["deps"])
    assert dvc["stages"]["train_mst"]["params"] == ["seed", "train_mst"]
    # the external inputs named by params are DVC deps too (ARAD-1K folder, official checkpoint)
    assert "${train_mst.arad_root}" in dvc["stages"]["train_mst"]["deps"]
    assert "${hyperspectral.checkpoint}" in stage["deps"]
    assert not any("detectors" in d for d in dvc["stages"]["train_mst"]["deps"])
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert "hyperfake" in params["models"] and "hyperfake" not in params["hyperspectral"]
    # and train@hyperfake does consume the cache
    assert dvc["vars"][0]["train_inputs"]["hyperfake"]["a"] == "data/hsi"


def test_reconstruct_shard_runs_mst_at_its_own_thread_count(tmp_path):
    """MST++'s bytes depend on torch's thread count, so ``threads`` holds while the model runs,
    whatever the caller's count, and the caller's count is back after; 0 keeps the caller's."""
    faces = tmp_path / "faces" / "shard-0.h5"
    _face_shard(faces, {"v/one.mp4": 3})
    torch.manual_seed(0)
    inner = mst.build("smsa")
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return inner(x)

    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    reconstruct_shard(faces, tmp_path / "a" / "shard-0.h5", Spy(), size=16, batch_size=2,
                      progress=False, threads=other)
    assert seen == [other, other] and torch.get_num_threads() == before
    seen.clear()
    reconstruct_shard(faces, tmp_path / "b" / "shard-0.h5", Spy(), size=16, batch_size=2,
                      progress=False, threads=0)
    assert seen == [before, before]

