import os
import hashlib

import h5py
import numpy as np
import pytest

from dfdetect.store import (ShardReader, ShardWriter, Store, atomic_path, compression_kwargs,
                            shard_of, shard_path, write_json_atomic)


def _write(path, videos, **kw):
    with ShardWriter(path, stage="t", params={"a": 1}, **kw) as w:
        for vid, (frames, faces, boxes) in videos.items():
            w.add_video(vid, frames, attrs={"fps": 25.0}, face=faces, box=boxes)


def _videos(rng):
    return {
        "ffpp/c23/000.mp4": (np.array([0, 5, 9]), rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8),
                             rng.random((3, 4), dtype=np.float32)),
        "celeb/000.mp4": (np.array([2]), rng.integers(0, 255, (1, 16, 16, 3), dtype=np.uint8),
                          rng.random((1, 4), dtype=np.float32)),
    }


def test_round_trip_and_index(tmp_path):
    vids = _videos(np.random.default_rng(0))
    path = tmp_path / "shard-0.h5"
    _write(path, vids)
    r = ShardReader(path)
    assert sorted(r.videos()) == sorted(vids)
    for vid, (frames, faces, boxes) in vids.items():
        np.testing.assert_array_equal(r.frame_indices(vid), frames)
        np.testing.assert_array_equal(r.read(vid, "face"), faces)
        np.testing.assert_array_equal(r.read(vid, "box"), boxes)
        np.testing.assert_array_equal(r.read_item(vid, int(frames[-1]), "face"), faces[-1])
    idx = r.index()
    assert len(idx) == 4 and set(idx.columns) >= {"video_id", "frame_index", "row"}
    assert r.attrs["params"] == {"a": 1}
    with pytest.raises(KeyError):
        r.read_item("ffpp/c23/000.mp4", 1, "face")


def test_one_chunk_per_item(tmp_path):
    path = tmp_path / "shard-0.h5"
    _write(path, _videos(np.random.default_rng(0)))
    with h5py.File(path) as f:
        ds = f["videos"]["ffpp%2Fc23%2F000.mp4"]["face"]
        assert ds.chunks == (1, 16, 16, 3)
        assert ds.compression == "gzip"


def test_byte_identical_rewrites(tmp_path):
    digests = []
    for i in range(2):
        path = tmp_path / f"run{i}" / "shard-0.h5"
        _write(path, _videos(np.random.default_rng(0)))
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_interrupted_write_leaves_nothing(tmp_path):
    path = tmp_path / "shard-0.h5"
    with pytest.raises(RuntimeError):
        with ShardWriter(path) as w:
            w.add_video("a.mp4", [0], face=np.zeros((1, 4, 4, 3), np.uint8))
            raise RuntimeError("killed")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        with ShardWriter(tmp_path / "s.h5") as w:
            w.add_video("a.mp4", [0, 1], face=np.zeros((1, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="increasing"):
        with ShardWriter(tmp_path / "s.h5") as w:
            w.add_video("a.mp4", [3, 1], face=np.zeros((2, 4, 4, 3), np.uint8))


def test_store_over_shards(tmp_path):
    vids = _videos(np.random.default_rng(1))
    for s, (vid, val) in enumerate(sorted(vids.items())):
        _write(shard_path(tmp_path, s), {vid: val})
    st = Store(tmp_path)
    assert st.videos() == sorted(vids)
    np.testing.assert_array_equal(st.read("celeb/000.mp4", "face"), vids["celeb/000.mp4"][1])
    assert len(st.index()) == 4
    with pytest.raises(FileNotFoundError):
        Store(tmp_path / "empty")


def test_fast_codec(tmp_path):
    kw = compression_kwargs({"codec": "blosc-lz4", "level": 5, "shuffle": True})
    assert "compression" in kw
    x = np.random.default_rng(0).standard_normal((2, 31, 8, 8)).astype(np.float16)
    with ShardWriter(tmp_path / "shard-0.h5", compression={"hsi": {"codec": "blosc-lz4"}}) as w:
        w.add_video("v", [0, 1], hsi=x)
    np.testing.assert_array_equal(ShardReader(tmp_path / "shard-0.h5").read("v", "hsi"), x)


def test_shard_of_is_stable():
    assert shard_of("a/b.mp4", 4) == shard_of("a/b.mp4", 4)
    counts = np.bincount([shard_of(f"v{i}.mp4", 4) for i in range(400)], minlength=4)
    assert counts.min() > 60


def test_atomic_json(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"auc": np.float64(0.5), "x": np.arange(2)})
    assert (tmp_path / "m.json").read_text().startswith("{")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(tmp_path / "m.json") as tmp:
            tmp.write_text("partial")
            1 / 0
    assert "auc" in (tmp_path / "m.json").read_text()


@pytest.mark.parametrize("spec", [{"codec": "gzip", "level": 1, "shuffle": True},
                                  {"codec": "gzip", "level": 4, "shuffle": False}, "none"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float16])
def test_chunks_encoded_in_workers_give_the_same_file(tmp_path, spec, dtype):
    from dfdetect.store import Encoded, encode_items

    rng = np.random.default_rng(0)
    x = (rng.random((3, 8, 8, 3)) * 200).astype(dtype)
    paths = []
    for mode in ("writer", "encoded"):
        path = tmp_path / mode / "shard-0.h5"
        data = x if mode == "writer" else encode_items(x, spec)
        if mode == "encoded":
            assert isinstance(data, Encoded)
        with ShardWriter(path, compression={"frame": spec}) as w:
            w.add_video("v.mp4", [0, 4, 9], frame=data)
        paths.append(path)
        np.testing.assert_array_equal(ShardReader(path).read("v.mp4", "frame"), x)
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_plugin_codecs_are_left_to_the_writer():
    from dfdetect.store import encode_items

    x = np.zeros((2, 4, 4, 3), np.uint8)
    assert encode_items(x, {"codec": "zstd"}) is x


def test_atomic_dir_replaces_whole_or_nothing(tmp_path):
    from dfdetect.store import atomic_dir

    out = tmp_path / "models" / "m"
    with atomic_dir(out) as tmp:
        (tmp / "w.bin").write_bytes(b"1")
    assert (out / "w.bin").read_bytes() == b"1"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "w.bin").write_bytes(b"2")
            raise RuntimeError("killed")
    assert (out / "w.bin").read_bytes() == b"1"
    with atomic_dir(out) as tmp:
        (tmp / "new.bin").write_bytes(b"3")
    assert sorted(p.name for p in out.iterdir()) == ["new.bin"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]


def test_torch_checkpoints_do_not_depend_on_their_file_name(tmp_path):
    import torch

    from dfdetect.store import save_torch_atomic

    obj = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"a": 1}}
    save_torch_atomic(obj, tmp_path / "one.pt")
    save_torch_atomic(obj, tmp_path / "sub" / "two.pt")
    assert (tmp_path / "one.pt").read_bytes() == (tmp_path / "sub" / "two.pt").read_bytes()
    back = torch.load(tmp_path / "one.pt", weights_only=True)
    assert torch.equal(back["state_dict"]["w"], obj["state_dict"]["w"])


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)   # exited and reaped: no such process any more


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_rerun_removes_only_stale_temporaries_of_its_output(tmp_path, kind):
    import subprocess
    import sys

    from dfdetect.store import atomic_dir

    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "model"
        stale = tmp_path / f".model.{dead}-abc123.tmp"
        stale_old = tmp_path / f".model.{dead}-def456.old.tmp"
        busy = tmp_path / f".model.{live.pid}-xyz789.tmp"
        other = tmp_path / f".model2.{dead}-abc123.tmp"          # another output's temporary
        legacy = tmp_path / ".model.k3j4h5.tmp"                   # no pid: owner unknown, kept
        for p in (stale, busy, other, legacy):
            p.write_bytes(b"partial")
        stale_old.mkdir()
        (stale_old / "model").mkdir()
        stale_work = tmp_path / f".model.{dead}-ghi012.work.tmp"    # a helper's tagged temp_dir
        stale_work.mkdir()
        if kind == "file":
            with atomic_path(out) as tmp:
                assert tmp.name.startswith(f".model.{os.getpid()}-") and tmp.name.endswith(".tmp")
                tmp.write_text("done")
        else:
            with atomic_dir(out) as tmp:
                assert tmp.name.startswith(f".model.{os.getpid()}-")
                (tmp / "weights.npz").write_text("done")
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left == sorted([out.name, busy.name, other.name, legacy.name]), left
    finally:
        live.kill()
        live.wait()


def test_atomic_dir_replacing_leaves_no_temporaries(tmp_path):
    from dfdetect.store import atomic_dir, temporaries

    for text in ("one", "two"):
        with atomic_dir(tmp_path / "m") as tmp:
            (tmp / "w.txt").write_text(text)
    assert (tmp_path / "m" / "w.txt").read_text() == "two"
    assert temporaries(tmp_path / "m") == [] and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
