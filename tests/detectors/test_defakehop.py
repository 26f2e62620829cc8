"""DefakeHop end to end on a tiny but meaningful problem, and the saab_features stage.

Real "videos": 32x32 crops of real photographs (skimage) for the three regions, the crop drifting
a little from frame to frame. Fake videos: the same kind of crops passed through a face-swap-like
resampling (2x area downscale, bilinear upscale), which removes high frequencies, the artefact
DefakeHop's Saab channels are meant to pick up.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.detectors.base import DetectorData, create, get
from dfdetect.saab import features as F
from dfdetect.store import ShardWriter, Store, shard_of, shard_path

REPO = Path(__file__).resolve().parents[2]
N_FRAMES = 6


def _images():
    from skimage import data

    return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]


def _resample(patch: np.ndarray) -> np.ndarray:
    from skimage.transform import resize

    small = resize(patch, (16, 16), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(resize(small, (32, 32), order=1, preserve_range=True), 0, 255).astype(np.uint8)


def _video(rng, img, fake: bool) -> np.ndarray:
    h, w = img.shape[:2]
    starts = [(int(rng.integers(0, h - 40)), int(rng.integers(0, w - 40))) for _ in range(3)]
    frames = []
    for t in range(N_FRAMES):
        regions = []
        for y, x in starts:
            p = img[y + t % 3:y + t % 3 + 32, x + t // 3:x + t // 3 + 32]
            regions.append(_resample(p) if fake else p)
        frames.append(np.stack(regions))
    return np.stack(frames)                                        # (n, 3, 32, 32, 3)


def build_faces(root: Path, n_videos: int = 40, shards: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    imgs = _images()
    rows, per_shard = [], {s: [] for s in range(shards)}
    for i in range(n_videos):
        fake = i % 2 == 1
        vid = f"{'fake' if fake else 'real'}/{i:03d}.mp4"
        split = ["train", "train", "train", "val", "test"][(i // 2) % 5]
        rows.append({"video_id": vid, "path": vid, "dataset": "synthetic",
                     "label": "fake" if fake else "real", "method": "resample" if fake else "",
                     "quality": "", "split": split, "identity": f"id{i // 2}", "source_id": ""})
        per_shard[shard_of(vid, shards)].append((vid, _video(rng, imgs[i % len(imgs)], fake)))
    faces = root / "faces"
    for s, vids in per_shard.items():
        with ShardWriter(shard_path(faces, s), stage="align_faces") as w:
            for vid, patches in sorted(vids):
                w.add_video(vid, np.arange(0, 10 * N_FRAMES, 10), patches=patches)
    return faces, pd.DataFrame(rows)


SAAB_CFG = {"num_hops": 3, "kernel_size": 3, "max_channels": 5, "split_thr": 0.01,
            "keep_thr": 0.001, "pool": 2, "bias": True, "fit_max_images": 10000,
            "batch_images": 256, "dtype": "float32"}
DET_PARAMS = {"n_folds": 3, "neighbours": 3,
              "channel_xgb": {"n_estimators": 20}, "final_xgb": {"n_estimators": 30},
              "nthread": 1}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("defakehop")
    faces, manifest = build_faces(root)
    regions = list(F.PATCH_REGIONS)
    items = F.train_items(faces, manifest, 10000, seed=0)
    models = F.fit_region_models(F.read_patches(faces, items), regions, SAAB_CFG, seed=0)
    F.save_models(models, root / "models_saab")
    for shard in sorted(faces.glob("shard-*.h5")):
        fails = F.transform_shard(shard, root / "saab" / shard.name, root / "models_saab", regions)
        assert not fails.rows
    return root, manifest


@pytest.fixture(scope="module")
def trained(workdir):
    root, manifest = workdir
    data = DetectorData(manifest, sources={"saab": root / "saab"}, seed=7, progress=False)
    det = create("defakehop", DET_PARAMS)
    summary = det.fit(data)
    return det, data, summary


def test_saab_store_fields_and_train_only_fit(workdir):
    root, manifest = workdir
    store = Store(root / "saab")
    vid = store.videos()[0]
    for region in F.PATCH_REGIONS:
        shapes = [store.read(vid, f"{region}_hop{h}").shape for h in (1, 2, 3)]
        assert [s[1:3] for s in shapes] == [(15, 15), (7, 7), (3, 3)]
        assert all(s[0] == N_FRAMES and s[3] <= 5 for s in shapes)
    counts = json.loads(store.attrs()["saab_parameters"])
    assert set(counts) == {f"{r}_hop{h}" for r in F.PATCH_REGIONS for h in (1, 2, 3)}
    n_train = int((manifest["split"] == "train").sum()) * N_FRAMES
    saab = F.load_models(root / "models_saab", ["mouth"])["mouth"]
    assert saab.hops[0].units[0].n_samples_seen_ == n_train * 30 * 30   # train frames only


def test_detector_beats_chance_and_roundtrips(trained, tmp_path):
    det, data, summary = trained
    assert summary["channels"] == len(det.columns_) <= 3 * 3 * 5
    assert summary["final_features"] == len(det.columns_) * 7          # frame + 3 + 3
    scores = det.score(data, "test")
    assert len(scores) == int((data.manifest["split"] == "test").sum()) * N_FRAMES
    assert np.all((scores["score"] >= 0) & (scores["score"] <= 1))
    from sklearn.metrics import roc_auc_score

    y = scores.merge(data.manifest, on="video_id")["label"].eq("fake").to_numpy()
    assert roc_auc_score(y, scores["score"]) > 0.8                     # clearly above chance
    det.save(tmp_path / "m")
    again = get("defakehop").load(tmp_path / "m")
    np.testing.assert_array_equal(again.score(data, "test")["score"], scores["score"])
    assert not list(tmp_path.glob("m/*.pkl"))


def test_num_parameters_table(trained):
    det, _, _ = trained
    n = det.num_parameters()
    rows = [f"saab_hop{h}" for h in (1, 2, 3)] + [f"pca_hop{h}" for h in (1, 2, 3)] + [
        "channel_xgb", "final_xgb"]
    assert n["total"] == sum(n[k] for k in rows)
    assert n["final_xgb"] > 0 and n["channel_xgb"] > 0
    # Saab kernels: kept channels x 27 (hop 1) or x 9, at most 5 channels here
    assert 0 < n["saab_hop1"] <= 3 * 27 * 5 and n["saab_hop1"] % 27 == 0
    assert 0 < n["saab_hop2"] <= 3 * 9 * 5 and n["saab_hop2"] % 9 == 0
    # spatial PCA: 225, 49, 9 inputs x components, + 1 channel mean per channel (centring)
    for hop, hw in ((1, 225), (2, 49), (3, 9)):
        pcas = [det.pcas[(r, hop)] for r in F.PATCH_REGIONS]
        assert n[f"pca_hop{hop}"] == sum(p.components_.shape[0] * hw + len(p.channel_mean_) for p in pcas)
        assert all(p.components_.shape[1] == hw for p in pcas)
    # a max_depth-1 tree is one split (2 params) and two leaves: <= 4 params per tree
    assert n["channel_xgb"] <= 4 * 20 * n["channel_xgb_count"]
    assert sum(n[f"region_{r}"] for r in F.PATCH_REGIONS) + n["final_xgb"] == n["total"]


def test_out_of_fold_probabilities_are_used(workdir):
    """With in-sample probabilities the final classifier would see near-perfect channel
    probabilities; cross-fitting is visible as folds > 1 and as a deterministic refit."""
    root, manifest = workdir
    data = DetectorData(manifest, sources={"saab": root / "saab"}, seed=7, progress=False)
    from dfdetect.detectors.defakehop import make_folds

    items = data.items("saab", "train")
    folds = make_folds(items["y"].to_numpy(), items["video_id"].to_numpy(), 3, 7)
    assert len(np.unique(folds)) == 3
    # a video never spans two folds
    assert items.assign(f=folds).groupby("video_id")["f"].nunique().max() == 1


def test_extra_metrics_per_region(trained):
    det, data, _ = trained
    scores = det.score(data, "test")
    extra = det.extra_metrics(data, scores)["auc_by_region"]
    assert set(extra) == {"ensemble", *F.PATCH_REGIONS}
    assert extra["ensemble"]["video_auc"] > 0.8


def test_neighbour_rows_clamped():
    from dfdetect.detectors.defakehop import neighbour_rows

    items = pd.DataFrame({"video_id": ["a"] * 3 + ["b"] * 2, "frame_index": [0, 5, 9, 1, 2]})
    rows = neighbour_rows(items, 2)
    np.testing.assert_array_equal(rows[0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(rows[4], [3, 3, 4, 4, 4])
    np.testing.assert_array_equal(rows[1], [0, 0, 1, 2, 2])


def _load_stage():
    spec = importlib.util.spec_from_file_location("saab_features_stage", REPO / "stages" / "saab_features.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "stages"))
    spec.loader.exec_module(mod)
    return mod


def test_stage_writes_shards_models_and_failures(tmp_path):
    faces, manifest = build_faces(tmp_path, n_videos=10, shards=2)
    # a broken video: patches of the wrong size
    with ShardWriter(faces / "shard-2.h5", stage="align_faces") as w:
        w.add_video("real/broken.mp4", [0], patches=np.zeros((1, 3, 16, 16, 3), np.uint8))
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    params = {"seed": 3, "saab": dict(SAAB_CFG, regions=list(F.PATCH_REGIONS), batch_frames=16,
                                       compression="none", executor={"backend": "serial", "workers": 1})}
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = _load_stage()
    rc = stage.main(["--params", str(tmp_path / "params.yaml"), "--faces", str(faces),
                     "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "saab"),
                     "--models", str(tmp_path / "msaab"), "--failures", str(tmp_path / "fail.csv")])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "saab").glob("shard-*.h5")) == [
        "shard-0.h5", "shard-1.h5", "shard-2.h5"]
    assert sorted(p.name for p in (tmp_path / "msaab").iterdir()) == sorted(
        f"{r}.{e}" for r in F.PATCH_REGIONS for e in ("json", "npz"))
    fails = pd.read_csv(tmp_path / "fail.csv")
    assert list(fails["video_id"]) == ["real/broken.mp4"]
    assert "patches shaped" in fails["reason"].iloc[0]
    assert len(Store(tmp_path / "saab").index()) == 10 * N_FRAMES


# ----------------------------------------------------------------------------- non-finite rows
def _rewrite_store(src: Path, dst: Path, edit) -> None:
    """Copy a store shard by shard; ``edit(video_id, frames, fields)`` returns the (frames,
    fields) to write instead (to inject NaN/inf, or to drop frames)."""
    from dfdetect.store import ShardReader

    for shard in sorted(src.glob("shard-*.h5")):
        reader = ShardReader(shard)
        root = dict(reader.file.attrs)
        extra = {k: v for k, v in root.items() if k not in ("format", "stage", "params")}
        with ShardWriter(dst / shard.name, stage=str(root["stage"]),
                         params=json.loads(root["params"]), attrs=extra) as w:
            for vid in pd.unique(reader.index()["video_id"]):
                fields = {k: reader.read(vid, k) for k in reader.fields(vid)}
                frames, fields = edit(vid, reader.frame_indices(vid), fields)
                w.add_video(vid, frames, **fields)
        reader.close()


def _test_videos(manifest: pd.DataFrame) -> list[str]:
    return sorted(manifest.loc[manifest["split"] == "test", "video_id"])


def test_nonfinite_saab_rows_are_unscored_recorded_and_counted(workdir, trained, tmp_path):
    """Issue #8: an inf in a Saab shard and all-NaN features for two test videos: those rows
    are recorded and unscored, the videos absent, every other video scored exactly as before."""
    from dfdetect.detectors.evaluation import evaluate_detector

    root, manifest = workdir
    det, clean_data, _ = trained
    tests = _test_videos(manifest)
    inf_vid, nan_vids = tests[0], tests[1:3]

    def poison(vid, frames, fields):
        fields = {k: v.copy() for k, v in fields.items()}
        if vid == inf_vid:
            fields["mouth_hop2"][2, 1, 1, 0] = np.inf       # one value of one frame
        if vid in nan_vids:
            for k in fields:
                if k.endswith(("hop1", "hop2", "hop3")):
                    fields[k][:] = np.nan
        return frames, fields

    _rewrite_store(root / "saab", tmp_path / "saab", poison)
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=7, progress=False)
    clean = det.score(clean_data, "test")
    scores = det.score(data, "test")
    assert not set(nan_vids) & set(scores["video_id"])                    # unscored
    assert 2 not in set(scores.loc[scores["video_id"] == inf_vid, "frame_index"] // 10)
    assert (scores["video_id"] == inf_vid).sum() == N_FRAMES - 1          # the rest of it scored
    others = sorted(set(tests) - {inf_vid, *nan_vids})
    pd.testing.assert_frame_equal(scores[scores["video_id"].isin(others)].reset_index(drop=True),
                                  clean[clean["video_id"].isin(others)].reset_index(drop=True))
    fails = data.checks.failures("evaluate@defakehop").frame()
    assert len(fails) == 1 + 2 * N_FRAMES
    row = fails[fails["video_id"] == inf_vid].iloc[0]
    assert row["frame_index"] == 20 and row["path"].endswith(".h5") and Path(row["path"]).is_file()
    assert row["reason"] == "non-finite features: 0 NaN, 1 inf in saab mouth_hop2"
    nan_reason = fails[fails["video_id"] == nan_vids[0]]["reason"].iloc[0]
    assert nan_reason.startswith("non-finite features: ") and "NaN, 0 inf in saab left_eye_hop1" in nan_reason
    # the evaluate stage's metrics document counts them per split
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=7, progress=False)
    _, result, _ = evaluate_detector(det, data, splits=("test", "val"))
    assert result["test"]["unscored"] == {"frames": 1 + 2 * N_FRAMES, "videos": 2}
    assert result["val"]["unscored"] == {"frames": 0, "videos": 0}
    assert result["test"]["coverage"]["unscored"] == 2


def test_nonfinite_train_rows_are_left_out_of_the_fit(workdir, tmp_path):
    """A NaN in the first block and an inf in the last block of two train frames: the fit
    equals, file for file, the fit on a store without those two frames."""
    root, manifest = workdir
    train = sorted(manifest.loc[manifest["split"] == "train", "video_id"])
    bad = {(train[0], 10): ("left_eye_hop1", np.nan), (train[3], 40): ("mouth_hop3", np.inf)}

    def poison(vid, frames, fields):
        fields = {k: v.copy() for k, v in fields.items()}
        for (v, f), (name, value) in bad.items():
            if v == vid:
                fields[name][list(frames).index(f), 0, 0, 0] = value
        return frames, fields

    def drop(vid, frames, fields):
        keep = np.array([(vid, int(f)) not in bad for f in frames])
        return frames[keep], {k: v[keep] for k, v in fields.items()}

    _rewrite_store(root / "saab", tmp_path / "poisoned", poison)
    _rewrite_store(root / "saab", tmp_path / "dropped", drop)
    out = {}
    for name in ("poisoned", "dropped"):
        data = DetectorData(manifest, sources={"saab": tmp_path / name}, seed=7, progress=False)
        # two regions, two hops (4 blocks: NaN in the first, inf in the last), to keep it fast
        det = create("defakehop", {**DET_PARAMS, "regions": ["left_eye", "mouth"], "hops": [1, 3],
                                   "region_heads": False})
        det.fit(data)
        det.save(tmp_path / f"m-{name}")
        out[name] = data
    assert sorted(out["poisoned"].checks.bad("train")) == sorted(bad)
    assert not out["dropped"].checks.bad()
    for f in ("pca.npz", "channel_xgb.json", "final_xgb.json", "region_xgb.json", "config.json"):
        assert (tmp_path / "m-poisoned" / f).read_bytes() == (tmp_path / "m-dropped" / f).read_bytes(), f


def test_mostly_nonfinite_train_split_fails_the_train_stage(workdir, tmp_path, monkeypatch):
    root, manifest = workdir
    train = sorted(manifest.loc[manifest["split"] == "train", "video_id"])
    poisoned = {v for i, v in enumerate(train) if i % 3}        # 2/3 of them, real and fake

    def poison(vid, frames, fields):
        fields = {k: v.copy() for k, v in fields.items()}
        if vid in poisoned:
            fields["right_eye_hop1"][:] = np.nan
        return frames, fields

    _rewrite_store(root / "saab", tmp_path / "saab", poison)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 7, "models": {"defakehop": DET_PARAMS}}))
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("train_stage_nf", REPO / "stages" / "train.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    with pytest.raises(SystemExit) as exc:
        stage.main(["--detector", "defakehop", "--params", "params.yaml", "--manifest", "manifest.csv",
                    "--source", f"saab={tmp_path / 'saab'}", "--no-live"])
    assert exc.value.code == 2
    assert not (tmp_path / "models" / "defakehop").exists()                 # nothing trained
    fails = pd.read_csv(tmp_path / "data" / "failures" / "train" / "defakehop.csv")
    assert set(fails["video_id"]) == poisoned and set(fails["stage"]) == {"train@defakehop"}
    assert fails["reason"].str.contains("NaN, 0 inf in saab right_eye_hop1").all()


# ----------------------------------------------------------------------------- model files
def _evaluate_stage():
    spec = importlib.util.spec_from_file_location("evaluate_stage_nf", REPO / "stages" / "evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_evaluate_stage_records_unscored_rows(workdir, trained, tmp_path, monkeypatch):
    root, manifest = workdir
    det, _, _ = trained
    det.save(tmp_path / "models" / "defakehop")
    nan_vid = _test_videos(manifest)[0]

    def poison(vid, frames, fields):
        if vid == nan_vid:
            fields = dict(fields, left_eye_hop3=np.full_like(fields["left_eye_hop3"], np.nan))
        return frames, fields

    _rewrite_store(root / "saab", tmp_path / "saab", poison)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "params.yaml").write_text("seed: 7\n")
    monkeypatch.chdir(tmp_path)
    _evaluate_stage().main(["--detector", "defakehop", "--params", "params.yaml",
                            "--manifest", "manifest.csv", "--source", "saab=saab"])
    metrics = json.loads((tmp_path / "metrics" / "defakehop.json").read_text())
    assert metrics["test"]["unscored"] == {"frames": N_FRAMES, "videos": 1}
    fails = pd.read_csv(tmp_path / "data" / "failures" / "evaluate" / "defakehop.csv")
    assert list(fails["video_id"]) == [nan_vid] * N_FRAMES
    assert set(fails["stage"]) == {"evaluate@defakehop"}
    per_frame = Store(root / "saab").read(nan_vid, "left_eye_hop3")[0].size     # 3 x 3 x channels
    assert set(fails["reason"]) == {f"non-finite features: {per_frame} NaN, 0 inf in saab left_eye_hop3"}
    scores = pd.read_csv(tmp_path / "data" / "scores" / "defakehop.csv")
    assert nan_vid not in set(scores["video_id"])
    # the report stage's gathering finds the new tables
    from dfdetect.report import collect_failures

    assert set(collect_failures(tmp_path / "data" / "failures")["stage"]) == {"evaluate@defakehop"}


def test_unloadable_model_files_name_the_file_and_the_reason(workdir, trained, tmp_path, monkeypatch,
                                                             capsys):
    from dfdetect.detectors.base import ModelLoadError

    root, manifest = workdir
    det, _, _ = trained
    model = tmp_path / "models" / "defakehop"
    det.save(model)
    good = {p.name: p.read_bytes() for p in model.iterdir()}
    cls = get("defakehop")

    def broken(name: str, content: bytes | None) -> str:
        for k, v in good.items():
            (model / k).write_bytes(v)
        if content is None:
            (model / name).unlink()
        else:
            (model / name).write_bytes(content)
        with pytest.raises(ModelLoadError) as err:
            cls.load(model)
        assert err.value.path == model / name
        text = str(err.value)
        assert text.startswith(f"{model / name}: ") and "\n" not in text
        return text[len(f"{model / name}: "):]

    # the case: valid JSON that is not an XGBoost model (raw XGBoostError: map::at)
    reason = broken("final_xgb.json", b'{"learner": {"attributes": {}}, "version": [3, 0, 0]}\n')
    assert reason.startswith("not an XGBoost model (XGBoostError: ") and "Stack trace" not in reason
    assert broken("final_xgb.json", b"not json").startswith("not an XGBoost model (JSONDecodeError: ")
    assert broken("region_xgb.json", None) == "missing file"
    assert broken("pca.npz", good["pca.npz"][:100]).startswith("not an npz archive (")
    cfg = json.loads(good["config.json"])
    assert broken("config.json", json.dumps({**cfg, "detector": "resnet50"}).encode()) == \
        "config says detector resnet50, expected defakehop"
    # the evaluate stage prints that one line and exits 2
    broken("final_xgb.json", b"[1, 2, 3]")
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "params.yaml").write_text("seed: 7\n")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        _evaluate_stage().main(["--detector", "defakehop", "--params", "params.yaml", "--manifest",
                                "manifest.csv", "--source", f"saab={root / 'saab'}"])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"evaluate defakehop: cannot load the model: {Path('models/defakehop/final_xgb.json')}: "
                   f"{err[-1].split('final_xgb.json: ', 1)[1]}"]
    assert "not an XGBoost model" in err[0]


def test_evaluate_stage_with_no_scorable_test_item_exits_2(workdir, trained, tmp_path, monkeypatch,
                                                           capsys):
    root, manifest = workdir
    det, _, _ = trained
    det.save(tmp_path / "models" / "defakehop")
    tests = set(_test_videos(manifest))

    def poison(vid, frames, fields):
        if vid in tests:
            fields = dict(fields, mouth_hop1=np.full_like(fields["mouth_hop1"], np.inf))
        return frames, fields

    _rewrite_store(root / "saab", tmp_path / "saab", poison)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    (tmp_path / "params.yaml").write_text("seed: 7\n")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        _evaluate_stage().main(["--detector", "defakehop", "--params", "params.yaml",
                                "--manifest", "manifest.csv", "--source", "saab=saab"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("evaluate defakehop: no item of the 'test' split could be scored")
    assert f"{len(tests) * N_FRAMES} rows with non-finite inputs" in err
    fails = pd.read_csv(tmp_path / "data" / "failures" / "evaluate" / "defakehop.csv")
    assert set(fails["video_id"]) == tests
    assert not (tmp_path / "metrics" / "defakehop.json").exists()


# ----------------------------------------------------------------------------- issue 11
def _offset_responses(seed: int = 0, n: int = 400, k: int = 6):
    """(n, 7, 7, k) smooth spatial responses (a decaying spectrum of cosine maps), and the same
    with a per-channel offset of ~1e4 differing by 1e3 between channels, as Saab biases give."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:7, 0:7] / 6.0
    basis = np.stack([np.cos(np.pi * (a * yy + b * xx)) for a in range(4) for b in range(4)])
    coef = rng.normal(size=(n, k, len(basis))) / np.sqrt(1.0 + np.arange(len(basis)))
    clean = np.einsum("nkb,bhw->nhwk", coef, basis) * 50.0
    offsets = 13_000.0 + 1_000.0 * rng.random(k)
    return clean, clean + offsets


def test_spatial_pca_centres_each_channel_before_the_90_percent_cut():
    """Issue 11: the per-unit Saab offsets dominated the shared PCA (49 -> 1 at hop 2)."""
    from dfdetect.detectors.defakehop import DefakeHop, SpatialPCA

    clean, offset = _offset_responses()
    n_clean = SpatialPCA(0.9).fit(clean).n_components
    assert n_clean > 3
    assert SpatialPCA(0.9).fit(offset).n_components == n_clean        # the default centres
    assert SpatialPCA(0.9, norm="none").fit(offset).n_components == 1  # the old behaviour
    assert DefakeHop.defaults["pca_channel_norm"] == "mean"
    # centring is part of the fitted transform: train and test rows are shifted alike
    pca = SpatialPCA(0.9).fit(offset)
    np.testing.assert_allclose(pca.transform(offset[:5]), SpatialPCA(0.9).fit(offset).transform(offset[:5]))
    assert abs(pca.transform(offset).mean()) < 1.0


def _leak_store(root: Path, seed: int = 0, frames=(0, 6, 12, 18)):
    """A one-channel Saab store whose only feature is a random code per CLIP, shared by the
    clip's c23 and c40 copies (two videos): a classifier that has seen one copy knows the other's
    label, one that has not knows nothing. 24 people in 12 pairs; each has a real clip and a fake
    clip whose source is their partner (FF++'s t_s / s_t)."""
    rng = np.random.default_rng(seed)
    rows, videos = [], []
    for p in range(24):
        for clip, label in ((0, "real"), (1, "fake")):
            code = float(rng.random())
            for q in ("c23", "c40"):
                vid = f"{label}/p{p:02d}_clip{clip}_{q}.mp4"
                rows.append({"video_id": vid, "path": vid, "dataset": "synthetic", "label": label,
                             "method": "swap" if label == "fake" else "", "quality": q,
                             "split": "train", "identity": f"p{p:02d}",
                             "source_id": f"p{p ^ 1:02d}" if label == "fake" else ""})
                feats = np.full((len(frames), 3, 3, 1), code)
                videos.append((vid, feats.astype(np.float32)))
    with ShardWriter(shard_path(root / "saab", 0), stage="saab_features") as w:
        for vid, feats in sorted(videos):
            w.add_video(vid, np.asarray(frames), left_eye_hop1=feats)
    return pd.DataFrame(rows)


def test_folds_group_people_linked_by_fakes(tmp_path):
    from dfdetect.detectors.defakehop import fold_groups, make_folds

    manifest = _leak_store(tmp_path)
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=0, progress=False)
    items = data.items("saab", "train")
    groups, info = fold_groups(items, manifest)
    assert info["grouping"].startswith("people linked by fakes") and info["linked_groups"] == 12
    folds = make_folds(items["y"].to_numpy(), groups, 3, 0)
    ident = items.merge(manifest[["video_id", "source_id"]], on="video_id")
    f = ident.assign(f=folds)
    # a person's every clip and quality in one fold, and every fake in its source person's fold
    assert f.groupby("identity")["f"].nunique().max() == 1
    fold_of = f.groupby("identity")["f"].first()
    fakes = f[f["source_id"] != ""]
    assert (fakes["source_id"].map(fold_of) == fakes["f"]).all()
    # fakes that link every person into one group: fall back to the target identity, said so
    chain = manifest.copy()
    fake = chain["label"] == "fake"
    chain.loc[fake, "source_id"] = [f"p{(int(i[1:]) + 1) % 24:02d}" for i in chain.loc[fake, "identity"]]
    groups, info = fold_groups(items, chain)
    assert info["linked_groups"] == 1 and info["grouping"].startswith("target identity, purged")
    assert len(np.unique(groups)) == 24
    assert items.assign(g=groups).groupby("identity")["g"].nunique().max() == 1


def test_fold_training_rows_never_show_a_held_out_face(tmp_path):
    """Purged cross-fitting: a fold's channel classifiers never train on a row whose person or
    source person is shown in the fold; with folds of linked people nothing is purged."""
    from dfdetect.detectors.defakehop import fold_groups, fold_train_masks, make_folds

    manifest = _leak_store(tmp_path)
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=0, progress=False)
    items = data.items("saab", "train")
    y = items["y"].to_numpy()
    folds = make_folds(y, fold_groups(items, manifest)[0], 3, 0)
    for f, m in enumerate(fold_train_masks(items, manifest, folds)):
        np.testing.assert_array_equal(m, folds != f)            # linked folds: no purge
    chain = manifest.copy()
    fake = chain["label"] == "fake"
    chain.loc[fake, "source_id"] = [f"p{(int(i[1:]) + 1) % 24:02d}" for i in chain.loc[fake, "identity"]]
    folds = make_folds(y, fold_groups(items, chain)[0], 4, 0)
    rows = items.merge(chain[["video_id", "source_id"]], on="video_id")
    faces = lambda r: set(r["identity"]) | set(r["source_id"]) - {""}  # noqa: E731
    for f, m in enumerate(fold_train_masks(items, chain, folds)):
        held = faces(rows[folds == f])
        assert not (m & (folds == f)).any() and m.sum() > 0
        assert not faces(rows[m]) & held
        # only rows touching the fold's faces are purged: p's fake wears p+1, p-1's fake wears p
        kept = rows[(folds != f) & ~m]
        assert (kept["identity"].isin(held) | kept["source_id"].isin(held)).all()


def _face_store(root: Path, seed: int = 0, frames=(0, 6, 12, 18)):
    """A faceswap-like one-channel Saab store in which fakes link every person: 24 people in a
    ring, each with a real clip showing their own face and a fake clip onto them whose face is
    the next person's (``source_id``). Positions 0-7 hold the face shown (a random code per
    person, what a classifier can memorise), position 8 a weak generic artefact (fakes +1, unit
    noise: the only cue that carries over to unseen people)."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(24, 8))
    rows, videos = [], []
    for p in range(24):
        for label in ("real", "fake"):
            face = p if label == "real" else (p + 1) % 24
            vid = f"{label}/p{p:02d}.mp4"
            rows.append({"video_id": vid, "path": vid, "dataset": "synthetic", "label": label,
                         "method": "swap" if label == "fake" else "", "quality": "c23",
                         "split": "train", "identity": f"p{p:02d}",
                         "source_id": f"p{face:02d}" if label == "fake" else ""})
            feats = np.empty((len(frames), 9))
            feats[:, :8] = codes[face] + 0.05 * rng.normal(size=(len(frames), 8))
            feats[:, 8] = (label == "fake") + rng.normal(size=len(frames))
            videos.append((vid, feats.reshape(len(frames), 3, 3, 1).astype(np.float32)))
    with ShardWriter(shard_path(root / "saab", 0), stage="saab_features") as w:
        for vid, feats in sorted(videos):
            w.add_video(vid, np.asarray(frames), left_eye_hop1=feats)
    return pd.DataFrame(rows)


def _final_inputs(det, data, monkeypatch):
    """Fit ``det`` and return what its final classifier was fitted on."""
    import dfdetect.detectors.defakehop as D

    seen = []
    real_train = D._train

    def spy(x, y, spec, seed, nthread):
        if spec is det.params["final_xgb"]:
            seen.append((np.array(x), np.array(y)))
        return real_train(x, y, spec, seed, nthread)

    monkeypatch.setattr(D, "_train", spy)
    summary = det.fit(data)
    assert len(seen) == 1
    return summary, *seen[0]


def _refit_channel_probs(det, data) -> np.ndarray:
    """The refit left-eye hop-1 channel-0 classifier's predictions on the train split."""
    import dfdetect.detectors.defakehop as D

    items = data.items("saab", "train")
    z = det.pcas[("left_eye", 1)].transform(D.DefakeHop._read_field(Store(data.source("saab")), items,
                                                                    "left_eye_hop1"))
    return D._predict(det.channel_models["left_eye_hop1"][0], z[:, 0, :])


FACE_PARAMS = {"regions": ["left_eye"], "hops": [1], "n_folds": 4, "neighbours": 0,
               "channel_probs": "out_of_fold",
               "pca_energy": 1.0, "channel_xgb": {"n_estimators": 100, "learning_rate": 0.3},
               "region_heads": False, "nthread": 1}


def test_purged_folds_keep_out_of_fold_probabilities_from_inverting(tmp_path, monkeypatch):
    """The demo's fakes link all its people, so folds are by target identity. Unpurged, a held-out
    fake wears a face the other folds hold as real and a held-out real face is the source of fakes
    there: the out-of-fold probabilities came out inverted (17-person real-media demo: test video
    AUC 0.33). Purged of the fold's people, they follow the generic artefact."""
    from sklearn.metrics import roc_auc_score

    manifest = _face_store(tmp_path)
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=0, progress=False)
    summary, x, y = _final_inputs(create("defakehop", FACE_PARAMS), data, monkeypatch)
    assert summary["fold_grouping"].startswith("target identity, purged")
    assert summary["folds"] == 4 and summary["folds_one_class"] == 0
    assert all(t < o for t, o in zip(summary["fold_train_rows"], summary["fold_outside_rows"]))
    auc = roc_auc_score(y, x[:, 0])
    assert auc > 0.55, auc                                   # 0.62
    assert summary["channel_auc"]["median"] == pytest.approx(auc, abs=1e-4)
    # the same folds unpurged (the code before): inverted
    import dfdetect.detectors.defakehop as D

    monkeypatch.setattr(D, "fold_train_masks",
                        lambda items, manifest, folds: [folds != f for f in range(folds.max() + 1)])
    _, x, y = _final_inputs(create("defakehop", FACE_PARAMS), data, monkeypatch)
    assert roc_auc_score(y, x[:, 0]) < 0.45                  # 0.22


def test_in_sample_channel_probabilities_are_the_refit_models(tmp_path, monkeypatch):
    """``channel_probs: in_sample`` (the authors' code): the final classifier is fitted on the
    refit channel classifiers' own train-split predictions; no folds."""
    manifest = _face_store(tmp_path)
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=0, progress=False)
    det = create("defakehop", {**FACE_PARAMS, "channel_probs": "in_sample"})
    summary, x, y = _final_inputs(det, data, monkeypatch)
    assert summary["folds"] == 0 and summary["channel_probs"] == "in_sample"
    np.testing.assert_allclose(x[:, 0], _refit_channel_probs(det, data))
    assert summary["channel_auc"]["median"] > 0.85          # 0.90: the faces memorised in-sample
    with pytest.raises(ValueError, match="channel_probs"):
        create("defakehop", {"channel_probs": "oof"})


def test_auto_channel_probabilities_follow_the_people_fakes_link(tmp_path):
    """``channel_probs: auto`` (default): out of fold where fakes leave groups of linked people
    (FF++'s pairs: nothing purged), in-sample where they link everyone (the demo)."""
    from dfdetect.detectors.defakehop import DefakeHop

    assert DefakeHop.defaults["channel_probs"] == "auto"
    params = {**FACE_PARAMS, "channel_probs": "auto"}
    ring = _face_store(tmp_path / "ring")
    data = DetectorData(ring, sources={"saab": tmp_path / "ring" / "saab"}, seed=0, progress=False)
    summary = create("defakehop", params).fit(data)
    assert summary["channel_probs"] == "in_sample" and summary["folds"] == 0
    assert summary["fold_grouping"] == "none (in-sample, auto: fakes link the 24 train people into 1 group(s))"
    pairs = _leak_store(tmp_path / "pairs")
    data = DetectorData(pairs, sources={"saab": tmp_path / "pairs" / "saab"}, seed=0, progress=False)
    summary = create("defakehop", params).fit(data)
    assert summary["channel_probs"] == "out_of_fold" and summary["folds"] == 4
    assert summary["fold_train_rows"] == summary["fold_outside_rows"]      # nothing purged


def test_final_classifier_is_fed_out_of_fold_probabilities(tmp_path, monkeypatch):
    """Issue 11: folds grouped by video put a clip's other quality copy in the training folds,
    so a clip-specific feature was a perfect out-of-fold predictor inside the train split. With
    folds grouped by people, the channel probabilities the final classifier is trained on are
    at chance on that feature, while the refit (in-sample) channel model is near perfect."""
    from sklearn.metrics import roc_auc_score

    manifest = _leak_store(tmp_path)
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=0, progress=False)
    det = create("defakehop", {"regions": ["left_eye"], "hops": [1], "n_folds": 6, "neighbours": 0,
                               "channel_xgb": {"n_estimators": 200, "learning_rate": 0.5},
                               "region_heads": False, "nthread": 1})
    _, x_final, y = _final_inputs(det, data, monkeypatch)
    assert x_final.shape == (len(y), 1)
    oof_auc = roc_auc_score(y, x_final[:, 0])
    in_sample = roc_auc_score(y, _refit_channel_probs(det, data))
    assert in_sample > 0.95                      # the feature is memorisable in-sample
    assert oof_auc < 0.7, oof_auc                # but the final classifier never sees that
    # (folds by video: 0.81, the other quality copy of each clip sat in the training folds)


def test_dense_frame_selection_in_source_frames():
    """Issue 11: DefakeHop's own frames, every 6th of the video, and the +-3 window over the
    adjacent ones in source frames (the authors' code), where the sampled frames allow it."""
    from dfdetect.detectors.defakehop import neighbour_rows, select_frames

    frames = {"a": np.arange(0, 49, 3),                 # dense: every 3rd frame
              "b": np.array([0, 7, 14, 21, 28, 35, 42, 49]),   # uniform 8 of 50: sparser
              "c": np.array([0, 6, 12, 24, 30])}         # the grid, frame 18 without a face
    items = pd.DataFrame([(v, int(f)) for v, fs in frames.items() for f in fs],
                         columns=["video_id", "frame_index"])
    sel, info = select_frames(items, 6)
    got = sel.groupby("video_id")["frame_index"].apply(list).to_dict()
    assert got["a"] == list(range(0, 49, 6))
    assert got["b"] == list(frames["b"]) and got["c"] == list(frames["c"])
    assert info == {"frame_step": 6, "videos": 3, "videos_dense": 2, "frames_sampled": 30,
                    "frames_used": 9 + 8 + 5}
    rows = neighbour_rows(sel, 3, 6)
    fi = sel["frame_index"].to_numpy()

    def window(video, frame):
        return list(fi[rows[np.flatnonzero((sel["video_id"] == video) & (sel["frame_index"] == frame))[0]]])

    assert window("a", 24) == [6, 12, 18, 24, 30, 36, 42]
    assert window("a", 0) == [0, 0, 0, 0, 6, 12, 18]
    assert window("a", 48) == [30, 36, 42, 48, 48, 48, 48]
    assert window("c", 12) == [0, 0, 6, 12, 12, 24, 30]          # 18 missing: the nearest before
    assert window("c", 24) == [6, 12, 24, 24, 30, 30, 30]         # 18 missing: the nearest after
    assert window("b", 21) == [0, 7, 14, 21, 28, 35, 42]         # sparse: adjacent sampled frames
    # step 0: every sampled frame, adjacent windows (the behaviour before)
    sel0, info0 = select_frames(items, 0)
    assert len(sel0) == 30 and info0["videos_dense"] == 0
    np.testing.assert_array_equal(neighbour_rows(sel0, 3, 0), neighbour_rows(items, 3))


def test_detector_uses_its_dense_frames(tmp_path):
    manifest = _leak_store(tmp_path, frames=np.arange(0, 24, 3))
    data = DetectorData(manifest, sources={"saab": tmp_path / "saab"}, seed=0, progress=False)
    det = create("defakehop", {"regions": ["left_eye"], "hops": [1], "n_folds": 3,
                               "channel_xgb": {"n_estimators": 5}, "final_xgb": {"n_estimators": 5},
                               "region_heads": False, "nthread": 1})
    assert det.params["frame_step"] == 6
    summary = det.fit(data)
    assert summary["train_frames"] == 96 * 4                      # frames 0, 6, 12, 18 of 0..21
    assert summary["frame_selection"]["videos_dense"] == 96
    scores = det.score(data, "train")
    assert sorted(scores["frame_index"].unique()) == [0, 6, 12, 18]
    extra = det.fidelity(data, "train")
    assert extra["frame_selection"]["train"]["frames_used"] == 96 * 4
    assert extra["folds"]["fold_grouping"].startswith("people linked by fakes")
    assert extra["pca_components"] == {"left_eye": {"hop1": det.pcas[("left_eye", 1)].n_components}}
