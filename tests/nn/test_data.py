"""FaceDataset over the sharded face store: reads, transforms, DataLoader workers, subsampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.nn.data import FaceDataset, FaceTransform, subsample
from dfdetect.nn.train import make_loader
from dfdetect.store import ShardWriter, Store


@pytest.fixture
def faces(tmp_path):
    """2 videos x 3 frames of 32x32 faces, in two shards."""
    rng = np.random.default_rng(0)
    stored = {}
    for shard, (vid, frames) in enumerate([("a/real.mp4", [0, 4, 8]), ("b/fake.mp4", [1, 2, 9])]):
        arr = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        with ShardWriter(tmp_path / "faces" / f"shard-00{shard}.h5") as w:
            w.add_video(vid, frames, face=arr)
        for f, a in zip(frames, arr):
            stored[(vid, f)] = a
    index = Store(tmp_path / "faces").index()
    index["y"] = (index["video_id"] == "b/fake.mp4").astype(int)
    return tmp_path / "faces", index, stored


def test_reads_one_item_per_index(faces):
    directory, index, stored = faces
    ds = FaceDataset(directory, index)
    assert len(ds) == 6
    for i, row in index.iterrows():
        img, y, j = ds[i]
        assert j == i and y == row["y"]
        np.testing.assert_array_equal(img, stored[(row["video_id"], row["frame_index"])])
    # without shard/row columns the item is located by frame index
    ds2 = FaceDataset(directory, index[["video_id", "frame_index", "y"]])
    np.testing.assert_array_equal(ds2[4][0], ds[4][0])
    with pytest.raises(IndexError):
        ds[6]


def test_missing_item_names_video_and_frame(faces):
    directory, index, _ = faces
    bad = pd.DataFrame({"video_id": ["a/real.mp4"], "frame_index": [5], "y": [0]})
    with pytest.raises(RuntimeError, match="a/real.mp4.*frame 5"):
        FaceDataset(directory, bad)[0]


def test_transform_resizes_normalises_and_flips_reproducibly(faces):
    directory, index, stored = faces
    tf = FaceTransform(16, mean=(0, 0, 0), std=(1, 1, 1), hflip=0.5)
    ds = FaceDataset(directory, index, transform=tf, seed=3)
    x, _, _ = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    flips = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        a, b = ds[2][0], ds[2][0]
        assert torch.equal(a, b)  # same (seed, epoch, index) -> same augmentation
        flips.append(a)
    # a flip does happen for some epochs and not for others (p = 0.5)
    plain = FaceTransform(16, mean=(0, 0, 0), std=(1, 1, 1))(ds.read(2))
    n_same = sum(torch.equal(f, plain) for f in flips)
    assert 0 < n_same < 8
    assert any(torch.equal(f, plain.flip(-1)) for f in flips)


def test_dataloader_workers_give_the_same_batches(faces):
    directory, index, _ = faces
    ds = FaceDataset(directory, index, transform=FaceTransform(32, hflip=0.5), seed=1)
    ds.store.read("a/real.mp4", "face")  # the parent has the files open before forking
    serial = list(make_loader(ds, 4, shuffle=True, seed=7, num_workers=0))
    workers = list(make_loader(ds, 4, shuffle=True, seed=7, num_workers=2))
    assert len(serial) == len(workers) == 2
    for (xa, ya, ia), (xb, yb, ib) in zip(serial, workers):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, yb)
    assert sorted(torch.cat([b[2] for b in serial]).tolist()) == list(range(6))


def test_subsample_is_stratified_deterministic_and_ordered():
    items = pd.DataFrame({"video_id": [f"v{i}" for i in range(100)], "frame_index": 0,
                          "y": [1] * 80 + [0] * 20})
    a = subsample(items, 10, seed=1)
    b = subsample(items, 10, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 10 and int(a["y"].sum()) == 8
    assert list(a["video_id"]) == sorted(a["video_id"], key=lambda v: int(v[1:]))
    assert not subsample(items, 10, seed=2).equals(a)
    assert len(subsample(items, 0, seed=1)) == 100
    assert len(subsample(items, 500, seed=1)) == 100
