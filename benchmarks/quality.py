"""Quality benchmark on real media (by hand, not CI): video AUC with 95 % bootstrap intervals.

    DFDETECT_MEDIA=../shared/media python benchmarks/quality.py [--max-sources 6]
        [--detectors resnet50 defakehop] [--profile demo|full] [--training demo|recipe]
        [--methods faceswap reenact decoder]
        [--workdir DIR] [--max-pairs N]
        [--set models.resnet50.epochs=5 ...]

From the real videos of ``$DFDETECT_MEDIA/videos`` (MEAD clips grouped by actor, every other
file one person; files byte-identical to a clip of the evaluation sets of (c) are left out, so
no evaluation clip is trained on) it builds the identity-split real-media demo (``make_demo`` with
``source`` = those videos) and runs the project's own DAG (``dvc repro`` in temporary copies of
the project, :func:`dfdetect.servers.copy_project`, one shared DVC cache), three times:

(a) **in-domain**: trained on faceswap + reenact, scored on the demo's test split; the same
    models are scored on (c);
(b) **leave-one-method-out**: trained on faceswap only, scored on the reenact fakes (and reals)
    of the same test people, and back: the held-out method is built by ``make_demo_unseen``
    with the same seed and sources (so the same people in the same splits) and read as a
    ``test_sets`` entry with ``use: split``;
(c) **cross-dataset**: ``deepfakes/deepfacelive`` (real/fake pairs of the same streams, its
    ``labels.csv``, generic layout) and ``deepfakes/sadtalker`` (``real/`` + ``fake/``) as
    ``test_sets`` entries with ``use: all``: evaluation only, never training data.

Every video detector of the registry (inputs: faces, Saab features or MST++ cubes) that has a
``models.<name>`` section in params.yaml is trained with those params (``--detectors`` picks;
a registered one without a section gets its defaults; ``--set`` overrides any key). Video AUC
and its interval are the ``evaluate`` stage's (identity-grouped bootstrap, ``evaluate.bootstrap``
draws, seeded). Printed: the three tables and the wall time of each run's shared
preprocessing and of each detector's train + evaluate. ``--profile demo`` (default: one
quality, 2 clips of 2 s per person, 8 frames per video) fits a small run on 2 cores;
``--profile full`` is the full-size setting (c23 + c40, 4 clips, 32 frames per video).
``--methods`` picks make_demo's fake methods that (a) and (d) train on (default faceswap +
reenact; (b) needs exactly those two). ``--training`` picks the models' training length: ``demo`` (default) trains with params.yaml's
sections (DEMO PROFILE caps: 3 epochs, 256 frames), ``recipe`` with each detector's code
defaults for epochs, patience and frame caps (README "Training recipes"; image sizes unchanged).
Results also go to ``<workdir>/quality.json`` (and, with ``--workdir``, ``<workdir>/faces.png``: the
first face of 8 videos per split, label and set, to see what the training fakes show that the
sets' do not); with ``--workdir`` the copies are kept and a rerun
reuses every stage already done.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

MEAD_REGEX = r"([MW]\d{3})_"
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
INPUT_DIRS = {"faces": "data/faces", "saab": "data/saab", "hsi": "data/hsi", "face_emb": "data/face_emb"}
PROFILES = {
    "demo": {"make_demo": {"clips": 2, "seconds": 2.0, "fps": 25, "size": 256, "qualities": ["c23"],
                           "preset": "veryfast"},
             "sample_frames": {"num_frames": 8}},
    "full": {"make_demo": {"clips": 4, "seconds": 2.0, "fps": 25, "size": 256,
                           "qualities": ["c23", "c40"], "preset": "medium"},
             "sample_frames": {"num_frames": 32}},
}
METHODS = ("faceswap", "reenact")
SCENARIOS = ("in_domain", "lomo", "sbi")
# params.yaml's DEMO PROFILE caps that --training recipe sets back to the code defaults
RECIPE_KEYS = ("epochs", "patience", "max_train_frames", "max_val_frames")
# (d): run name -> models.<det>.synthetic_fakes; the in_domain run is the "none" arm
SBI_ARMS = {"sbi_mixed": "mixed", "sbi_reals": "sbi"}


def get_defaults(name: str) -> dict:
    from dfdetect.detectors.base import get  # noqa: PLC0415

    return dict(get(name).defaults or {})


def sbi_detectors(dets: dict) -> dict:
    """The detectors of ``dets`` that train on frames and take ``synthetic_fakes``."""
    return {n: v for n, v in dets.items() if "synthetic_fakes" in get_defaults(n)}


class BenchError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- inputs


EVAL_SETS = ("deepfacelive", "sadtalker")     # folders of media/deepfakes scored in (c)


def training_sources(media: Path, max_sources: int, seed: int) -> tuple[list[Path], list[Path], int]:
    """(picked, excluded, people): the real videos under ``media/videos`` (sorted), minus those
    whose bytes also lie in an evaluation set (``deepfakes/deepfacelive``, ``deepfakes/sadtalker``:
    two SadTalker reals are copies of ``videos/`` clips); at most ``max_sources`` (0 =
    all), picked one per identity per round in a seeded order so a small run still has as many
    people as it can."""
    import numpy as np  # noqa: PLC0415

    from dfdetect.data.identity import path_identity  # noqa: PLC0415
    from dfdetect.store import file_sha256  # noqa: PLC0415

    root = media / "videos"
    if not root.is_dir():
        raise BenchError(f"{root}: no videos folder (DFDETECT_MEDIA must be the shared media folder)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXT)
    held: dict[int, list[Path]] = {}
    for name in EVAL_SETS:
        for p in (media / "deepfakes" / name).rglob("*"):
            if p.is_file() and p.suffix.lower() in VIDEO_EXT:
                held.setdefault(p.stat().st_size, []).append(p)
    keep, excluded = [], []
    for p in files:
        same = [q for q in held.get(p.stat().st_size, []) if file_sha256(q) == file_sha256(p)]
        (excluded if same else keep).append(p)
    by_id: dict[str, list[Path]] = {}
    for p in keep:
        ident, _ = path_identity(p.relative_to(root).as_posix(), "file", MEAD_REGEX, root.name)
        by_id.setdefault(ident, []).append(p)
    rng = np.random.default_rng([int(seed), 1010])
    ids = sorted(by_id)
    ids = [ids[i] for i in rng.permutation(len(ids))]
    queues = {i: [by_id[i][j] for j in rng.permutation(len(by_id[i]))] for i in ids}
    picked: list[Path] = []
    while any(queues.values()) and (not max_sources or len(picked) < max_sources):
        for i in ids:
            if queues[i] and (not max_sources or len(picked) < max_sources):
                picked.append(queues[i].pop(0))
    people = len({i for i in ids if any(p in picked for p in by_id[i])})
    return sorted(picked), excluded, people


def _copy_files(files, root: Path, dst: Path) -> None:
    for p in files:
        out = dst / p.relative_to(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out)


def deepfacelive_subset(src: Path, dst: Path, max_pairs: int, seed: int) -> int:
    """Copy the DeepFaceLive pairs (both halves of each picked clip, its labels.csv rows)."""
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    labels = pd.read_csv(src / "labels.csv", keep_default_na=False, dtype=str)
    clips = sorted(labels["identity"].unique())
    if max_pairs and len(clips) > max_pairs:
        pick = np.sort(np.random.default_rng([int(seed), 2020]).choice(len(clips), max_pairs, replace=False))
        clips = [clips[i] for i in pick]
    labels = labels[labels["identity"].isin(clips)]
    _copy_files([src / p for p in labels["path"]], src, dst)
    labels.to_csv(dst / "labels.csv", index=False)
    return len(clips)


# ----------------------------------------------------------------------------- the project copy
def video_detectors(params: dict, wanted: list[str] | None) -> dict[str, tuple[str, ...]]:
    """name -> inputs of the registry's video detectors (faces / saab / hsi inputs)."""
    from dfdetect.detectors.base import registry  # noqa: PLC0415

    reg = {n: tuple(c.inputs) for n, c in registry().items() if set(c.inputs) <= set(INPUT_DIRS)}
    if wanted:
        unknown = [n for n in wanted if n not in reg]
        if unknown:
            raise BenchError(f"--detectors: {unknown} are not video detectors of the registry "
                             f"(video detectors: {', '.join(sorted(reg))})")
        return {n: reg[n] for n in wanted}
    return {n: reg[n] for n in sorted(reg) if n in (params.get("models") or {})}


def recipe_training(params: dict, dets) -> dict[str, dict]:
    """``--training recipe``: each detector's demo caps (:data:`RECIPE_KEYS` of params.yaml's
    DEMO PROFILE) replaced by its code defaults, the recipe (README "Training recipes"): for the
    frame CNNs 40 epochs with early stopping after 5 on val AUC and every frame. Image sizes are
    left as they are (CPU cost; ``--set`` them). Returns what was changed, per detector."""
    from dfdetect.profiles import code_default_overrides  # noqa: PLC0415

    changed: dict[str, dict] = {}
    for name in dets:
        section = params.setdefault("models", {}).setdefault(name, get_defaults(name))
        diff = {k: v for k, v in code_default_overrides(section, get_defaults(name)).items()
                if k in RECIPE_KEYS}
        section.update(diff)
        if diff:
            changed[name] = diff
    return changed


def _set_key(params: dict, dotted: str, value) -> None:
    from dfdetect.profiles import apply  # noqa: PLC0415

    try:
        apply(params, {dotted: value})
    except ValueError as err:
        raise BenchError(f"--set {err}") from None


def _deep_update(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def prepare_run(run: Path, params: dict, dets: dict, sets: dict) -> None:
    """The project copy of one scenario: files, params.yaml, a dvc.yaml whose detector tables
    hold only ``dets`` (video detectors) and DVC initialised without git."""
    from dfdetect.detectors.base import get  # noqa: PLC0415
    from dfdetect.servers import copy_project  # noqa: PLC0415

    run.mkdir(parents=True, exist_ok=True)
    copy_project(REPO, run)
    p = json.loads(json.dumps(params))
    p["test_sets"] = sets
    for name in dets:
        if name not in p.setdefault("models", {}):
            p["models"][name] = dict(get(name).defaults or {})
    (run / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    dag = yaml.safe_load((run / "dvc.yaml").read_text())
    for table in dag["vars"]:
        if "train_inputs" in table:
            rows = {}
            for name, inputs in dets.items():
                dirs = [INPUT_DIRS[i] for i in inputs] or ["data/faces"]
                dirs = (dirs * 4)[:4]
                rows[name] = {"m": "data/manifest.csv", **dict(zip("abcd", dirs))}
            table["train_inputs"] = rows
        if "set_detectors" in table:
            table["set_detectors"] = {name: {} for name in dets}
    (run / "dvc.yaml").write_text(yaml.safe_dump(dag, sort_keys=False))
    if not (run / ".dvc").is_dir():
        _dvc(run, ["init", "--no-scm", "-q"])
        _dvc(run, ["config", "core.analytics", "false"])


def _env(run: Path) -> dict:
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=str(run / "src"), DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("DFDETECT_MEDIA", None)
    return env


def _dvc(run: Path, args: list[str], log: Path | None = None) -> str:
    cmd = [sys.executable, "-m", "dvc", *args]
    proc = subprocess.run(cmd, cwd=run, env=_env(run), text=True, capture_output=True)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ dvc {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise BenchError(f"dvc {' '.join(args)} failed in {run} (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def repro(run: Path, targets: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    if targets:
        _dvc(run, ["repro", *targets], log)
    return time.perf_counter() - t0


def stage_names(run: Path) -> list[str]:
    out = _dvc(run, ["stage", "list", "--name-only"])
    return [s.strip() for s in out.splitlines() if s.strip()]


def run_scenario(run: Path, params: dict, dets: dict, sets: dict, log: Path, on_update=None) -> dict:
    """In a prepared copy: preprocessing (timed once), then each detector's train + evaluate
    (timed each); the metrics the evaluate stages wrote."""
    names = stage_names(run)
    pre = [s for s in names if s.startswith(("align_faces@", "saab_features"))]
    if any("hsi" in inputs for inputs in dets.values()):
        pre += [s for s in names if s.startswith("hyperspectral@")]
    for s in sets:
        pre += [n for n in names if n.startswith((f"align_faces_set@{s}-", f"hyperspectral_set@{s}-"))]
    out = {"preprocess_s": repro(run, sorted(set(pre)), log), "detectors": {}}
    for name in dets:
        targets = [f"evaluate@{name}"] + [f"evaluate_set@{name}-{s}" for s in sets]
        missing = [t for t in targets if t not in names]
        if missing:
            raise BenchError(f"{run}: no stage {missing} in dvc.yaml")
        wall = repro(run, targets, log)
        m = {"wall_s": wall, "test": _video(run / "metrics" / f"{name}.json")}
        m["sets"] = {s: _video(run / "metrics" / "sets" / s / f"{name}.json") for s in sets}
        out["detectors"][name] = m
        if on_update is not None:                   # partial results survive an interrupted run
            on_update(out)
    return out


def _video(path: Path) -> dict:
    m = json.loads(path.read_text())
    v = (m.get("test") or {}).get("video") or {}
    return {"auc": v.get("auc"), "auc_ci": v.get("auc_ci"), "n": v.get("n_videos", v.get("n")),
            "n_identities": v.get("n_identities"), "n_pos": v.get("n_pos"), "n_neg": v.get("n_neg")}


def _face_parts(sets: dict) -> list[tuple[str, str, str, str | None]]:
    """(name, faces store, manifest, split or None) of the demo's train and test splits and of
    each (c) set, relative to a run folder: what (e) and the faces sheet read."""
    parts = [("train", "data/faces", "data/manifest.csv", "train"),
             ("test", "data/faces", "data/manifest.csv", "test")]
    return parts + [(name, f"data/sets/{name}/faces", f"data/sets/{name}/manifest.csv", None)
                    for name in sets]


def blur_cue(run: Path, sets: dict, draws: int, seed: int) -> dict:
    """(e): the AUC of "blurrier = fake" (score = minus the mean Laplacian variance of a video's
    128 px faces, :mod:`dfdetect.cues`; nothing trained) on the demo's train and test
    splits and on each (c) set, with the identity-bootstrap interval of ``evaluate``. Read the
    detectors' AUCs against it: a set where this cue is far from 0.5 has fakes that differ from
    its reals in sharpness alone; a train split where it points the other way teaches the
    opposite of that set's cue."""
    from dfdetect.data.manifest import read_manifest  # noqa: PLC0415
    from dfdetect.cues import video_sharpness  # noqa: PLC0415
    from dfdetect.metrics import _groups_of, level_metrics  # noqa: PLC0415

    out = {}
    cache: dict[str, object] = {}
    for name, faces, manifest, split in _face_parts(sets):
        if faces not in cache:
            cache[faces] = video_sharpness(run / faces)
        m = read_manifest(run / manifest)
        if split is not None:
            m = m[m["split"] == split]
        d = m.merge(cache[faces], on="video_id")
        if d.empty:
            out[name] = None
            continue
        groups, _ = _groups_of(m, d["video_id"])   # evaluate's groups: identity, else the video
        v = level_metrics((d["label"] == "fake").astype(int).to_numpy(), -d["sharpness"].to_numpy(),
                          groups, d["video_id"].to_numpy(), bootstrap=draws, seed=seed)
        out[name] = {"auc": v.get("auc"), "auc_ci": v.get("auc_ci"), "n": v.get("n_videos"),
                     "n_identities": v.get("n_identities"), "n_pos": v.get("n_pos"), "n_neg": v.get("n_neg"),
                     "median_sharpness": {lab: float(g.median()) for lab, g in d.groupby("label")["sharpness"]}}
    return out


def faces_montage(run: Path, sets: dict, out: Path, per_row: int = 8) -> Path:
    """A contact sheet (:func:`dfdetect.cues.face_montage`) of the in-domain run's faces: the
    demo's train and test reals and fakes, then each (c) set's, ``per_row`` videos a row spread
    evenly over the sorted video ids (so over people and methods), the first face of each."""
    import numpy as np  # noqa: PLC0415

    from dfdetect.cues import face_montage  # noqa: PLC0415
    from dfdetect.data.manifest import read_manifest  # noqa: PLC0415

    rows = []
    for name, faces, manifest, split in _face_parts(sets):
        if not (run / manifest).is_file() or not (run / faces).is_dir():
            continue
        m = read_manifest(run / manifest)
        if split is not None:
            m = m[m["split"] == split]
        for label in ("real", "fake"):
            ids = sorted(m.loc[m["label"] == label, "video_id"])
            if ids:
                spread = [ids[i] for i in np.unique(np.linspace(0, len(ids) - 1, per_row).round().astype(int))]
                # the evenly spread ones first; the others stand in for any without a face
                rows.append((f"{name} {label}", run / faces, spread + [v for v in ids if v not in spread]))
    return face_montage(rows, out, per_row=per_row)


# ----------------------------------------------------------------------------- printing
def _auc(v: dict | None) -> str:
    if not v or v.get("auc") is None:
        return "n/a"
    ci = v.get("auc_ci") or [None, None]
    lo, hi = ("?" if x is None else f"{x:.3f}" for x in ci)
    return f"{v['auc']:.3f} [{lo}, {hi}]"


def _n(v: dict | None) -> str:
    if not v or v.get("n") is None:
        return ""
    return f"{v.get('n_pos')}+{v.get('n_neg')} / {v.get('n_identities')}"


def tables(results: dict) -> str:
    lines = []
    a, b, c = results.get("in_domain"), results.get("faceswap_to_reenact"), results.get("reenact_to_faceswap")
    dets = list((a or b or c or {}).get("detectors", {}))
    if a:
        methods = " + ".join((results.get("settings") or {}).get("methods") or METHODS)
        lines += [f"(a) in-domain: trained on {methods}, test split of the real-media demo",
                  "| detector | video AUC [95 % CI] | fakes+reals / identities | wall s (train + evaluate) |",
                  "| --- | --- | --- | --- |"]
        for d in dets:
            r = a["detectors"][d]
            lines.append(f"| {d} | {_auc(r['test'])} | {_n(r['test'])} | {r['wall_s']:.0f} |")
        lines.append("")
    if b or c:
        lines += ["(b) leave-one-method-out: test people of the same demo, the held-out method's fakes",
                  "| detector | faceswap -> reenact | n | reenact -> faceswap | n | in-domain (train method) fs / re |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for d in dets:
            rb = (b or {}).get("detectors", {}).get(d)
            rc = (c or {}).get("detectors", {}).get(d)
            lines.append(f"| {d} | {_auc(rb and rb['sets'].get('lomo'))} | {_n(rb and rb['sets'].get('lomo'))} "
                         f"| {_auc(rc and rc['sets'].get('lomo'))} | {_n(rc and rc['sets'].get('lomo'))} "
                         f"| {_auc(rb and rb['test'])} / {_auc(rc and rc['test'])} |")
        lines.append("")
    if a and a.get("sets"):
        names = list(a["sets"])
        lines += ["(c) cross-dataset: the (a) models on real deepfakes never trained on",
                  "| detector | " + " | ".join(f"{s} | n" for s in names) + " |",
                  "| --- | " + " | ".join("--- | ---" for _ in names) + " |"]
        for d in dets:
            r = a["detectors"][d]["sets"]
            lines.append(f"| {d} | " + " | ".join(f"{_auc(r.get(s))} | {_n(r.get(s))}" for s in names) + " |")
        lines.append("")
    arms = [("none", a)] + [(SBI_ARMS[k], results.get(k)) for k in SBI_ARMS]
    if a and any(r for _, r in arms[1:]):
        names = list(a.get("sets") or {})
        sbi_dets = [d for d in dets if any(r and d in r.get("detectors", {}) for _, r in arms[1:])]
        lines += ["(d) self-blended training fakes (SBI): synthetic_fakes none (= (a)) | mixed (dataset fakes + "
                  "self-blends) | sbi (reals and their self-blends only); test split, then the (c) sets",
                  "| detector | synthetic_fakes | test | " + " | ".join(names) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
        for d in sbi_dets:
            for mode, r in arms:
                row = (r or {}).get("detectors", {}).get(d)
                if row is None:
                    continue
                lines.append(f"| {d} | {mode} | {_auc(row['test'])} | "
                             + " | ".join(_auc(row["sets"].get(s)) for s in names) + " |")
        lines.append("")
    cue = results.get("blur_cue")
    if cue:
        lines += ["(e) reference, nothing trained: AUC of \"blurrier = fake\" (minus the Laplacian variance "
                  "of the 128 px faces, video mean); train split = the direction the demo teaches",
                  "| set | AUC [95 % CI] | fakes+reals / identities | median sharpness fake / real |",
                  "| --- | --- | --- | --- |"]
        for name, v in cue.items():
            med = (v or {}).get("median_sharpness") or {}
            lines.append(f"| {name} | {_auc(v)} | {_n(v)} | "
                         f"{med.get('fake', float('nan')):.0f} / {med.get('real', float('nan')):.0f} |")
        lines.append("")
    lines.append("wall time (s): " + "; ".join(
        f"{k}: preprocessing {v['preprocess_s']:.0f}, detectors "
        + ", ".join(f"{d} {r['wall_s']:.0f}" for d, r in v["detectors"].items())
        for k, v in results.items() if isinstance(v, dict) and "preprocess_s" in v))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def run_params(args) -> tuple[dict, dict]:
    """params.yaml with the profile, the training recipe and the ``--set`` overrides applied, and
    the recipe. The run's seed is read from the result, so ``--set seed=N`` reseeds the source
    picks, the DeepFaceLive subset and the held-out method's demo with the DAG (before
    2026-12-06 they kept params.yaml's seed: under ``--scenarios lomo`` the held-out method's
    demo then drew other splits than the training demo)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    _deep_update(params, PROFILES[args.profile])
    recipe = recipe_training(params, video_detectors(params, args.detectors)) \
        if args.training == "recipe" else {}
    for key, value in _parse_set(args.overrides):
        _set_key(params, key, value)
    return params, recipe


def _parse_set(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        if "=" not in item:
            raise BenchError(f"--set {item!r}: expected KEY=VALUE (dotted key, YAML value)")
        k, v = item.split("=", 1)
        out.append((k.strip(), yaml.safe_load(v)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", default=os.environ.get("DFDETECT_MEDIA", ""),
                    help="the shared media folder (default: $DFDETECT_MEDIA)")
    ap.add_argument("--max-sources", type=int, default=0,
                    help="real videos used for training/testing, one per person per round (0 = all)")
    ap.add_argument("--detectors", nargs="+", default=None,
                    help="video detectors (default: every registered one with a models.<name> section)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    from dfdetect.data.demo.build import METHODS as DEMO_METHODS  # noqa: PLC0415

    ap.add_argument("--methods", nargs="+", choices=DEMO_METHODS, default=list(METHODS),
                    help="make_demo's fake methods trained on in (a) and (d) (default: faceswap reenact; "
                         "(b) needs exactly those two)")
    ap.add_argument("--training", choices=("demo", "recipe"), default="demo",
                    help="demo: the models' params.yaml sections (DEMO PROFILE: 3 epochs, 256 frames); "
                         "recipe: their code defaults for epochs, patience and frame caps (README "
                         "'Training recipes'); --set overrides either")
    ap.add_argument("--workdir", default="", help="keep the project copies here (rerun = resume); default: a temporary folder")
    ap.add_argument("--max-pairs", type=int, default=0, help="DeepFaceLive pairs used in (c) (0 = all 56)")
    ap.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS),
                    help="in_domain: (a) + (c); lomo: (b); sbi: (d), each SBI-capable detector again "
                    "with synthetic_fakes mixed and sbi (reals only), scored like (a) and (c)")
    ap.add_argument("--tables-from", default="", metavar="JSON",
                    help="only print the tables of a (partial) <workdir>/quality.json")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a params.yaml key in every run (repeatable), e.g. models.resnet50.epochs=5")
    args = ap.parse_args(argv)
    try:
        if args.tables_from:
            print(tables(json.loads(Path(args.tables_from).read_text())))
            return 0
        return _main(args)
    except BenchError as err:
        print(f"benchmarks/quality.py: {err}", file=sys.stderr)
        return 2


def _main(args) -> int:
    if not args.media or not Path(args.media).is_dir():
        raise BenchError("set DFDETECT_MEDIA (or --media) to the shared media folder")
    if args.max_sources < 0 or args.max_pairs < 0:
        raise BenchError("--max-sources and --max-pairs must be >= 0")
    if "lomo" in args.scenarios and sorted(args.methods) != sorted(METHODS):
        raise BenchError(f"--scenarios lomo trains on one of {' and '.join(METHODS)} and tests on the "
                         f"other: it needs --methods {' '.join(METHODS)}")
    if shutil.which("ffmpeg") is None:
        raise BenchError("ffmpeg is not installed (make doctor)")
    media = Path(args.media).resolve()
    params, recipe = run_params(args)
    seed = int(params["seed"])
    dets = video_detectors(params, args.detectors)
    if not dets:
        raise BenchError("no video detector to train")
    picked, excluded, people = training_sources(media, args.max_sources, seed)
    if people < 6:
        raise BenchError(f"{len(picked)} source videos of {people} people: at least 6 people are "
                         "needed (2 per split)")
    work = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="dfdetect-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "dvc.log"
    cache = work / "dvc-cache"
    print(f"quality: {len(picked)} source videos of {people} people ({len(excluded)} left out: "
          "copies of evaluation clips), "
          f"detectors {', '.join(dets)}, profile {args.profile}, workdir {work}", file=sys.stderr)
    src_root = media / "videos"
    md = params["make_demo"]
    md.update({"source": "data/media_source", "max_sources": 0, "identity_from": "file",
               "identity_regex": MEAD_REGEX, "methods": list(args.methods)})
    results: dict = {"settings": {"profile": args.profile, "max_sources": args.max_sources,
                                  "sources": [p.relative_to(src_root).as_posix() for p in picked],
                                  "excluded": [p.relative_to(src_root).as_posix() for p in excluded],
                                  "detectors": list(dets), "overrides": args.overrides,
                                  "training": args.training, "recipe": recipe,
                                  "methods": list(args.methods),
                                  "max_pairs": args.max_pairs}}
    t_all = time.perf_counter()
    runs = []
    if "in_domain" in args.scenarios:
        runs.append(("in_domain", list(args.methods), None))
    if "lomo" in args.scenarios:
        runs += [("faceswap_to_reenact", ["faceswap"], "reenact"), ("reenact_to_faceswap", ["reenact"], "faceswap")]
    runs = [(n, m, h, dets, None) for n, m, h in runs]
    if "sbi" in args.scenarios:
        capable = sbi_detectors(dets)
        if not capable:
            raise BenchError(f"--scenarios sbi: none of {', '.join(dets)} takes synthetic_fakes")
        runs += [(n, list(args.methods), None, capable, mode) for n, mode in SBI_ARMS.items()]
    for name, train_methods, held_out, run_dets, sbi_mode in runs:
        run = work / name
        p = json.loads(json.dumps(params))
        p["make_demo"]["methods"] = train_methods
        if sbi_mode is not None:   # same demo and preprocessing as in_domain (DVC run-cache)
            for det in run_dets:
                p.setdefault("models", {}).setdefault(det, get_defaults(det))["synthetic_fakes"] = sbi_mode
        sets: dict = {}
        if held_out is None:
            dfl = run / "data" / "eval_sets" / "deepfacelive"
            if not (dfl / "labels.csv").exists():
                n = deepfacelive_subset(media / "deepfakes" / "deepfacelive", dfl, args.max_pairs, seed)
                results["settings"]["deepfacelive_pairs"] = n
            st = run / "data" / "eval_sets" / "sadtalker"
            if not st.is_dir():
                src = media / "deepfakes" / "sadtalker"
                _copy_files([q for q in src.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_EXT], src, st)
            sets = {"deepfacelive": {"layout": "generic", "root": "data/eval_sets/deepfacelive",
                                     "csv": "labels.csv", "use": "all"},
                    "sadtalker": {"layout": "generic", "root": "data/eval_sets/sadtalker", "csv": "",
                                  "use": "all"}}
        else:
            # the held-out method's fakes of the same people: same seed and sources, so the same splits
            p["make_demo_unseen"] = dict(p["make_demo"], seed=seed, methods=[held_out])
            sets = {"lomo": {"layout": "generic", "root": "data/demo_unseen", "use": "split"}}
        if not (run / "data" / "media_source").is_dir():
            _copy_files(picked, src_root, run / "data" / "media_source")
        run.mkdir(parents=True, exist_ok=True)
        prepare_run(run, p, run_dets, sets)
        _dvc(run, ["cache", "dir", "--local", str(cache)])
        print(f"quality: {name}: dvc repro in {run} ...", file=sys.stderr)
        def save(partial, name=name, sets=sets):
            results[name] = dict(partial, sets=sets)
            (work / "quality.json").write_text(json.dumps(results, indent=1))

        save(run_scenario(run, p, run_dets, sets, log, on_update=save))
        if name == "in_domain":
            results["blur_cue"] = blur_cue(run, sets, int(p["evaluate"].get("bootstrap", 1000)), seed)
            if args.workdir:
                sheet = faces_montage(run, sets, work / "faces.png")
                print(f"quality: faces of each split and set (first face of 8 videos a row) -> {sheet}",
                      file=sys.stderr)
    results["wall_s"] = time.perf_counter() - t_all
    (work / "quality.json").write_text(json.dumps(results, indent=1))
    print(f"settings: profile {args.profile}, {len(picked)} source videos of {people} people "
          f"(MEAD grouped by actor), {len(excluded)} left out (copies of evaluation clips), detectors {', '.join(dets)}, DeepFaceLive pairs {results['settings'].get('deepfacelive_pairs', 'n/a')}, "
          f"training {args.training}, overrides {args.overrides or 'none'}; total wall {results['wall_s']:.0f} s")
    print(tables(results))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
