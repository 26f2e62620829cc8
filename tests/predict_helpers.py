"""A tiny trained "DAG" for the predict tests: real videos with a face and speech, the DAG's
preprocessing into data/, three small detectors fitted and evaluated like train@/evaluate@.

Videos: scikit-image's astronaut photo (a real face), 200 x 200, 1 s at 25 fps with a seeded
drift; fakes have the face blurred and re-sharpened (a resampling artefact); every video has an
espeak-ng sentence as its AAC track. Detectors: efficientnet_b0 (faces, 32 px, 1 epoch),
defakehop (Saab features of the fitted PixelHop transforms), hyperfake (32 px cubes of a seeded,
untrained MST++: the weights only have to exist for the pipeline) and dada_late (frozen MiniLM
text branch + LFCC audio branch).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["the ship sailed across the stormy ocean", "the oven baked fresh bread this morning",
             "the striker scored a goal in extra time", "waves crashed on the deck of the boat",
             "add sugar and butter to the cake batter", "the team won the football match"]
VOICES = ["en-us", "en-gb", "en-us+f3"]
SPLITS = ["train"] * 6 + ["val"] * 4 + ["test"] * 2
TINY_PARAMS = {
    "sample_frames": {"strategy": "uniform", "num_frames": 4, "threads": 1},   # frames 0, 8, 16, 24
    "align_faces": {"fallback": "", "coarse_side": 0},
    "saab": {"fit_max_images": 200, "max_channels": 4, "executor": {"backend": "serial", "workers": 1}},
    "hyperspectral": {"size": 32, "batch_size": 8, "device": "cpu"},
    "executor": {"backend": "serial", "workers": 1},
}


def video_frames(seed: int, fake: bool, n: int = 25, size: int = 200) -> np.ndarray:
    import cv2
    from skimage import data

    img = data.astronaut()[40:260, 120:330]          # the face with a margin
    rng = np.random.default_rng(seed)
    dx, dy = rng.uniform(-6, 6, 2)
    frames = []
    for t in range(n):
        s = t / max(n - 1, 1)
        m = np.float32([[1, 0, dx * s], [0, 1, dy * s]])
        f = cv2.resize(cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT),
                       (size, size), interpolation=cv2.INTER_AREA)
        if fake:
            face = f[60:110, 70:126]
            small = cv2.resize(face, (28, 25), interpolation=cv2.INTER_AREA)
            f[60:110, 70:126] = cv2.resize(small, (56, 50), interpolation=cv2.INTER_LINEAR)
        frames.append(f)
    return np.stack(frames)


def no_face_frames(n: int = 25, size: int = 200) -> np.ndarray:
    """A moving colour gradient: a video in which there is no face to find."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([np.stack([(x + 4 * t) % 256, (y + 2 * t) % 256, np.full_like(x, 128)], -1)
                     for t in range(n)]).astype(np.uint8)


def make_video(path: Path, seed: int, fake: bool, speech: str | None = None, voice: str = "en-us",
               frames: np.ndarray | None = None) -> Path:
    from dfdetect.data.demo.audio import speak
    from dfdetect.data.demo.encode import encode_video

    wav = None
    if speech:
        wav = speak(speech, voice, 1.0, path.with_suffix(".wav"))
    encode_video(video_frames(seed, fake) if frames is None else frames, 25, "c23", path, audio_wav=wav,
                 preset="ultrafast")
    if wav is not None:
        Path(wav).unlink()
    return path


def write_params(root: Path) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in TINY_PARAMS.items():
        params[key] = {**params.get(key, {}), **value}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def build_dag(root: Path) -> dict:
    """``root`` with params.yaml, data/ (manifest, frames, faces, saab, hsi, audio, transcripts,
    scores), models/ (efficientnet_b0, defakehop, hyperfake, dada_late, saab, mst) and
    metrics/<name>.json."""
    from dfdetect.audio.model import AudioModel
    from dfdetect.data.manifest import normalise, write_manifest
    from dfdetect.detectors.base import DetectorData, create
    from dfdetect.detectors.evaluation import evaluate_detector
    from dfdetect.failures import Failures
    from dfdetect.predict.features import Preprocessor, collect_videos, probe_manifest
    from dfdetect.saab import features as F
    from dfdetect.store import Store, atomic_dir, write_csv_atomic, write_json_atomic
    from dfdetect.text.model import TextAuthorModel

    params = write_params(root)
    videos = root / "videos"
    videos.mkdir(parents=True)
    labels = {}
    for i, split in enumerate(SPLITS):
        fake = i % 2 == 1
        name = f"{'fake' if fake else 'real'}_{i:02d}.mp4"
        make_video(videos / name, seed=i, fake=fake, speech=SENTENCES[i % len(SENTENCES)],
                   voice=VOICES[i % len(VOICES)])
        labels[f"videos/{name}"] = ("fake" if fake else "real", split, f"spk{i % 3}")
    fails = Failures("test")
    manifest = probe_manifest(collect_videos([videos], fails), fails, executor="serial")
    manifest["label"] = [labels[v][0] for v in manifest["video_id"]]
    manifest["split"] = [labels[v][1] for v in manifest["video_id"]]
    manifest["identity"] = [labels[v][2] for v in manifest["video_id"]]
    manifest = normalise(manifest)
    data_dir = root / "data"
    write_manifest(manifest, data_dir / "manifest.csv")
    import torch

    from dfdetect.spectral import mst

    torch.manual_seed(params["seed"])
    (root / "models" / "mst").mkdir(parents=True)
    mst.save_weights(mst.build(params["hyperspectral"]["variant"]), root / "models" / "mst" /
                     f"mst_{params['hyperspectral']['variant']}.pt")
    pre = Preprocessor(params, root / "models", ["frames", "faces", "hsi", "audio", "transcripts"],
                       executor="serial", workers=1)
    assert not pre.unavailable, pre.unavailable
    work = root / "work"
    sources = pre.run(manifest, work, fails)
    for name in ("frames", "faces", "hsi", "audio"):
        shutil.copytree(sources[name], data_dir / name)
    shutil.copy(sources["transcripts"], data_dir / "transcripts.jsonl")
    shutil.rmtree(work)
    # Saab transforms fitted on the train patches (the saab_features stage's library calls)
    cfg = params["saab"]
    items = F.train_items(data_dir / "faces", manifest, int(cfg["fit_max_images"]), params["seed"])
    saab_models = F.fit_region_models(F.read_patches(data_dir / "faces", items), cfg["regions"], cfg,
                                      params["seed"])
    F.save_models(saab_models, root / "models" / "saab")
    F.transform_shard(data_dir / "faces" / "shard-0.h5", data_dir / "saab" / "shard-0.h5",
                      root / "models" / "saab", cfg["regions"], stage_params=cfg)
    # DADA branches: frozen MiniLM + authorship head on a tiny corpus, LFCC audio model
    tm = TextAuthorModel(epochs=2, hidden=16, embedding_dim=8, authors_per_batch=3, per_author=2)
    corpus = pd.DataFrame([{"author": f"spk{i % 3}", "text": s, "split": "train"}
                           for i, s in enumerate(SENTENCES * 2)])
    tm.fit(corpus, seed=0)
    tm.save(root / "models" / "dada_text")
    am = AudioModel(backbone="lfcc", fixed_epochs=1, ada_epochs=1, final_epochs=1, conv_channels=8,
                    bottleneck=16, embedding_dim=8, classes_per_batch=2, per_class=4)
    store = Store(data_dir / "audio")
    train = manifest[manifest["split"] == "train"]
    feats = [am.features(store.read(v, "wave")[0]) for v in train["video_id"]]
    store.close()
    y = (train["label"] == "fake").astype(int).to_numpy()
    am.fit(feats, y, y, seed=0)
    am.save(root / "models" / "dada_audio")
    detectors = {
        "efficientnet_b0": {"image_size": 32, "epochs": 1, "batch_size": 4, "pretrained": "none",
                            "max_train_frames": 0, "max_val_frames": 0, "num_threads": 1, "device": "cpu"},
        "defakehop": {"n_folds": 2, "neighbours": 1, "nthread": 1,
                      "channel_xgb": {"max_depth": 1, "n_estimators": 5, "learning_rate": 0.3},
                      "final_xgb": {"max_depth": 2, "n_estimators": 5, "learning_rate": 0.3}},
        "hyperfake": {"epochs": 1, "batch_size": 4, "eval_batch_size": 8, "pretrained": "none",
                      "max_train_frames": 0, "max_val_frames": 0, "num_threads": 1, "device": "cpu"},
        "dada_late": {"alpha": 0.5},
    }
    sources = {"faces": data_dir / "faces", "saab": data_dir / "saab", "hsi": data_dir / "hsi",
               "audio": data_dir / "audio",
               "transcripts": data_dir / "transcripts.jsonl", "dada_text": root / "models" / "dada_text",
               "dada_audio": root / "models" / "dada_audio"}
    for name, p in detectors.items():
        det = create(name, p)
        data = DetectorData(manifest, sources=sources, seed=params["seed"], progress=False)
        det.fit(data)
        with atomic_dir(root / "models" / name) as tmp:
            det.save(tmp)
        scores, result, _ = evaluate_detector(det, data, splits=["test", "val"], threshold=0.5)
        write_csv_atomic(data_dir / "scores" / f"{name}.csv", scores)
        write_json_atomic(root / "metrics" / f"{name}.json", result)
    return {"root": root, "manifest": manifest, "params": params}


def corrupt_copy(src: Path, dst: Path) -> Path:
    """The first 3 kB of ``src`` (an mp4 cut short: headers but no playable stream)."""
    dst.write_bytes(src.read_bytes()[:3000])
    return dst


def run_cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    import os
    import sys

    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "dfdetect.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
