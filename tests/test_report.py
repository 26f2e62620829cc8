"""Leaderboard, ROC plot and failures summary from synthetic evaluate outputs."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect import metrics as M
from dfdetect import report as R
from dfdetect.failures import Failures
from dfdetect.store import write_json_atomic

REPO = Path(__file__).resolve().parents[1]


def _doc(name, video_auc_shift, frame=True, total=1000):
    rng = np.random.default_rng(len(name))
    y = np.repeat([0, 1], 20)
    s = 1 / (1 + np.exp(-(rng.normal(size=40) + video_auc_shift * y)))
    test = {"video": M.binary_metrics(y, s)}
    if frame:
        test["frame"] = M.binary_metrics(np.repeat(y, 2), np.repeat(s, 2) + rng.normal(size=80) * 0.1)
    doc = {"detector": name, "init": {"backbone": "imagenet:efficientnet-lite0 (offline)"},
           "parameters": {"total": total, "head": 10}, "test": test}
    return M.json_safe(doc), M.roc_points(y, s)


@pytest.fixture
def run_dir(tmp_path):
    metrics = tmp_path / "metrics"
    for name, shift, frame in (("weak_cnn", 0.3, True), ("strong_cnn", 3.0, True), ("audio_x", 1.0, False)):
        doc, roc = _doc(name, shift, frame)
        write_json_atomic(metrics / f"{name}.json", doc)
        (metrics / "roc").mkdir(parents=True, exist_ok=True)
        roc.to_csv(metrics / "roc" / f"{name}.csv", index=False)
    write_json_atomic(metrics / "transcribe.json", {"real_time_factor": 0.2, "n": 3})
    write_json_atomic(metrics / "mst.json", {"loss": 0.1})
    fails = tmp_path / "data" / "failures"
    f = Failures("ingest")
    f.add("missing.mp4", "listed in metadata but absent on disk", path="/d/missing.mp4", warn=False)
    f.write(fails / "ingest.csv")
    for shard in (0, 1):
        f = Failures("align_faces")
        f.add(f"v{shard}.mp4", "no face found", frame_index=3, warn=False)
        f.add(f"v{shard}.mp4", "no face found", frame_index=5, warn=False)
        f.write(fails / "align_faces" / f"shard-00{shard}.csv")
    Failures("sample_frames").write(fails / "sample_frames" / "shard-0.csv")  # header only
    return tmp_path


def test_leaderboard_rows_and_order(run_dir):
    docs = R.load_metrics(run_dir / "metrics")
    assert sorted(docs) == ["audio_x", "strong_cnn", "weak_cnn"]  # transcribe/mst skipped
    board = R.leaderboard(docs)
    assert list(board["detector"]) == ["strong_cnn", "strong_cnn", "audio_x", "weak_cnn", "weak_cnn"]
    assert list(board["level"]) == ["video", "frame", "video", "video", "frame"]
    for col in ("auc", "eer", "accuracy", "f1", "pauc_0.01", "pauc_0.1", "tauc_0.01", "tauc_0.1",
                "tar_0.01", "tar_0.1", "logwp", "n", "init", "parameters"):
        assert col in board.columns, col
    row = board.iloc[0]
    assert row["auc"] == pytest.approx(docs["strong_cnn"]["test"]["video"]["auc"])
    assert row["parameters"] == 1000 and "efficientnet-lite0" in row["init"]
    assert row["n"] == 40 and board.iloc[1]["n"] == 80


def test_leaderboard_handles_null_metrics():
    docs = {"one_class": {"detector": "one_class", "test": {"video": {"auc": None, "eer": None, "n": 3,
                                                                        "accuracy": 1.0}}},
            "ok": {"detector": "ok", "test": {"video": {"auc": 0.6, "n": 4}}}}
    board = R.leaderboard(docs)
    assert list(board["detector"]) == ["ok", "one_class"]
    assert math.isnan(board.iloc[1]["auc"]) and board.iloc[1]["parameters"] == -1
    md = R.to_markdown(board)
    assert "| one_class | video | – |" in md and "1.0000" in md


def test_markdown_is_rounded_and_lists_detectors(run_dir):
    board = R.leaderboard(R.load_metrics(run_dir / "metrics"))
    md = R.to_markdown(board)
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + len(board)
    assert all(ln.count("|") == lines[0].count("|") for ln in lines)
    for name in ("strong_cnn", "weak_cnn", "audio_x"):
        assert name in md
    auc = board.iloc[0]["auc"]
    assert f"{auc:.4f}" in lines[2] and "1,000" in lines[2]
    assert R.to_markdown(board.iloc[0:0]).endswith("No evaluated detectors.\n")


def test_failures_aggregated(run_dir):
    fails = R.collect_failures(run_dir / "data" / "failures")
    assert list(fails.columns) == ["video_id", "stage", "frame_index", "path", "reason"]
    assert len(fails) == 5
    counts = R.failure_counts(fails)
    assert counts.to_dict() == {"align_faces": 4, "ingest": 1}
    assert fails.loc[fails["stage"] == "ingest", "path"].iloc[0] == "/d/missing.mp4"
    assert R.collect_failures(run_dir / "nowhere").empty


def test_report_stage(run_dir, monkeypatch, capsys):
    monkeypatch.chdir(run_dir)
    spec = importlib.util.spec_from_file_location("_stage_report", REPO / "stages" / "report.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    stage.main(["--metrics-dir", "metrics", "--out", "metrics/leaderboard"])
    out = capsys.readouterr().out
    assert "3 detectors" in out and "align_faces: 4" in out and "ingest: 1" in out
    board = pd.read_csv(run_dir / "metrics" / "leaderboard.csv")
    assert len(board) == 5 and board["detector"].iloc[0] == "strong_cnn"
    assert "strong_cnn" in (run_dir / "metrics" / "leaderboard.md").read_text()
    png = run_dir / "metrics" / "plots" / "roc.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert len(pd.read_csv(run_dir / "metrics" / "failures.csv")) == 5
    outputs = ["leaderboard.csv", "leaderboard.md", "plots/roc.png", "failures.csv"]
    before = {p: (run_dir / "metrics" / p).read_bytes() for p in outputs}
    stage.main(["--metrics-dir", "metrics", "--out", "metrics/leaderboard"])
    assert before == {p: (run_dir / "metrics" / p).read_bytes() for p in outputs}
    json.loads((run_dir / "metrics" / "strong_cnn.json").read_text())  # inputs untouched


def test_report_stage_with_nothing_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("_stage_report2", REPO / "stages" / "report.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    stage.main([])
    assert "No evaluated detectors." in (tmp_path / "metrics" / "leaderboard.md").read_text()
    assert (tmp_path / "metrics" / "plots" / "roc.png").exists()
    assert pd.read_csv(tmp_path / "metrics" / "failures.csv").empty


def _protocol_doc(name, shift, seed):
    """An evaluate document with intervals, an extra two-class set, a real-only set and pooled."""
    rng = np.random.default_rng(seed)

    def tables(n_people, per, shift, classes=("real", "fake")):
        rows, sc = [], []
        for p in range(n_people):
            for k in range(per):
                for label in classes:
                    vid = f"{label}/p{p}_{k}.mp4"
                    rows.append((vid, label, f"p{p}"))
                    sc.append((vid, -1, float(rng.normal() + (shift if label == "fake" else 0))))
        return (pd.DataFrame(sc, columns=["video_id", "frame_index", "score"]),
                pd.DataFrame(rows, columns=["video_id", "label", "identity"]))

    test, man = tables(2, 6, shift)
    val, vman = tables(2, 6, shift)
    vman["video_id"] = "val/" + vman["video_id"]
    val["video_id"] = "val/" + val["video_id"]
    out = M.evaluate_sets(test, pd.concat([man, vman]), val,
                          {"other": tables(5, 4, shift / 2), "reals": tables(3, 3, 0, ("real",))},
                          bootstrap=200, seed=0)
    return M.json_safe({"detector": name, "parameters": {"total": 5}, **out})


def test_leaderboard_intervals_n_and_set_groups():
    docs = {"a": _protocol_doc("a", 2.0, 1), "b": _protocol_doc("b", 0.5, 2)}
    board = R.leaderboard(docs)
    assert list(board["detector"]) == ["a", "b"] and list(board["level"]) == ["video", "video"]
    row = board.iloc[0]
    t = docs["a"]["test"]["video"]
    assert (row["auc"], row["auc_lo"], row["auc_hi"]) == pytest.approx((t["auc"], *t["auc_ci"]))
    assert (row["eer_lo"], row["eer_hi"]) == pytest.approx(tuple(t["eer_ci"]))
    assert (row["n_videos"], row["n_identities"]) == (24, 2)
    assert row["tnr"] == pytest.approx(t["tnr"]) and "logwp_r0.5" in board.columns
    o = docs["a"]["sets"]["other"]["video"]
    assert row["other:auc"] == pytest.approx(o["auc"])
    assert row["other:auc_lo"] == pytest.approx(o["auc_ci"][0])
    assert (row["other:n_videos"], row["other:n_identities"]) == (40, 5)
    r = docs["a"]["sets"]["reals"]["video"]
    assert math.isnan(row["reals:auc"]) and row["reals:flag_rate"] == pytest.approx(r["false_alarm_rate"])
    assert row["reals:flag_rate_hi"] == pytest.approx(r["flag_rate_ci"][1])
    assert row["pooled:n_videos"] == 49 and row["pooled:n_identities"] == 8
    assert [c for c in board.columns if c.endswith(":auc")] == ["other:auc", "reals:auc", "pooled:auc"]

    md = R.to_markdown(board)
    main, cross = md.split("## Cross-dataset")
    lines = [ln for ln in main.splitlines() if ln.startswith("|")]
    assert all(ln.count("|") == lines[0].count("|") for ln in lines)
    assert "videos / ids" in lines[0] and "| 24 / 2 |" in lines[2]
    lo, hi = t["auc_ci"]
    assert f"| {t['auc']:.3f} [{lo:.3f}, {hi:.3f}] |" in lines[2]
    assert "auc_lo" not in md and ":auc" not in md
    xlines = [ln for ln in cross.splitlines() if ln.startswith("|")]
    assert all(ln.count("|") == xlines[0].count("|") for ln in xlines) and len(xlines) == 4
    for g in ("other", "reals", "pooled"):
        assert f"{g} auc" in xlines[0] and f"{g} videos / ids" in xlines[0]
    lo, hi = r["flag_rate_ci"]
    assert f"FAR {r['flag_rate']:.3f} [{lo:.3f}, {hi:.3f}]" in xlines[2]
    assert f"{o['auc']:.3f} [{o['auc_ci'][0]:.3f}, {o['auc_ci'][1]:.3f}]" in xlines[2]
    assert "| 40 / 5 |" in xlines[2] and "| 9 / 3 |" in xlines[2]
    # a detector without sets has "–" in the set groups; docs without sets make no second table
    docs["c"] = {"detector": "c", "test": {"video": {"auc": 0.6, "n": 4}}}
    md = R.to_markdown(R.leaderboard(docs))
    assert "| c | video | 0.6000 | – |" in md.split("## Cross-dataset")[1]
    assert "## Cross-dataset" not in R.to_markdown(R.leaderboard({"c": docs["c"]}))


def test_breakdown_table_and_markdown(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    rows, sc = [], []
    for split in ("val", "test"):
        for p in range(3):
            for k, q in enumerate(("c23", "c40")):
                for label, method in (("real", ""), ("fake", "Deepfakes"), ("fake", "FaceSwap")):
                    vid = f"{split}/{label}{method}_{p}_{q}.mp4"
                    rows.append((vid, label, method, q, split, f"{split}{p}"))
                    sc.append((vid, -1, float(rng.normal() + (label == "fake")), split))
    man = pd.DataFrame(rows, columns=["video_id", "label", "method", "quality", "split", "identity"])
    sc = pd.DataFrame(sc, columns=["video_id", "frame_index", "score", "split"])
    out = M.evaluate_sets(sc[sc["split"] == "test"], man, sc[sc["split"] == "val"], bootstrap=100)
    docs = {"d": M.json_safe({"detector": "d", **out})}
    table = R.breakdown_table(docs)
    assert list(table["breakdown"].unique()) == ["by_method", "by_quality", "by_method_quality"]
    assert list(table["group"]) == ["Deepfakes", "FaceSwap", "c23", "c40", "Deepfakes/c23",
                                    "Deepfakes/c40", "FaceSwap/c23", "FaceSwap/c40"]
    m = docs["d"]["test"]["breakdowns"]["by_method_quality"]["FaceSwap/c40"]
    row = table.iloc[-1]
    assert (row["auc"], row["auc_lo"], row["auc_hi"]) == pytest.approx((m["auc"], *m["auc_ci"]))
    assert (row["n_pos"], row["n_neg"], row["n_identities"]) == (3, 3, 3)
    md = R.to_markdown(R.leaderboard(docs), breakdowns=table)
    part = md.split("## By method and quality (video level)")[1]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    assert len(lines) == 2 + 8 and all(ln.count("|") == lines[0].count("|") for ln in lines)
    lo, hi = m["auc_ci"]
    assert f"| d | by_method_quality | FaceSwap/c40 | {m['auc']:.3f} [{lo:.3f}, {hi:.3f}] |" in lines[-1]
    assert R.breakdown_table({"old": {"test": {"video": {"auc": 0.5}}}}).empty
    assert "## By method" not in R.to_markdown(R.leaderboard(docs))
    # the report stage writes both extra tables into leaderboard.md
    write_json_atomic(tmp_path / "metrics" / "d.json", docs["d"])
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("_stage_report3", REPO / "stages" / "report.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    stage.main(["--metrics-dir", "metrics", "--out", "metrics/leaderboard"])
    written = (tmp_path / "metrics" / "leaderboard.md").read_text()
    assert f"| d | by_method_quality | FaceSwap/c40 | {m['auc']:.3f} [{lo:.3f}, {hi:.3f}] |" in written


def test_attach_sets_reads_listed_sets_and_pools_them(tmp_path):
    import json as _json

    import numpy as np
    import pandas as pd

    from dfdetect.report import attach_sets

    rng = np.random.default_rng(0)
    for name, shift in (("a", 0.3), ("b", 0.1), ("stale", 0.0)):
        vids = [f"v{i}" for i in range(20)]
        labels = ["fake" if i % 2 else "real" for i in range(20)]
        score = [float(np.clip(rng.normal(0.5 + (shift if lab == "fake" else -shift), 0.1), 0, 1))
                 for lab in labels]
        sc = pd.DataFrame({"video_id": vids, "frame_index": -1, "score": score, "split": "test",
                           "label": labels, "identity": [f"p{i // 2}" for i in range(20)]})
        (tmp_path / "scores" / name).mkdir(parents=True)
        sc.to_csv(tmp_path / "scores" / name / "det.csv", index=False)
        (tmp_path / "sets" / name).mkdir(parents=True)
        (tmp_path / "sets" / name / "det.json").write_text(_json.dumps({"test": {"video": {"auc": shift}}}))
    docs = {"det": {"test": {}, "thresholds": {"video": 0.5, "frame": 0.5}}}
    names = attach_sets(docs, tmp_path / "sets", tmp_path / "scores", names=["a", "b"], bootstrap=20, seed=1)
    assert names == ["a", "b"]
    assert set(docs["det"]["sets"]) == {"a", "b"}           # the stale folder is not attached
    pooled = docs["det"]["pooled"]
    assert pooled["sets"] == ["a", "b"] and pooled["video"]["n"] == 40
    # ids of the two sets never merge: 20 identities in all (10 per set), not 10
    assert pooled["video"]["n_identities"] == 20
    assert 0.5 < pooled["video"]["auc"] <= 1.0 and pooled["video"]["auc_ci"][0] <= pooled["video"]["auc"]
    # one set alone is not pooled (it would repeat the set)
    d = {"det": {"test": {}, "thresholds": {"video": 0.5}}}
    attach_sets(d, tmp_path / "sets", tmp_path / "scores", names=["a"], bootstrap=0)
    assert set(d["det"]["sets"]) == {"a"} and "pooled" not in d["det"]
