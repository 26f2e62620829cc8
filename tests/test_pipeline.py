"""The whole DAG under DVC, on a tiny demo, in a temporary copy of the project.

- every stage runs and the leaderboard is written;
- a second ``dvc repro`` runs nothing and ``dvc status`` is clean;
- changing one detector's training param reruns only that detector's train/evaluate and the
  report, never the expensive cached stages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dfdetect.servers import copy_project

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.pipeline

# the demo shrunk to seconds of work; every other param stays as in params.yaml
TINY = {
    "make_demo": {"seconds": 0.6, "size": 128, "identities": 6, "clips": 1, "preset": "ultrafast"},
    "make_demo_audio": {"allison": 4, "tts": 4, "vc": 4},
    # the audio dataset only: the video tracks' transcripts feed `dfdetect predict`'s fusion
    # (tests/test_predict.py), no stage of this DAG; they were 46 of 58 Whisper runs here
    "transcribe": {"sources": ["audio"]},
    "sample_frames": {"num_frames": 3},
    "train_mst": {"steps": 4, "crop": 0, "flops_size": 32, "scenes": {"train": 4, "heldout": 2, "size": 32}},
    "hyperspectral": {"size": 32},
    "text_model": {"epochs": 2, "corpus": {"max_authors": 4, "max_per_author": 10}},
    "audio_model": {"fixed_epochs": 1, "ada_epochs": 1, "final_epochs": 1},
    "models": {"defakehop": {"n_folds": 2, "channel_xgb": {"n_estimators": 10},
                             "final_xgb": {"n_estimators": 10}},
               "dada_mid": {"epochs": 5},
               "two_branch": {"seq_len": 3}},  # the tiny demo stores 3 faces per video
}


def _deep_update(d: dict, u: dict) -> dict:
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            _deep_update(d[k], v)
        else:
            d[k] = v
    return d


def _run(cmd, cwd, env, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def _shrink_models(params: dict) -> None:
    for cfg in (params.get("models") or {}).values():
        if not isinstance(cfg, dict):
            continue
        for key, value in (("epochs", 1), ("image_size", 32), ("max_train_frames", 16)):
            if key in cfg:
                cfg[key] = value


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    dst = tmp_path_factory.mktemp("proj")
    copy_project(REPO, dst)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    _deep_update(params, TINY)
    _shrink_models(params)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=str(dst / "src"), DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.pop("DFDETECT_MEDIA", None)
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], dst, env)
    _run(dvc + ["init", "-q"], dst, env)
    _run(dvc + ["config", "core.analytics", "false"], dst, env)
    _run(["git", "add", "-A"], dst, env)
    _run(["git", "commit", "-qm", "init"], dst, env)
    first = _run(dvc + ["repro"], dst, env)
    return dst, env, dvc, params, first


def _stages(dst, env, dvc) -> list[str]:
    out = _run(dvc + ["stage", "list", "--name-only"], dst, env).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_every_stage_ran(project):
    dst, env, dvc, params, first = project
    stages = _stages(dst, env, dvc)
    lock = yaml.safe_load((dst / "dvc.lock").read_text())["stages"]
    assert set(stages) == set(lock), f"stages without a lock entry: {set(stages) - set(lock)}"
    board = (dst / "metrics" / "leaderboard.csv").read_text()
    for name in (params.get("models") or {}):
        if any(s == f"train@{name}" for s in stages):
            assert name in board
            m = json.loads((dst / "metrics" / f"{name}.json").read_text())
            assert "test" in m


def test_metric_learning_outputs(project):
    """metric_learning.txt end to end: dlib embeddings per faces shard, both triplet detectors
    with their Table III extras, Xception, the t-SNE plot."""
    dst, *_ = project
    from dfdetect.store import ShardReader

    for shard in (0, 1):
        faces = ShardReader(dst / "data" / "faces" / f"shard-{shard}.h5")
        with ShardReader(dst / "data" / "face_emb" / f"shard-{shard}.h5") as emb:
            assert sorted(emb.videos()) == sorted(faces.videos())
            vid = emb.videos()[0]
            assert emb.read(vid, "embedding").shape == (len(faces.frame_indices(vid)), 128)
        faces.close()
    for name, other in (("triplet_sgd", "rf"), ("triplet_rf", "sgd")):
        m = json.loads((dst / "metrics" / f"{name}.json").read_text())
        assert "dlib_face_recognition_resnet_model_v1" in m["init"]["init"]
        assert {f"triplets_{other}", f"raw_{name[8:]}", "abx_raw", "abx_learned"} <= set(m["extra"])
        assert {"tnr", "precision_real", "recall_real", "f1_real"} <= set(m["test"]["video"])
    assert "legacy_xception" in json.loads((dst / "models" / "xception" / "config.json").read_text())["arch"]
    assert (dst / "metrics" / "plots" / "triplet_tsne.png").read_bytes()[:4] == b"\x89PNG"
    tsne = pd.read_csv(dst / "metrics" / "triplet_tsne.csv")
    assert set(tsne["embedding"]) == {"raw", "learned"}


def test_second_repro_runs_nothing(project):
    dst, env, dvc, *_ = project
    out = _run(dvc + ["repro"], dst, env).stdout
    assert "Running stage" not in out, out
    status = _run(dvc + ["status"], dst, env).stdout
    assert "up to date" in status.lower(), status


def test_param_change_reruns_only_downstream(project):
    dst, env, dvc, params, _ = project
    stages = _stages(dst, env, dvc)
    trained = [s.split("@", 1)[1] for s in stages if s.startswith("train@")]
    assert trained, "no train stages in dvc.yaml"
    name = trained[0]
    p = yaml.safe_load((dst / "params.yaml").read_text())
    cfg = p["models"][name]
    floats = [k for k, v in cfg.items() if isinstance(v, float)]
    assert floats, f"models.{name} has no float param to change"
    cfg[floats[0]] = cfg[floats[0]] * 0.5  # e.g. the learning rate; the stage tracks models.<name>
    (dst / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    out = _run(dvc + ["repro"], dst, env).stdout
    ran = sorted({line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")})
    assert f"train@{name}" in ran and f"evaluate@{name}" in ran and "report" in ran, ran
    upstream = {"make_demo", "ingest"} | {s for s in stages if s.split("@")[0] in
                                          ("sample_frames", "align_faces", "saab_features",
                                           "train_mst", "hyperspectral", "extract_audio", "transcribe",
                                           "face_embeddings")}
    assert not upstream & set(ran), ran
    others = [s for s in ran if s.startswith(("train@", "evaluate@")) and not s.endswith("@" + name)]
    assert not others, others
    assert "up to date" in _run(dvc + ["status"], dst, env).stdout.lower()


def test_cross_dataset_sets(project):
    """The default test set is scored by every video detector; adding a real-only set would run
    only its own branch (`dvc status` lists the stages), never refits the Saab trees or MST++, and
    two of its detectors, run for real, give one-class statistics (the leaderboard's set and
    pooled columns are tests/test_report.py's)."""
    dst, env, dvc, *_ = project
    lock = yaml.safe_load((dst / "dvc.lock").read_text())["stages"]
    dets = [s.split("@", 1)[1].rsplit("-", 1)[0] for s in lock if s.startswith("evaluate_set@")]
    assert {"resnet50", "defakehop", "hyperfake", "triplet_sgd", "triplet_rf", "xception", "two_branch"} <= set(dets), dets
    for det in dets:
        m = json.loads((dst / "metrics" / "sets" / "demo_unseen" / f"{det}.json").read_text())
        assert m["test"]["video"]["n_videos"] > 0 and m["thresholds"].get("given")
    board = pd.read_csv(dst / "metrics" / "leaderboard.csv")
    assert "demo_unseen:auc" in board.columns, list(board.columns)
    fitted = {p: p.read_bytes() for d in ("models/saab", "models/mst")
              for p in sorted((dst / d).rglob("*")) if p.is_file()}
    assert fitted
    p = yaml.safe_load((dst / "params.yaml").read_text())
    p["test_sets"]["unseen_reals"] = {"layout": "generic", "root": "data/demo_unseen/real",
                                      "label": "real", "identity_from": "folder", "use": "all"}
    (dst / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    would = sorted(json.loads(_run(dvc + ["status", "--json"], dst, env).stdout))  # the stages to rerun
    assert would and all("unseen_reals" in s or s == "report" for s in would), would
    assert {f"evaluate_set@{d}-unseen_reals" for d in dets} <= set(would), would
    some = ["evaluate_set@defakehop-unseen_reals", "evaluate_set@resnet50-unseen_reals"]
    out = _run(dvc + ["repro", *some], dst, env).stdout
    ran = sorted({line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")})
    assert ran and all("unseen_reals" in s for s in ran), ran
    assert {p: p.read_bytes() for p in fitted} == fitted
    for det in ("defakehop", "resnet50"):
        v = json.loads((dst / "metrics" / "sets" / "unseen_reals" / f"{det}.json").read_text())["test"]["video"]
        assert v["auc"] is None and v["n_pos"] == 0 and v["n_neg"] > 0
        assert 0.0 <= v["flag_rate"] <= 1.0 and v["mean_score"] is not None
