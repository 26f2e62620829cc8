"""benchmarks/quality.py: which real videos it trains on, which detectors, what it prints (no DAG run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("_quality_bench", REPO / "benchmarks" / "quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_training_sources_leave_out_evaluation_copies_and_spread_people(quality, tmp_path):
    media = tmp_path / "media"
    _write(media / "videos" / "alice.mp4", b"alice-bytes")
    _write(media / "videos" / "bob.mp4", b"bob-bytes")
    for clip in ("angry", "sad", "happy"):
        _write(media / "videos" / "mead" / f"M001_front_{clip}.mp4", f"m1-{clip}".encode())
    _write(media / "videos" / "mead" / "W002_front_sad.mp4", b"w2")
    _write(media / "deepfakes" / "sadtalker" / "real" / "alice_copy.mp4", b"alice-bytes")   # evaluated in (c)
    _write(media / "deepfakes" / "extra_real" / "bob_copy.mp4", b"bob-bytes")             # never evaluated
    _write(media / "deepfakes" / "deepfacelive" / "real" / "x.mp4", b"alice-byteX")       # same size, other bytes
    picked, excluded, people = quality.training_sources(media, 0, seed=1)
    names = sorted(p.name for p in picked)
    assert [p.name for p in excluded] == ["alice.mp4"]
    assert "bob.mp4" in names and len(names) == 5 and people == 3     # MEAD grouped by actor
    picked, _, people = quality.training_sources(media, 3, seed=1)
    assert people == 3 and len(picked) == 3                            # one per person first
    assert quality.training_sources(media, 3, seed=1)[0] == picked     # seeded


def test_video_detectors_are_the_registry_s_visual_ones(quality):
    params = {"models": {"resnet50": {}, "defakehop": {}, "dada_mid": {}}}
    dets = quality.video_detectors(params, None)
    assert dets == {"defakehop": ("saab",), "resnet50": ("faces",)}    # no audio detector
    assert quality.video_detectors(params, ["hyperfake"]) == {"hyperfake": ("hsi",)}
    with pytest.raises(quality.BenchError, match="not video detectors"):
        quality.video_detectors(params, ["dada_late"])


def test_tables_print_auc_with_interval_per_scenario(quality):
    def det(auc, ci, lomo=None):
        out = {"wall_s": 12.0, "test": {"auc": auc, "auc_ci": ci, "n": 8, "n_pos": 6, "n_neg": 2,
                                         "n_identities": 3}, "sets": {}}
        if lomo is not None:
            out["sets"]["lomo"] = {"auc": lomo, "auc_ci": [lomo - 0.1, lomo + 0.05], "n": 6,
                                   "n_pos": 3, "n_neg": 3, "n_identities": 3}
        return out

    a = {"preprocess_s": 100.0, "detectors": {"resnet50": det(0.8125, [0.7, 0.9])}}
    a["detectors"]["resnet50"]["sets"] = {"deepfacelive": {"auc": 0.61, "auc_ci": [0.4, 0.8], "n": 12,
                                                           "n_pos": 6, "n_neg": 6, "n_identities": 6},
                                          "sadtalker": {"auc": None}}
    a["sets"] = {"deepfacelive": {}, "sadtalker": {}}
    b = {"preprocess_s": 50.0, "detectors": {"resnet50": det(0.9, [0.8, 1.0], lomo=0.55)}}
    text = quality.tables({"in_domain": a, "faceswap_to_reenact": b})
    assert "| resnet50 | 0.812 [0.700, 0.900] | 6+2 / 3 | 12 |" in text
    assert "0.550 [0.450, 0.600]" in text                                # (b) faceswap -> reenact
    assert "| resnet50 | 0.610 [0.400, 0.800] | 6+6 / 6 | n/a |" in text   # (c), SadTalker missing
    assert "in_domain: preprocessing 100" in text


def test_sbi_arms_table_and_capable_detectors(quality):
    """(d): each SBI-capable detector (those taking synthetic_fakes) with none / mixed / sbi
    (reals only), its test split and the (c) sets side by side."""
    assert set(quality.sbi_detectors({"resnet50": ("faces",), "defakehop": ("saab",),
                                      "xception": ("faces",)})) == {"resnet50", "xception"}

    def det(auc, dfl):
        return {"wall_s": 5.0, "test": {"auc": auc, "auc_ci": [auc - 0.1, auc + 0.1]},
                "sets": {"deepfacelive": {"auc": dfl, "auc_ci": [dfl - 0.2, dfl + 0.1]}}}

    a = {"preprocess_s": 1.0, "sets": {"deepfacelive": {}},
         "detectors": {"resnet50": det(0.7, 0.5), "defakehop": det(0.6, 0.4)}}
    mixed = {"preprocess_s": 0.0, "detectors": {"resnet50": det(0.75, 0.6)}}
    reals = {"preprocess_s": 0.0, "detectors": {"resnet50": det(0.65, 0.7)}}
    text = quality.tables({"in_domain": a, "sbi_mixed": mixed, "sbi_reals": reals})
    assert "(d) self-blended training fakes" in text
    assert "| resnet50 | none | 0.700 [0.600, 0.800] | 0.500 [0.300, 0.600] |" in text
    assert "| resnet50 | mixed | 0.750 [0.650, 0.850] | 0.600 [0.400, 0.700] |" in text
    assert "| resnet50 | sbi | 0.650 [0.550, 0.750] | 0.700 [0.500, 0.800] |" in text
    assert "| defakehop | none" not in text          # not SBI-capable: only in (a)
    assert "(d)" not in quality.tables({"in_domain": a})


def test_a_kept_workdir_is_copied_into_again(quality, tmp_path):
    """``--workdir`` resumes: the project is copied into the earlier copy (it raised
    FileExistsError), its code folders replaced (a stale file goes), its data kept."""
    from dfdetect.servers import copy_project

    run = tmp_path / "in_domain"
    copy_project(quality.REPO, run)
    (run / "src" / "stale.py").write_text("x = 1\n")
    _write(run / "data" / "faces" / "shard-0.h5", b"kept")
    copy_project(quality.REPO, run)
    assert not (run / "src" / "stale.py").exists()
    assert (run / "src" / "dfdetect" / "servers.py").read_bytes() == \
        (REPO / "src" / "dfdetect" / "servers.py").read_bytes()
    assert (run / "data" / "faces" / "shard-0.h5").read_bytes() == b"kept"


def test_recipe_training_lifts_the_demo_caps_only(quality):
    import yaml

    params = yaml.safe_load((quality.REPO / "params.yaml").read_text())
    demo = {k: dict(v) for k, v in params["models"].items()}
    changed = quality.recipe_training(params, ["efficientnet_b0", "two_branch", "defakehop"])
    eff = params["models"]["efficientnet_b0"]
    assert (eff["epochs"], eff["patience"], eff["max_train_frames"], eff["max_val_frames"]) == (40, 5, 0, 0)
    assert changed["efficientnet_b0"] == {"epochs": 40, "patience": 5, "max_train_frames": 0,
                                          "max_val_frames": 0}
    # everything else of the section is the demo's (image size, lr, augmentation)
    assert {k: v for k, v in eff.items() if k not in quality.RECIPE_KEYS} == \
        {k: v for k, v in demo["efficientnet_b0"].items() if k not in quality.RECIPE_KEYS}
    assert "two_branch" not in changed and params["models"]["two_branch"] == demo["two_branch"]
    assert "defakehop" not in changed


def _blur_store(root: Path, videos: list[tuple[str, str, bool]]) -> None:
    """A faces store and manifest: one video per (label, split, blurred) of noise faces, one
    identity per video; blurred faces are a Gaussian blur of the same kind of noise."""
    import cv2
    import numpy as np
    import pandas as pd

    from dfdetect.store import ShardWriter

    rng = np.random.default_rng(0)
    rows = []
    (root / "data" / "faces").mkdir(parents=True)
    with ShardWriter(root / "data" / "faces" / "shard-0.h5") as w:
        for i, (label, split, blurred) in enumerate(videos):
            faces = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
            if blurred:
                faces = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in faces])
            vid = f"{label}/{split}-{i}.mp4"
            w.add_video(vid, [0, 5], face=faces)
            rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{i % 4}"})
    pd.DataFrame(rows).to_csv(root / "data" / "manifest.csv", index=False)


def test_laplacian_variance_falls_with_blur():
    import cv2
    import numpy as np

    from dfdetect.cues import laplacian_variance

    face = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    sharp, soft = laplacian_variance(face), laplacian_variance(cv2.GaussianBlur(face, (0, 0), 2.0))
    assert sharp > 10 * soft > 0
    assert laplacian_variance(np.full((50, 40, 3), 128, np.uint8)) == 0.0
    with pytest.raises(ValueError, match="RGB face"):
        laplacian_variance(np.zeros((32, 32), np.uint8))


def test_blur_cue_reads_each_split_and_points_the_way_the_data_does(quality, tmp_path):
    # train: the fakes are the sharp ones (the cue points the wrong way: AUC 0);
    # test: the fakes are the blurred ones (AUC 1)
    videos = [("fake", "train", False), ("real", "train", True)] * 4 + \
             [("fake", "test", True), ("real", "test", False)] * 4
    _blur_store(tmp_path, videos)
    cue = quality.blur_cue(tmp_path, {}, draws=50, seed=0)
    assert set(cue) == {"train", "test"}
    assert cue["train"]["auc"] == 0.0 and cue["test"]["auc"] == 1.0
    assert (cue["test"]["n_pos"], cue["test"]["n_neg"], cue["test"]["n_identities"]) == (4, 4, 4)
    assert cue["test"]["median_sharpness"]["real"] > cue["test"]["median_sharpness"]["fake"]
    assert len(cue["test"]["auc_ci"]) == 2
    text = quality.tables({"in_domain": {"detectors": {}, "sets": {}, "preprocess_s": 1.0}, "blur_cue": cue})
    assert "(e) reference" in text and "| test | 1.000 [" in text and "| train | 0.000 [" in text


def test_blur_cue_groups_videos_without_identity_on_their_own(quality, tmp_path):
    import pandas as pd

    _blur_store(tmp_path, [("fake", "test", True), ("real", "test", False)] * 3)
    m = pd.read_csv(tmp_path / "data" / "manifest.csv")
    m["identity"] = ""                                   # a set whose layout gives no identity
    m.to_csv(tmp_path / "data" / "manifest.csv", index=False)
    cue = quality.blur_cue(tmp_path, {}, draws=50, seed=0)
    assert cue["test"]["n_identities"] == 6 and cue["train"] is None


def test_lomo_needs_the_two_default_methods(quality, tmp_path, capsys):
    assert quality.main(["--media", str(tmp_path), "--methods", "faceswap", "decoder",
                         "--scenarios", "lomo"]) == 2
    assert "needs --methods faceswap reenact" in capsys.readouterr().err


def test_set_seed_reseeds_the_whole_run(quality, tmp_path, monkeypatch):
    """``--set seed=N`` is the seed of everything the run draws (source picks, DeepFaceLive subset,
    the held-out method's demo for lomo), not only of the DAG."""
    import argparse

    import yaml

    seen = []

    def picks(media, max_sources, seed):       # the run's first draw; stop there
        seen.append(seed)
        raise quality.BenchError("stop")

    monkeypatch.setattr(quality, "training_sources", picks)
    monkeypatch.setattr(quality.shutil, "which", lambda name: "/usr/bin/" + name)
    assert quality.main(["--media", str(tmp_path), "--detectors", "defakehop", "--set", "seed=7"]) == 2
    assert seen == [7]

    args = argparse.Namespace(profile="demo", training="demo", detectors=["defakehop"],
                              overrides=["seed=7", "models.defakehop.channel_probs=in_sample"])
    params, recipe = quality.run_params(args)
    assert params["seed"] == 7 and recipe == {}
    assert params["models"]["defakehop"]["channel_probs"] == "in_sample"
    assert yaml.safe_load((REPO / "params.yaml").read_text())["seed"] != 7


def test_laplacian_variance_measures_edges_not_contrast():
    import numpy as np

    from dfdetect.cues import laplacian_variance

    ramp = np.repeat(np.linspace(0, 255, 128)[None, :, None], 128, axis=0).repeat(3, axis=2).astype(np.uint8)
    assert ramp.std() > 50                                   # full contrast ...
    assert laplacian_variance(ramp) < 1.0                     # ... and no edges: near zero


def test_faces_montage_one_row_per_split_and_label(quality, tmp_path):
    import cv2

    videos = [("fake", "train", False), ("real", "train", True)] * 3 + [("fake", "test", True)]
    _blur_store(tmp_path, videos)
    out = quality.faces_montage(tmp_path, {"absent_set": {}}, tmp_path / "sheet" / "faces.png", per_row=2)
    sheet = cv2.imread(str(out))
    # rows: train real, train fake, test fake (no test real; the absent set has no store);
    # 96 px per face, 2 faces a row beside the title strip
    assert sheet.shape[0] == 3 * 96 and sheet.shape[1] > 2 * 96
    faces = sheet[:, -2 * 96:]
    assert faces[:96].std() > 0 and faces[2 * 96:, :96].std() > 0   # every row shows its faces
    assert (faces[2 * 96:, 96:] == 255).all()                        # one test fake: one face
    assert not list(out.parent.glob("*.tmp*"))                        # written atomically


def test_face_montage_refuses_no_rows(tmp_path):
    from dfdetect.cues import face_montage

    with pytest.raises(ValueError, match="no rows"):
        face_montage([], tmp_path / "x.png")
