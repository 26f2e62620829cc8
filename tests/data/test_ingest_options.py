"""Ingest for cross-dataset test sets (issue #9): ``use: all``, flat single-label folders,
DFDC files no metadata lists, every layout option a param/flag, wrong-layout options refused."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dfdetect.data.ingest import ingest
from dfdetect.data.layouts import LAYOUTS, all_options, check_options, layout_options
from dfdetect.data.manifest import read_manifest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "data"))

from test_layouts import by_id, celebdf_tree, dfdc_tree, ffpp_tree, touch  # noqa: E402


def _reasons(fails) -> dict[str, str]:
    f = fails.frame()
    return dict(zip(f["video_id"], f["reason"]))


# ----------------------------------------------------------------------------- use: all
def test_use_all_puts_every_video_in_test_and_says_so(tmp_path):
    ffpp_tree(tmp_path)
    split_df, _ = ingest("ffpp", tmp_path, probe=False, seed=0)
    assert {"train", "val", "test"} <= set(split_df["split"])      # official splits kept
    assert "use" not in split_df.columns
    all_df, all_fails = ingest("ffpp", tmp_path, probe=False, seed=0, use="all")
    assert sorted(all_df["video_id"]) == sorted(split_df["video_id"])   # nothing dropped
    assert set(all_df["split"]) == {"test"}                         # nothing held out for training
    assert set(all_df["use"]) == {"all"}                            # the manifest says so
    # the same for a dataset with no official split (identity-grouped otherwise)
    flat = tmp_path / "flat"
    touch(flat, *[f"p{i}/{k}.mp4" for i in range(5) for k in range(2)])
    df, _ = ingest("generic", flat, label="real", csv="", probe=False, use="all")
    assert len(df) == 10 and set(df["split"]) == {"test"}
    with pytest.raises(ValueError, match=r"use must be one of \['split', 'all'\]"):
        ingest("ffpp", tmp_path, probe=False, use="test")


# ----------------------------------------------------------------------------- flat folders
def test_flat_single_label_folder(tmp_path):
    touch(tmp_path, "a.mp4", "b.mp4", "ann/0.mp4", "ann/1.mp4", "bob/x/0.mp4", "notes.txt")
    df, fails = ingest("generic", tmp_path, label="real", csv="", probe=False, seed=0,
                       split_fractions=(0.5, 0.25, 0.25))
    rows = by_id(df)
    assert sorted(rows) == ["a.mp4", "ann/0.mp4", "ann/1.mp4", "b.mp4", "bob/x/0.mp4"]
    assert set(df["label"]) == {"real"} and set(df["method"]) == {"original"}
    assert rows["ann/0.mp4"]["identity"] == "ann/0.mp4"            # one person per file
    assert len(fails) == 0
    by_folder, _ = ingest("generic", tmp_path, label="fake", csv="", identity_from="folder",
                          probe=False, seed=0, split_fractions=(0.5, 0.25, 0.25))
    rows = by_id(by_folder)
    assert set(by_folder["label"]) == {"fake"}
    assert rows["ann/0.mp4"]["identity"] == rows["ann/1.mp4"]["identity"] == "ann"
    assert rows["ann/0.mp4"]["split"] == rows["ann/1.mp4"]["split"]
    assert rows["bob/x/0.mp4"]["identity"] == "x"                  # the file's folder, as make_demo
    assert rows["a.mp4"]["identity"] == tmp_path.name              # top level: the root folder
    rx, _ = ingest("generic", tmp_path, label="real", csv="", identity_regex=r"^(\w+)/",
                   probe=False)
    assert by_id(rx)["bob/x/0.mp4"]["identity"] == "bob" and by_id(rx)["a.mp4"]["identity"] == "a.mp4"
    # the default CSV name is fine (not read); another CSV, a bad label or mode are errors
    df_default_csv, _ = ingest("generic", tmp_path, label="real", probe=False)
    assert len(df_default_csv) == 5
    with pytest.raises(ValueError, match=r"label 'real' .* and csv 'mine.csv' both given"):
        ingest("generic", tmp_path, label="real", csv="mine.csv", probe=False)
    with pytest.raises(ValueError, match=r"label must be real, fake or ''"):
        ingest("generic", tmp_path, label="REALISH", csv="", probe=False)
    with pytest.raises(ValueError, match=r"identity_from must be one of \['file', 'folder'\]"):
        ingest("generic", tmp_path, label="real", csv="", identity_from="person", probe=False)
    with pytest.raises(ValueError, match=r"apply to a flat folder of one label only"):
        ingest("generic", tmp_path, csv="", identity_from="folder", probe=False)
    empty = tmp_path / "empty"
    touch(empty, "readme.txt")
    with pytest.raises(ValueError, match=r"no videos under the root"):
        ingest("generic", empty, label="real", csv="", probe=False)


# ----------------------------------------------------------------------------- DFDC
def test_dfdc_unlisted_files_are_failures_and_labels_csv_labels_them(tmp_path):
    dfdc_tree(tmp_path)
    touch(tmp_path, "stray_root.mp4", "extra/clip.mp4")
    df, fails = ingest("dfdc", tmp_path, probe=False, seed=0, split_fractions=(0.5, 0.25, 0.25))
    reasons = _reasons(fails)
    assert reasons["stray_root.mp4"] == "not listed in any metadata.json"
    assert reasons["extra/clip.mp4"] == "not listed in any metadata.json"
    assert reasons["dfdc_train_part_1/unlisted.mp4"] == \
        "on disk but not listed in dfdc_train_part_1/metadata.json (no label)"
    assert "dfdc_train_part_2/x.mp4" not in reasons     # reported once, by its unreadable metadata
    assert not {"stray_root.mp4", "extra/clip.mp4"} & set(df["video_id"])

    (tmp_path / "extra" / "labels.csv").write_text(
        "path,label,original\n"
        "stray_root.mp4,REAL,\n"
        "extra/clip.mp4,fake,stray_root.mp4\n"
        "dfdc_train_part_1/unlisted.mp4,0,\n"
        "dfdc_train_part_0/orig0001.mp4,REAL,\n"     # metadata labels it already
        "nothere.mp4,FAKE,\n"
        "extra/clip.mp4,maybe,\n")
    df, fails = ingest("dfdc", tmp_path, probe=False, seed=0, split_fractions=(0.5, 0.25, 0.25),
                       labels_csv="extra/labels.csv")
    rows, reasons = by_id(df), _reasons(fails)
    assert rows["stray_root.mp4"]["label"] == "real"
    assert (rows["extra/clip.mp4"]["label"], rows["extra/clip.mp4"]["identity"]) == \
        ("fake", "stray_root.mp4")
    assert rows["extra/clip.mp4"]["split"] == rows["stray_root.mp4"]["split"]   # with its original
    assert rows["dfdc_train_part_1/unlisted.mp4"]["label"] == "real"
    assert not {"stray_root.mp4", "extra/clip.mp4", "dfdc_train_part_1/unlisted.mp4"} & \
        {v for v, r in reasons.items() if "not listed" in r}
    assert "already labelled" in reasons["dfdc_train_part_0/orig0001.mp4"]
    assert reasons["nothere.mp4"] == "listed in extra/labels.csv but missing on disk"
    assert len(df) == 12
    with pytest.raises(ValueError, match=r"DFDC labels_csv not found"):
        ingest("dfdc", tmp_path, probe=False, labels_csv="nope.csv")
    with pytest.raises(ValueError, match=r"DFDC test labels not found"):   # a name given must exist
        ingest("dfdc", tmp_path, probe=False, test_labels="held/nope.csv")


# ----------------------------------------------------------------------------- options
def test_every_layout_option_is_a_param_with_its_default():
    params = yaml.safe_load((REPO / "params.yaml").read_text())["ingest"]
    options = all_options()
    for key, default in options.items():
        assert key in params, f"layout option {key} is not an ingest param"
        assert params[key] == default or (params[key] in ("", []) and default in (None, "", [])), key
    assert {"splits_dir", "test_list", "test_labels", "labels_csv", "label", "identity_from",
            "qualities", "methods", "val_fraction", "test_fraction", "csv"} <= set(options)
    assert "test_list" in layout_options("celebdf") and "test_list" not in layout_options("ffpp")
    assert set(layout_options("demo")) == set(layout_options("generic"))
    assert set(LAYOUTS) >= {"ffpp", "celebdf", "uadfv", "dfdc", "generic"}


def test_options_of_another_layout_are_refused_when_set(tmp_path):
    assert check_options("ffpp", {"test_list": "List_of_testing_videos.txt", "csv": "",
                                  "val_fraction": 0.1, "qualities": ["c23"]}) == {"qualities": ["c23"]}
    with pytest.raises(ValueError, match=r"test_list='mine.txt' do not apply to layout 'ffpp'"):
        check_options("ffpp", {"test_list": "mine.txt"})
    with pytest.raises(ValueError, match=r"unknown ingest option 'test_lists'"):
        check_options("ffpp", {"test_lists": "x"})
    ffpp_tree(tmp_path)
    with pytest.raises(ValueError, match=r"val_fraction=0.3 do not apply to layout 'ffpp'"):
        ingest("ffpp", tmp_path, probe=False, val_fraction=0.3)


# ----------------------------------------------------------------------------- the stage
def _stage():
    spec = importlib.util.spec_from_file_location("ingest_stage", REPO / "stages" / "ingest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(stage, tmp_path, *flags) -> tuple[int, Path]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["executor"] = {"backend": "serial", "workers": 1}
    params["ingest"]["probe"] = False
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "out"
    rc = stage.main(["--params", str(tmp_path / "params.yaml"), *flags,
                     "--out", str(out / "m.csv"), "--shard-dir", str(out / "m"),
                     "--failures", str(out / "f.csv")])
    return rc, out


def test_stage_passes_layout_options_and_refuses_wrong_ones(tmp_path, capsys):
    stage = _stage()
    root = tmp_path / "dfdc"
    dfdc_tree(root)
    touch(root, "held/aaa.mp4", "held/bbb.mp4", "stray.mp4")
    (root / "held" / "truth.csv").write_text("filename,label\naaa.mp4,1\nbbb.mp4,0\n")
    (root / "mine.csv").write_text("path,label\nstray.mp4,real\n")
    rc, out = _run(stage, tmp_path, "--layout", "dfdc", "--root", str(root),
                   "--test_labels", "held/truth.csv", "--labels_csv", "mine.csv")
    assert rc == 0, capsys.readouterr().err
    m = read_manifest(out / "m.csv").set_index("video_id")
    assert (m.loc["held/aaa.mp4", "split"], m.loc["held/aaa.mp4", "label"]) == ("test", "fake")
    assert set(m.loc[[v for v in m.index if not v.startswith("held/")], "split"]) <= {"train", "val"}
    assert m.loc["stray.mp4", "label"] == "real"
    rc, out = _run(stage, tmp_path / "b", "--layout", "dfdc", "--root", str(root),
                   "--test_labels", "held/truth.csv", "--use", "all")
    assert rc == 0
    m = read_manifest(out / "m.csv")
    assert set(m["split"]) == {"test"} and set(m["use"]) == {"all"}
    f = pd.read_csv(out / "f.csv").set_index("video_id")
    assert f.loc["stray.mp4", "reason"] == "not listed in any metadata.json nor in held/truth.csv"
    capsys.readouterr()

    ffpp = tmp_path / "ffpp"
    ffpp_tree(ffpp)
    rc, out = _run(stage, tmp_path / "c", "--layout", "ffpp", "--root", str(ffpp),
                   "--test_list", "mine.txt")
    assert rc == 2 and not (out / "m.csv").exists()
    err = capsys.readouterr().err
    assert "ingest: ingest option(s) test_list='mine.txt' do not apply to layout 'ffpp'" in err
    celeb = tmp_path / "celeb"
    celebdf_tree(celeb)
    rc, _ = _run(stage, tmp_path / "d", "--layout", "celebdf", "--root", str(celeb),
                 "--test_list", "nope.txt")
    assert rc == 2 and "Celeb-DF test list not found" in capsys.readouterr().err
    flat = tmp_path / "flat"
    touch(flat, "x/1.mp4", "y/2.mp4", "y/3.mp4")
    rc, out = _run(stage, tmp_path / "e", "--layout", "generic", "--root", str(flat),
                   "--label", "real", "--identity_from", "folder", "--use", "all")
    assert rc == 0
    m = read_manifest(out / "m.csv").set_index("video_id")
    assert list(m["identity"]) == ["x", "y", "y"] and set(m["split"]) == {"test"}
    with pytest.raises(SystemExit) as exc:   # the params schema stops the stage before any work
        _run(stage, tmp_path / "f", "--use", "everything")
    assert exc.value.code == 2 and "ingest.use = 'everything': must be one of" in capsys.readouterr().err
