"""ingest() and stages/ingest.py on tiny real videos: probing, bad files, determinism."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.data.ingest import ingest, summary
from dfdetect.data.manifest import read_manifest
from dfdetect.data.probe import probe_video
from dfdetect.failures import ItemError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A silent 32x32 5-frame mp4v clip (OpenCV) and, when ffmpeg exists, one with audio."""
    import cv2

    d = tmp_path_factory.mktemp("clips")
    silent = d / "silent.mp4"
    w = cv2.VideoWriter(str(silent), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 32))
    assert w.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(5):
        w.write(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    w.release()
    out = {"silent": silent}
    if shutil.which("ffmpeg"):
        voiced = d / "voiced.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=32x32:r=10",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "0.5",
                        "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(voiced)], check=True)
        out["voiced"] = voiced
        zero = d / "zero.mp4"      # a valid container with no frame
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=s=32x32:r=10",
                        "-t", "0", "-c:v", "mpeg4", str(zero)], check=True)
        out["zero"] = zero
    return out


def make_dataset(root: Path, clips: dict[str, Path]) -> Path:
    """generic folder layout: 4 people x real/fake, plus four bad files."""
    for person in ("ann", "bob", "carl", "dan"):
        for label in ("real", "fake"):
            p = root / label / person / "0.mp4"
            p.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(clips["silent"], p)
    (root / "real" / "corrupt.mp4").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "fake" / "empty.mp4").write_bytes(b"")
    data = clips["silent"].read_bytes()
    (root / "fake" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    if "zero" in clips:
        shutil.copy(clips["zero"], root / "real" / "zero.mp4")
    if "voiced" in clips:
        (root / "real" / "eve").mkdir()
        shutil.copy(clips["voiced"], root / "real" / "eve" / "talk.mp4")
    return root


def test_probe_video(clips, tmp_path):
    info = probe_video(clips["silent"])
    assert (info["frames"], info["width"], info["height"]) == (5, 32, 32)
    assert info["fps"] == pytest.approx(10.0) and info["duration"] == pytest.approx(0.5)
    assert info["has_audio"] is False
    if "voiced" in clips:
        assert probe_video(clips["voiced"])["has_audio"] is True
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ItemError, match=r"empty file \(0 bytes\)") as err:
        probe_video(empty)
    assert str(empty) in str(err.value)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(2).bytes(2048))
    with pytest.raises(ItemError, match="corrupt"):
        probe_video(junk)
    with pytest.raises(ItemError, match="cannot open video"):    # OpenCV alone
        probe_video(junk, audio=False)
    if shutil.which("ffmpeg"):   # a valid container holding a video stream with no frame
        zero = tmp_path / "zero.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=s=32x32:r=10",
                        "-t", "0", "-c:v", "mpeg4", str(zero)], check=True)
        with pytest.raises(ItemError, match="zero-frame"):
            probe_video(zero)
    with pytest.raises(ItemError, match="file not found"):
        probe_video(tmp_path / "nope.mp4")


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_probe_falls_back_to_ffprobe_without_pyav(clips, tmp_path, monkeypatch):
    from dfdetect.data import probe

    monkeypatch.setattr(probe, "_av_streams", lambda path: None)
    assert probe.probe_video(clips["silent"])["has_audio"] is False
    if "voiced" in clips:
        assert probe.probe_video(clips["voiced"])["has_audio"] is True
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(3).bytes(2048))
    with pytest.raises(ItemError, match=r"unreadable or corrupt video \(ffprobe: "):
        probe.probe_video(junk)


def test_ingest_probes_and_records_bad_files(clips, tmp_path):
    root = make_dataset(tmp_path / "ds", clips)
    df, fails = ingest("generic", root, csv="", probe=True, seed=0, executor="serial",
                       split_fractions=(0.5, 0.25, 0.25), progress=False)
    bad = {"real/corrupt.mp4", "fake/empty.mp4", "fake/truncated.mp4"}
    if "zero" in clips:
        bad.add("real/zero.mp4")
    assert bad.isdisjoint(df["video_id"])
    reasons = dict(zip(fails.frame()["video_id"], fails.frame()["reason"]))
    assert set(reasons) == bad
    assert reasons["fake/empty.mp4"] == "empty file (0 bytes)"
    assert "unreadable or corrupt video (libav: Invalid data" in reasons["real/corrupt.mp4"]
    assert "corrupt" in reasons["fake/truncated.mp4"]
    if "zero" in clips:
        assert "zero-frame" in reasons["real/zero.mp4"]
    assert all(fails.frame()["path"].str.endswith(tuple(bad)))
    good = df[df["video_id"].str.endswith("/0.mp4")]
    assert len(good) == 8
    assert (good["frames"] == 5).all() and (good["width"] == 32).all() and (good["height"] == 32).all()
    assert np.allclose(good["fps"], 10.0) and (~good["has_audio"]).all()
    if "voiced" in clips:
        assert bool(df.set_index("video_id").loc["real/eve/talk.mp4", "has_audio"])
    assert (df["dataset"] == "generic").all() and (df["split"] != "").all()
    for person in ("ann", "bob", "carl", "dan"):
        assert df.loc[df["identity"] == person, "split"].nunique() == 1
    text = summary(df, fails)
    assert f"{len(bad)} failures" in text and "train" in text


def test_ingest_without_probe_keeps_unreadable(clips, tmp_path):
    root = make_dataset(tmp_path / "ds", clips)
    df, fails = ingest("generic", root, csv="", probe=False, seed=0)
    assert "real/corrupt.mp4" in set(df["video_id"]) and len(fails) == 0
    assert (df["frames"] == -1).all() and len(df) == len(list(root.rglob("*.mp4")))


def test_process_executor_matches_serial(clips, tmp_path):
    root = make_dataset(tmp_path / "ds", clips)
    a, fa = ingest("generic", root, csv="", seed=4, executor="serial", progress=False)
    b, fb = ingest("generic", root, csv="", seed=4, executor="process", workers=2, progress=False)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(fa.frame(), fb.frame())


def _stage():
    spec = importlib.util.spec_from_file_location("ingest_stage", REPO / "stages" / "ingest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _params(path: Path, root: Path, num_shards: int = 3) -> Path:
    path.write_text(
        "seed: 11\n"
        f"sharding: {{num_shards: {num_shards}, shards: {list(range(num_shards))}}}\n"
        "executor: {backend: serial, workers: 1}\n"
        f"ingest: {{layout: generic, root: {root}, csv: '', follow_external_symlinks: false, "
        "split_fractions: [0.5, 0.25, 0.25], probe: true}\n")
    return path


def test_stage_outputs_are_deterministic(clips, tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", clips)
    params = _params(tmp_path / "params.yaml", root)
    stage = _stage()
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        rc = stage.main(["--params", str(params), "--out", str(out / "manifest.csv"),
                         "--shard-dir", str(out / "manifest"), "--failures", str(out / "failures.csv")])
        assert rc == 0
        outs.append(out)
    err = capsys.readouterr().err
    assert "failures by reason" in err and "label" in err
    files = sorted(str(p.relative_to(outs[0])) for p in outs[0].rglob("*") if p.is_file())
    assert files == ["failures.csv", "manifest.csv", "manifest/shard-0.csv",
                                       "manifest/shard-1.csv", "manifest/shard-2.csv"]
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    manifest = read_manifest(outs[0] / "manifest.csv")
    shards = pd.concat([read_manifest(p) for p in sorted((outs[0] / "manifest").glob("shard-*.csv"))])
    assert sorted(shards["video_id"]) == sorted(manifest["video_id"])
    assert len(pd.read_csv(outs[0] / "failures.csv")) == 3 + ("zero" in clips)
    assert not list(outs[0].rglob(".*.tmp"))          # atomic writes leave no temp files


def test_stage_flag_overrides_and_errors(clips, tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", clips)
    params = _params(tmp_path / "params.yaml", root, num_shards=2)
    stage = _stage()
    out = tmp_path / "o"
    rc = stage.main(["--params", str(params), "--probe", "false", "--out", str(out / "m.csv"),
                     "--shard-dir", str(out / "m"), "--failures", str(out / "f.csv")])
    assert rc == 0
    assert len(read_manifest(out / "m.csv")) == len(list(root.rglob("*.mp4")))   # nothing probed
    rc = stage.main(["--params", str(params), "--layout", "ffpp", "--out", str(out / "x.csv"),
                     "--shard-dir", str(out / "x"), "--failures", str(out / "xf.csv")])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{root}: no original_sequences/ folder; is this a FaceForensics++ root?" in err
    assert not (out / "x.csv").exists()
    with pytest.raises(SystemExit) as exc:   # a bad param: caught up front (schema), exit 2
        stage.main(["--params", str(params), "--layout", "nosuch", "--out", str(out / "x.csv")])
    assert exc.value.code == 2
    assert "ingest.layout = 'nosuch': must be one of ffpp, celebdf" in capsys.readouterr().err


def test_stage_named_csv_must_exist_and_bad_params_exit_2(clips, tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", clips)
    params = _params(tmp_path / "params.yaml", root, num_shards=2)
    stage = _stage()
    out = tmp_path / "o"
    paths = ["--out", str(out / "m.csv"), "--shard-dir", str(out / "m"), "--failures", str(out / "f.csv")]
    rc = stage.main(["--params", str(params), "--csv", "nope.csv", *paths])
    assert rc == 2   # a typo is an error, never a silent fallback to real/ + fake/
    assert f"ingest: {root / 'nope.csv'}: labels CSV not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:   # the params schema: exit 2, one line naming the key
        stage.main(["--params", str(params), "--follow_external_symlinks", "maybe", *paths])
    assert exc.value.code == 2
    assert "ingest.follow_external_symlinks = 'maybe': must be true or false" in capsys.readouterr().err
    assert not out.exists()
    (root / "real" / "passwd.mp4").symlink_to("/etc/passwd")
    rc = stage.main(["--params", str(params), "--csv", "''", *paths])   # probed: libav never sees it
    assert rc == 0
    failed = pd.read_csv(out / "f.csv").set_index("video_id")
    assert failed.loc["real/passwd.mp4", "reason"] == "symlink points outside the dataset root: /etc/passwd"
    assert "real/passwd.mp4" not in set(read_manifest(out / "m.csv")["video_id"])


@pytest.mark.media
def test_ingest_real_media(media, tmp_path):
    """Real clips (DFDETECT_MEDIA) as a generic real/fake tree: probe values match INVENTORY.tsv."""
    inv = pd.read_csv(media / "INVENTORY.tsv", sep="\t")
    inv = inv[inv["file"].str.startswith("videos/") & ~inv["file"].str.contains("/mead/")].head(4)
    for i, f in enumerate(inv["file"]):
        dst = tmp_path / ("real" if i % 2 == 0 else "fake") / Path(f).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(media / f)
    df, fails = ingest("generic", tmp_path, csv="", executor="serial", progress=False)
    assert len(fails) == 0 and len(df) == len(inv)
    got = df.assign(name=df["video_id"].map(lambda v: Path(v).name)).set_index("name")
    for row in inv.itertuples():
        r = got.loc[Path(row.file).name]
        assert f"{r.width}x{r.height}" == row.res
        assert r.fps == pytest.approx(row.fps, rel=1e-3)
        # the inventory gives the container duration; ours is the video stream's (frames / fps),
        # which is shorter when the audio track runs longer
        assert 0 < r.duration <= row.dur_s + 0.1 and r.duration == pytest.approx(row.dur_s, abs=1.0)
        assert bool(r.has_audio) == (str(row.audio) not in ("", "-", "none", "nan"))


def test_fewer_shards_remove_stale_shard_manifests(clips, tmp_path):
    from dfdetect.data.manifest import write_shard_manifests

    root = make_dataset(tmp_path / "ds", clips)
    df, _ = ingest("generic", root, csv="", probe=False, seed=0)
    write_shard_manifests(df, tmp_path / "m", 4)
    write_shard_manifests(df, tmp_path / "m", 2)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["shard-0.csv", "shard-1.csv"]


def test_manifest_sha256_follows_a_file_changed_in_place(tmp_path):
    import hashlib

    from dfdetect.data.manifest import write_shard_manifests

    root = tmp_path / "ds"
    for rel, data in (("real/a.mp4", b"first bytes"), ("fake/b.mp4", b"other bytes")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    df, _ = ingest("generic", root, probe=False, csv="", executor="serial", progress=False)
    assert dict(zip(df["video_id"], df["sha256"])) == {
        "real/a.mp4": hashlib.sha256(b"first bytes").hexdigest(),
        "fake/b.mp4": hashlib.sha256(b"other bytes").hexdigest()}
    write_shard_manifests(df, tmp_path / "m1", 1)
    (root / "real/a.mp4").write_bytes(b"first bytez")          # same path, same size, new bytes
    again, _ = ingest("generic", root, probe=False, csv="", executor="serial", progress=False)
    write_shard_manifests(again, tmp_path / "m2", 1)
    assert (tmp_path / "m1/shard-0.csv").read_bytes() != (tmp_path / "m2/shard-0.csv").read_bytes()
    off, _ = ingest("generic", root, probe=False, csv="", executor="serial", progress=False,
                    checksum=False)
    assert (off["sha256"] == "").all()
