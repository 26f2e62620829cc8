import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from dfdetect.failures import ItemError
from dfdetect.store import ShardReader
from dfdetect.video.decode import decode_all
from dfdetect.video.indices import uniform
from dfdetect.video.sample import decoder_threads, sample_shard, sample_video

REPO = Path(__file__).resolve().parents[2]
PARAMS = {"strategy": "uniform", "num_frames": 8, "every_k": 10, "fps": 1.0, "max_side": 0,
          "decoder": "pyav", "threads": 0, "compression": {"codec": "gzip", "level": 4, "shuffle": True}}


@pytest.mark.parametrize("strategy,expected", [
    ("uniform", uniform(60, 8).tolist()), ("every_k", [0, 10, 20, 30, 40, 50]),
    ("fps", [0, 25, 50]), ("all", list(range(60)))])
def test_sample_video_strategies(videos, frame_number, strategy, expected):
    out = sample_video(videos["gop10"], {**PARAMS, "strategy": strategy})
    assert out["frame_index"].tolist() == expected
    assert [frame_number(f) for f in out["frames"]] == expected
    assert out["frames"].dtype == np.uint8 and out["frames"].shape[1:] == (64, 64, 3)
    assert out["attrs"]["n_frames"] == 60 and out["attrs"]["fps"] == pytest.approx(25.0)
    assert out["notes"] == []


def test_short_video_gives_all_frames(videos):
    out = sample_video(videos["short"], {**PARAMS, "num_frames": 32})
    assert out["frame_index"].tolist() == [0, 1, 2, 3, 4]


def test_truncated_video_samples_what_exists(videos, frame_number):
    out = sample_video(videos["trunc_data"], PARAMS)
    n = out["attrs"]["n_frames"]
    assert 0 < n < 60 and out["attrs"]["n_frames_container"] == 60
    assert len(decode_all(videos["trunc_data"])) == n       # exactly the decodable frames
    assert out["frame_index"].tolist() == uniform(n, 8).tolist()
    assert [frame_number(f) for f in out["frames"]] == out["frame_index"].tolist()
    assert any("truncated" in note for note in out["notes"])


@pytest.mark.parametrize("name,match", [("trunc_moov", "cannot open"), ("junk", "cannot open"),
                                        ("empty", "empty file"), ("header_only", "zero-frame"),
                                        ("audio_only", "no video stream")])
def test_bad_videos_raise(videos, name, match):
    with pytest.raises(ItemError, match=match) as exc:
        sample_video(videos[name], PARAMS)
    assert exc.value.path == str(videos[name])


def test_decoder_threads():
    assert decoder_threads({"threads": 3}, "process", 2) == 3
    assert decoder_threads({"threads": 0}, "serial", 2) == 0
    assert decoder_threads({}, "process", 64) == 1


def _manifest(tmp_path, videos) -> Path:
    root = tmp_path / "dataset"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    shutil.copy(videos["gop10"], root / "real" / "a.mp4")
    shutil.copy(videos["fast"], root / "fake" / "a.mp4")         # same basename, other folder
    shutil.copy(videos["trunc_data"], root / "fake" / "cut.mp4")
    shutil.copy(videos["junk"], root / "fake" / "junk.mp4")
    rows = [("real/a.mp4", "real"), ("fake/a.mp4", "fake"), ("fake/cut.mp4", "fake"),
            ("fake/junk.mp4", "fake"), ("fake/missing.mp4", "fake")]
    df = pd.DataFrame({"video_id": [v for v, _ in rows], "label": [lab for _, lab in rows],
                       "path": [str(root / v) for v, _ in rows]})
    path = tmp_path / "manifest" / "shard-0.csv"
    path.parent.mkdir()
    df.to_csv(path, index=False)
    return path


def test_sample_shard_end_to_end(tmp_path, videos, frame_number):
    manifest = _manifest(tmp_path, videos)
    out, fail = tmp_path / "frames" / "shard-0.h5", tmp_path / "failures" / "shard-0.csv"
    sample_shard(manifest, out, fail, PARAMS, executor="serial", progress=False)
    with ShardReader(out) as r:
        assert sorted(r.videos()) == ["fake/a.mp4", "fake/cut.mp4", "real/a.mp4"]
        assert r.frame_indices("real/a.mp4").tolist() == uniform(60, 8).tolist()
        frames = r.read("real/a.mp4", "frame")
        assert [frame_number(f) for f in frames] == uniform(60, 8).tolist()
        np.testing.assert_array_equal(r.read_item("real/a.mp4", 34, "frame"),
                                      decode_all(videos["gop10"])[34])
        attrs = r.video_attrs("real/a.mp4")
        assert (attrs["fps"], attrs["width"], attrs["height"], attrs["n_frames"]) == (25.0, 64, 64, 60)
        ds = r.group("real/a.mp4")["frame"]
        assert ds.chunks == (1, 64, 64, 3) and ds.compression == "gzip"
        assert r.attrs["stage"] == "sample_frames" and r.attrs["params"]["num_frames"] == 8
    failures = pd.read_csv(fail, keep_default_na=False)
    reasons = dict(zip(failures.video_id, failures.reason))
    assert "not found" in reasons["fake/missing.mp4"]
    assert "cannot open" in reasons["fake/junk.mp4"]
    assert reasons["fake/cut.mp4"].startswith("partial:")
    assert failures.loc[failures.video_id == "fake/junk.mp4", "path"].item().endswith("fake/junk.mp4")
    assert set(failures.stage) == {"sample_frames"}

    # rerun (and another executor) -> byte-identical outputs
    out2, fail2 = tmp_path / "again" / "shard-0.h5", tmp_path / "again" / "fail.csv"
    sample_shard(manifest, out2, fail2, PARAMS, executor="process", workers=2, progress=False)
    assert out.read_bytes() == out2.read_bytes()
    assert fail.read_bytes() == fail2.read_bytes()
    sample_shard(manifest, out, fail, PARAMS, executor="serial", progress=False)
    assert out.read_bytes() == out2.read_bytes()


def test_sample_shard_empty_manifest_and_max_side(tmp_path, videos):
    manifest = _manifest(tmp_path, videos)
    df = pd.read_csv(manifest).iloc[:1]
    out, fail = tmp_path / "f.h5", tmp_path / "fail.csv"
    sample_shard(df, out, fail, {**PARAMS, "max_side": 32, "decoder": "opencv"}, executor="serial",
                 progress=False)
    with h5py.File(out) as f:
        grp = f["videos"][next(iter(f["videos"]))]
        assert grp["frame"].shape == (8, 32, 32, 3)
        assert grp.attrs["scale"] == 0.5 and grp.attrs["width"] == 64
    sample_shard(df.iloc[:0], out, fail, PARAMS, executor="serial", progress=False)
    with ShardReader(out) as r:
        assert r.videos() == []
    assert list(pd.read_csv(fail).columns) == ["video_id", "stage", "frame_index", "path", "reason"]


def _stage_module():
    spec = importlib.util.spec_from_file_location("stage_sample_frames", REPO / "stages" / "sample_frames.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stage_main(tmp_path, videos, monkeypatch):
    manifest = _manifest(tmp_path, videos)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["executor"] = {"backend": "serial", "workers": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    mod = _stage_module()
    rc = mod.main(["--shard", "0", "--manifest-dir", str(manifest.parent), "--num_frames", "4",
                   "--strategy", "uniform"])
    assert rc == 0
    with ShardReader(tmp_path / "data" / "frames" / "shard-0.h5") as r:
        assert r.frame_indices("real/a.mp4").tolist() == [0, 20, 39, 59]
        stored = r.attrs["params"]
        assert stored["num_frames"] == 4 and not {"backend", "workers", "address"} & set(stored)
    fails = pd.read_csv(tmp_path / "data" / "failures" / "sample_frames" / "shard-0.csv")
    assert set(fails.video_id) >= {"fake/missing.mp4", "fake/junk.mp4"}


def test_stage_help():
    out = subprocess.run([sys.executable, "stages/sample_frames.py", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--shard", "--strategy", "--num_frames", "--every_k", "--fps", "--max_side",
                 "--compression.codec", "--backend", "--workers"):
        assert flag in out


# ----------------------------------------------------------------------------- streaming
def _one(video, vid="v.mp4") -> pd.DataFrame:
    return pd.DataFrame({"video_id": [vid], "label": ["real"], "path": [str(video)]})


@pytest.mark.parametrize("codec", [{"codec": "gzip", "level": 1, "shuffle": True}, {"codec": "zstd"},
                                   None])
def test_strategy_all_streams_with_bounded_memory(tmp_path, videos, monkeypatch, frame_number, codec):
    """A long video goes through the spill file: the worker never holds more than
    STREAM_FRAMES frames, and the shard is byte-identical to the all-in-memory path."""
    import dfdetect.video.sample as sample_mod
    from dfdetect.store import ShardWriter, Spilled

    params = {**PARAMS, "strategy": "all", "compression": codec}
    if codec is None:                   # no compression param: frames are stored raw
        del params["compression"]
    held, spilled = [], []
    add, write_spilled = sample_mod._Frames.add, ShardWriter._write_spilled

    def spy_add(self, i, frame):
        add(self, i, frame)
        held.append(len(self.held))

    def spy_write(self, grp, video_id, name, sp, n):
        assert isinstance(sp, Spilled)
        spilled.append((video_id, n, sp.encoded))
        return write_spilled(self, grp, video_id, name, sp, n)

    monkeypatch.setattr(sample_mod._Frames, "add", spy_add)
    monkeypatch.setattr(ShardWriter, "_write_spilled", spy_write)
    monkeypatch.setattr(sample_mod, "STREAM_FRAMES", 8)
    streamed = tmp_path / "streamed" / "shard-000.h5"
    sample_shard(_one(videos["gop10"]), streamed, tmp_path / "f1.csv", params, executor="serial",
                 progress=False)
    assert spilled == [("v.mp4", 60, codec is None or codec["codec"] == "gzip")]
    assert 0 < max(held) <= 9                         # at most STREAM_FRAMES + 1 at once
    assert [p.name for p in streamed.parent.iterdir()] == ["shard-000.h5"]   # spill removed

    monkeypatch.setattr(sample_mod, "STREAM_FRAMES", 10 ** 9)
    held.clear()
    inline = tmp_path / "inline" / "shard-000.h5"
    sample_shard(_one(videos["gop10"]), inline, tmp_path / "f2.csv", params, executor="serial",
                 progress=False)
    assert max(held) == 60 and len(spilled) == 1      # this time all in memory
    assert streamed.read_bytes() == inline.read_bytes()

    # a reference computed another way: every frame decoded by the other library
    with ShardReader(streamed) as r:
        frames = r.read("v.mp4", "frame")
        assert r.frame_indices("v.mp4").tolist() == list(range(60))
        ds = r.group("v.mp4")["frame"]
        assert ds.chunks == (1, 64, 64, 3)
        plist = ds.id.get_create_plist()
        filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
        assert filters == {"gzip": {2, 1}, "zstd": {32015}, None: set()}[codec and codec["codec"]]
    np.testing.assert_array_equal(frames, decode_all(videos["gop10"], "opencv"))
    assert [frame_number(f) for f in frames] == list(range(60))


def test_streamed_shard_is_the_same_for_any_executor(tmp_path, videos):
    """Workers (default STREAM_FRAMES) spill the 60-frame videos; the truncated one is
    re-sampled from what decodes; bytes equal the serial run's."""
    manifest = _manifest(tmp_path, videos)
    params = {**PARAMS, "strategy": "all"}
    a, b = tmp_path / "a" / "shard-000.h5", tmp_path / "b" / "shard-000.h5"
    sample_shard(manifest, a, tmp_path / "fa.csv", params, executor="serial", progress=False)
    sample_shard(manifest, b, tmp_path / "fb.csv", params, executor="process", workers=2,
                 progress=False)
    assert a.read_bytes() == b.read_bytes()
    assert [p.name for p in b.parent.iterdir()] == ["shard-000.h5"]
    with ShardReader(a) as r:
        np.testing.assert_array_equal(r.read("fake/a.mp4", "frame"),
                                      decode_all(videos["fast"], "opencv"))
        n = r.video_attrs("fake/cut.mp4")["n_frames"]
        assert r.frame_indices("fake/cut.mp4").tolist() == list(range(n))


def test_frame_size_change_is_a_clear_error_and_leaves_no_spill(tmp_path, monkeypatch):
    """A raw H.264 stream whose resolution changes mid-way: the video is a failure naming the
    file and the reason; its partial spill file is removed; the other video is written."""
    import dfdetect.video.sample as sample_mod

    parts = []
    for size, n in (("64x64", 12), ("48x32", 6)):
        p = tmp_path / f"part{size}.h264"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={size}:rate=25", "-frames:v", str(n), "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", "-threads", "1", str(p)], check=True)
        parts.append(p.read_bytes())
    bad = tmp_path / "changes.h264"
    bad.write_bytes(b"".join(parts))
    good = tmp_path / "good.h264"
    good.write_bytes(parts[0])
    df = pd.DataFrame({"video_id": ["bad.h264", "good.h264"], "label": "real",
                       "path": [str(bad), str(good)]})
    monkeypatch.setattr(sample_mod, "STREAM_FRAMES", 4)
    out, fail = tmp_path / "out" / "shard-000.h5", tmp_path / "fail.csv"
    sample_shard(df, out, fail, {**PARAMS, "strategy": "all"}, executor="serial", progress=False)
    reasons = pd.read_csv(fail).set_index("video_id")["reason"].to_dict()
    assert "frame size changes mid-video" in reasons["bad.h264"]
    assert str(bad) in reasons["bad.h264"] or \
        pd.read_csv(fail).set_index("video_id").loc["bad.h264", "path"] == str(bad)
    with ShardReader(out) as r:
        assert r.videos() == ["good.h264"] and len(r.frame_indices("good.h264")) == 12
    assert [p.name for p in out.parent.iterdir()] == ["shard-000.h5"]
