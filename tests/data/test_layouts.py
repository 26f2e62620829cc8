"""Dataset layouts on tiny fake trees (file content does not matter here: nothing is probed)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
import pytest

from dfdetect.data.ingest import ingest
from dfdetect.data.layouts import LAYOUTS, LayoutError, get_layout
from dfdetect.failures import Failures


def touch(root: Path, *rels: str) -> None:
    for r in rels:
        p = root / r
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def by_id(df: pd.DataFrame) -> dict[str, dict]:
    return {r["video_id"]: r for r in df.to_dict("records")}


def no_person_in_two_splits(df: pd.DataFrame) -> None:
    where: dict[str, set] = {}
    for r in df.itertuples():
        for person in filter(None, (r.identity, r.source_id)):
            where.setdefault(person, set()).add(r.split)
    leaks = {p: s for p, s in where.items() if len(s) > 1}
    assert not leaks, leaks


# ----------------------------------------------------------------------------- registry
def test_registry_and_unknown_layout(tmp_path):
    assert {"ffpp", "celebdf", "uadfv", "dfdc", "generic", "demo"} <= set(LAYOUTS)
    with pytest.raises(LayoutError, match=r"unknown dataset layout 'faceforensics'.*ffpp"):
        get_layout("faceforensics")
    with pytest.raises(LayoutError, match="unknown dataset layout"):
        ingest("faceforensics", tmp_path, probe=False)
    with pytest.raises(LayoutError, match=r"nowhere: dataset root not found"):
        ingest("generic", tmp_path / "nowhere", probe=False)


# ----------------------------------------------------------------------------- FaceForensics++
def ffpp_tree(root: Path) -> None:
    yt = [f"{i:03d}" for i in range(6)]
    for q in ("c23", "c40"):
        touch(root, *[f"original_sequences/youtube/{q}/videos/{v}.mp4" for v in yt])
        touch(root, f"original_sequences/actors/{q}/videos/01__exit_phone_room.mp4",
              f"original_sequences/actors/{q}/videos/02__walking_outside.mp4",
              f"original_sequences/actors/{q}/videos/03__kitchen_pan.mp4")
        fakes = ["000_001", "001_000", "002_003", "003_002", "004_005"]   # 005_004 missing
        touch(root, *[f"manipulated_sequences/Deepfakes/{q}/videos/{f}.mp4" for f in fakes])
        touch(root, *[f"manipulated_sequences/FaceShifter/{q}/videos/{f}.mp4"
                      for f in fakes + ["005_004"]])
        touch(root, f"manipulated_sequences/DeepFakeDetection/{q}/videos/"
                    "01_02__exit_phone_room__YVGY8LOK.mp4")
    touch(root, "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4",   # not a video set
          "manipulated_sequences/Deepfakes/models/000_001.mp4")
    (root / "splits").mkdir()
    for split, pairs in {"train": [["000", "001"]], "val": [["002", "003"]],
                         "test": [["004", "005"]]}.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(pairs))


def test_ffpp_official_pairs_and_missing(tmp_path):
    ffpp_tree(tmp_path)
    fails = Failures("ingest")
    df = get_layout("ffpp")(tmp_path, fails, qualities=["c23"])
    rows = by_id(df)
    assert all(r["quality"] == "c23" for r in rows.values())
    yt = "original_sequences/youtube/c23/videos"
    assert rows[f"{yt}/000.mp4"]["split"] == "train" and rows[f"{yt}/001.mp4"]["split"] == "train"
    assert rows[f"{yt}/003.mp4"]["split"] == "val" and rows[f"{yt}/005.mp4"]["split"] == "test"
    df_ = "manipulated_sequences/Deepfakes/c23/videos"
    fake = rows[f"{df_}/001_000.mp4"]
    assert (fake["label"], fake["method"], fake["identity"], fake["source_id"], fake["split"]) == \
        ("fake", "Deepfakes", "001", "000", "train")
    assert rows[f"{df_}/003_002.mp4"]["split"] == "val"
    assert rows[f"{df_}/004_005.mp4"]["split"] == "test"
    assert rows["manipulated_sequences/FaceShifter/c23/videos/005_004.mp4"]["split"] == "test"
    # masks/ and models/ are not videos of the dataset; ids are full relative paths
    assert not any("/masks/" in v or "/models/" in v for v in rows)
    assert all(v.count("/") >= 4 for v in rows)
    dfd = rows["manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4"]
    assert (dfd["identity"], dfd["source_id"], dfd["split"]) == ("actor01", "actor02", "")
    actor = rows["original_sequences/actors/c23/videos/03__kitchen_pan.mp4"]
    assert (actor["label"], actor["identity"], actor["split"]) == ("real", "actor03", "")
    failed = fails.frame()
    assert failed["video_id"].tolist() == [f"{df_}/005_004.mp4"]
    assert failed["reason"].tolist() == ["listed in splits/test.json but missing on disk"]


def test_ffpp_filters_and_grouped_split(tmp_path):
    ffpp_tree(tmp_path)
    df, fails = ingest("ffpp", tmp_path, probe=False, seed=1, split_fractions=(0.34, 0.33, 0.33),
                       methods=["DeepFakeDetection"], qualities=["c40"])
    assert set(df["method"]) == {"original", "DeepFakeDetection"}
    assert all(v.startswith("original_sequences/actors/c40/") or "/DeepFakeDetection/c40/" in v
               for v in df["video_id"])
    assert set(df["split"]) <= {"train", "val", "test"} and (df["split"] != "").all()
    no_person_in_two_splits(df)   # actor01 and actor02 are tied by the DFD fake
    assert len(fails) == 0
    both, _ = ingest("ffpp", tmp_path, probe=False, seed=1)
    assert set(both["quality"]) == {"c23", "c40"}
    no_person_in_two_splits(both)
    with pytest.raises(LayoutError, match="unknown FaceForensics\\+\\+ methods"):
        ingest("ffpp", tmp_path, probe=False, methods=["Dfakes"])


def test_ffpp_without_splits_is_identity_grouped(tmp_path, caplog):
    ffpp_tree(tmp_path)
    for f in (tmp_path / "splits").iterdir():
        f.unlink()
    with caplog.at_level(logging.WARNING, logger="dfdetect"):
        df, fails = ingest("ffpp", tmp_path, probe=False, seed=3)
    assert "no official FaceForensics++ splits" in caplog.text
    assert (df["split"] != "").all() and len(fails) == 0
    no_person_in_two_splits(df)


def test_ffpp_wrong_root(tmp_path):
    touch(tmp_path, "videos/a.mp4")
    with pytest.raises(LayoutError) as err:
        ingest("ffpp", tmp_path, probe=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "no original_sequences/ folder" in msg and "FaceForensics++" in msg


# ----------------------------------------------------------------------------- Celeb-DF
def celebdf_tree(root: Path) -> None:
    touch(root, *[f"Celeb-real/id{i}_{c:04d}.mp4" for i in range(6) for c in range(2)])
    touch(root, *[f"Celeb-synthesis/id{i}_id{i ^ 1}_{c:04d}.mp4" for i in range(6) for c in range(2)])
    touch(root, *[f"YouTube-real/{n:05d}.mp4" for n in range(4)])
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00001.mp4\n"
        "1 Celeb-real/id0_0000.mp4\n"
        "0 Celeb-synthesis/id0_id1_0000.mp4\n"
        "0 Celeb-synthesis/id5_id4_0001.mp4\n"
        "1 Celeb-real/id9_0009.mp4\n"          # not on disk
        "\n")


def test_celebdf_test_list_and_labels(tmp_path, caplog):
    celebdf_tree(tmp_path)
    fails = Failures("ingest")
    with caplog.at_level(logging.WARNING, logger="dfdetect"):
        df = get_layout("celebdf")(tmp_path, fails, seed=0, val_fraction=0.3)
    assert "folder wins" not in caplog.text     # 1 = real, 0 = fake in the list: consistent
    assert "target identity only" not in caplog.text   # pairs of people: strict grouping works
    rows = by_id(df)
    assert len(rows) == 12 + 12 + 4
    test = sorted(v for v, r in rows.items() if r["split"] == "test")
    assert test == ["Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4",
                    "Celeb-synthesis/id5_id4_0001.mp4", "YouTube-real/00001.mp4"]
    assert rows["YouTube-real/00001.mp4"]["label"] == "real"
    assert rows["Celeb-synthesis/id0_id1_0000.mp4"]["label"] == "fake"
    syn = rows["Celeb-synthesis/id3_id2_0001.mp4"]
    assert (syn["identity"], syn["source_id"]) == ("id3", "id2")
    assert rows["Celeb-real/id3_0001.mp4"]["identity"] == "id3"
    rest = df[df["split"] != "test"]
    assert set(rest["split"]) == {"train", "val"}
    no_person_in_two_splits(rest)
    assert fails.frame()[["video_id", "reason"]].values.tolist() == [
        ["Celeb-real/id9_0009.mp4", "listed in List_of_testing_videos.txt but missing on disk"]]


def test_celebdf_folder_label_wins_over_inverted_list(tmp_path, caplog):
    celebdf_tree(tmp_path)
    (tmp_path / "List_of_testing_videos.txt").write_text("0 YouTube-real/00001.mp4\n")
    with caplog.at_level(logging.WARNING, logger="dfdetect"):
        df = get_layout("celebdf")(tmp_path, Failures("ingest"))
    assert "folder wins" in caplog.text
    assert by_id(df)["YouTube-real/00001.mp4"]["label"] == "real"


def test_celebdf_wrong_root(tmp_path):
    touch(tmp_path, "Celeb-real/id0_0000.mp4")
    with pytest.raises(LayoutError, match="is this a Celeb-DF root"):
        get_layout("celebdf")(tmp_path, Failures("ingest"))


# ----------------------------------------------------------------------------- UADFV
def uadfv_tree(root: Path, n: int = 10) -> None:
    touch(root, *[f"real/{i:04d}.mp4" for i in range(n)])
    touch(root, *[f"fake/{i:04d}_fake.mp4" for i in range(n)])


def test_uadfv_80_20_by_identity(tmp_path):
    uadfv_tree(tmp_path)
    scan = get_layout("uadfv")
    df = scan(tmp_path, Failures("ingest"), seed=7, test_fraction=0.2, val_fraction=0.0)
    assert len(df) == 20 and set(df["split"]) == {"train", "test"}
    per_id = df.groupby("identity")["split"].nunique()
    assert (per_id == 1).all()                       # a person's real and fake stay together
    assert df.groupby("split")["identity"].nunique().to_dict() == {"train": 8, "test": 2}
    rows = by_id(df)
    assert rows["fake/0003_fake.mp4"]["identity"] == "0003" and rows["fake/0003_fake.mp4"]["label"] == "fake"
    again = scan(tmp_path, Failures("ingest"), seed=7, test_fraction=0.2, val_fraction=0.0)
    assert again.equals(df)
    others = [scan(tmp_path, Failures("ingest"), seed=s, val_fraction=0.0) for s in range(1, 6)]
    assert any(not o["split"].equals(df["split"]) for o in others)   # the seed matters
    with_val = scan(tmp_path, Failures("ingest"), seed=7, test_fraction=0.2, val_fraction=0.2)
    assert with_val.groupby("split")["identity"].nunique().to_dict()["test"] == 2
    assert "val" in set(with_val["split"])


def test_uadfv_wrong_root(tmp_path):
    touch(tmp_path, "real/0000.mp4")
    with pytest.raises(LayoutError, match=r"no fake/ folder; is this a UADFV root"):
        get_layout("uadfv")(tmp_path, Failures("ingest"))


# ----------------------------------------------------------------------------- DFDC
def dfdc_tree(root: Path) -> None:
    part0 = {"orig0001.mp4": {"label": "REAL", "split": "train", "original": None},
             "fake0001.mp4": {"label": "FAKE", "split": "train", "original": "orig0001.mp4"},
             "fake0002.mp4": {"label": "FAKE", "split": "train", "original": "orig0001.mp4"},
             "orig0002.mp4": {"label": "REAL", "split": "train", "original": None},
             "gone0001.mp4": {"label": "FAKE", "split": "train", "original": "orig0002.mp4"}}
    part1 = {"orig0003.mp4": {"label": "REAL", "split": "train", "original": None},
             "fake0003.mp4": {"label": "FAKE", "split": "train", "original": "orig0003.mp4"},
             "fake0004.mp4": {"label": "FAKE", "split": "train", "original": "orig0002.mp4"},
             "orig0004.mp4": {"label": "REAL", "split": "train", "original": None},
             "fake0005.mp4": {"label": "FAKE", "split": "train", "original": "orig0004.mp4"}}
    for name, meta in (("dfdc_train_part_0", part0), ("dfdc_train_part_1", part1)):
        (root / name).mkdir(parents=True)
        (root / name / "metadata.json").write_text(json.dumps(meta))
        touch(root, *[f"{name}/{f}" for f in meta if not f.startswith("gone")])
    touch(root, "dfdc_train_part_1/unlisted.mp4")
    (root / "dfdc_train_part_2").mkdir()
    (root / "dfdc_train_part_2" / "metadata.json").write_text("{not json")
    touch(root, "dfdc_train_part_2/x.mp4")


def test_dfdc_grouped_by_original(tmp_path):
    dfdc_tree(tmp_path)
    df, fails = ingest("dfdc", tmp_path, probe=False, seed=0, split_fractions=(0.5, 0.25, 0.25))
    rows = by_id(df)
    assert len(rows) == 9
    assert rows["dfdc_train_part_0/fake0001.mp4"]["identity"] == "orig0001.mp4"
    assert rows["dfdc_train_part_0/orig0001.mp4"]["identity"] == "orig0001.mp4"
    assert rows["dfdc_train_part_1/fake0004.mp4"]["label"] == "fake"
    # a fake goes with its original, even across parts
    for fake, orig in (("dfdc_train_part_0/fake0001.mp4", "dfdc_train_part_0/orig0001.mp4"),
                       ("dfdc_train_part_0/fake0002.mp4", "dfdc_train_part_0/orig0001.mp4"),
                       ("dfdc_train_part_1/fake0004.mp4", "dfdc_train_part_0/orig0002.mp4"),
                       ("dfdc_train_part_1/fake0005.mp4", "dfdc_train_part_1/orig0004.mp4")):
        assert rows[fake]["split"] == rows[orig]["split"]
    assert set(df["split"]) == {"train", "val", "test"}
    reasons = dict(zip(fails.frame()["video_id"], fails.frame()["reason"]))
    assert reasons["dfdc_train_part_0/gone0001.mp4"] == \
        "listed in dfdc_train_part_0/metadata.json but missing on disk"
    assert reasons["dfdc_train_part_1/unlisted.mp4"] == \
        "on disk but not listed in dfdc_train_part_1/metadata.json (no label)"
    assert reasons["dfdc_train_part_2/metadata.json"].startswith("cannot read metadata")


def test_dfdc_test_labels(tmp_path):
    dfdc_tree(tmp_path)
    touch(tmp_path, "test/aaa.mp4", "test/bbb.mp4")
    (tmp_path / "test" / "labels.csv").write_text("filename,label\naaa.mp4,1\nbbb.mp4,0\nccc.mp4,1\n")
    df, fails = ingest("dfdc", tmp_path, probe=False, seed=0, val_fraction=0.3)
    rows = by_id(df)
    assert (rows["test/aaa.mp4"]["label"], rows["test/aaa.mp4"]["split"]) == ("fake", "test")
    assert (rows["test/bbb.mp4"]["label"], rows["test/bbb.mp4"]["split"]) == ("real", "test")
    assert set(df.loc[~df["video_id"].str.startswith("test/"), "split"]) == {"train", "val"}
    assert "listed in test/labels.csv but missing on disk" in fails.frame()["reason"].tolist()


def test_dfdc_wrong_root(tmp_path):
    touch(tmp_path, "videos/a.mp4")
    with pytest.raises(LayoutError, match=r"no dfdc_train_part_\*/metadata.json.*is this a DFDC root"):
        ingest("dfdc", tmp_path, probe=False)


# ----------------------------------------------------------------------------- generic
def test_generic_csv(tmp_path):
    touch(tmp_path, "clips/a.mp4", "clips/b.mp4", "clips/c.mp4", "clips/d.mp4", "clips/e.mp4")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.mp4"
    (tmp_path / "labels.csv").write_text(
        "path,label,split,identity,method,quality\n"
        "clips/a.mp4,real,test,ann,,\n"
        "clips/b.mp4,FAKE,,ann,faceswap,c23\n"
        "clips/c.mp4,1,,bob,reenact,c40\n"
        "clips/d.mp4,0,,carl,,\n"
        "clips/e.mp4,maybe,,dan,,\n"
        "clips/missing.mp4,real,,eve,,\n"
        f"{outside},real,,fay,,\n"
        "../up.mp4,real,,gus,,\n"
        "clips/a.mp4,real,,ann,,\n")
    df, fails = ingest("generic", tmp_path, probe=False, seed=0, split_fractions=(0.5, 0.25, 0.25))
    rows = by_id(df)
    assert sorted(rows) == ["clips/a.mp4", "clips/b.mp4", "clips/c.mp4", "clips/d.mp4"]
    assert rows["clips/a.mp4"]["split"] == "test"          # given splits are kept
    assert (rows["clips/b.mp4"]["label"], rows["clips/b.mp4"]["method"], rows["clips/b.mp4"]["quality"]) \
        == ("fake", "faceswap", "c23")
    assert rows["clips/d.mp4"]["label"] == "real" and rows["clips/d.mp4"]["method"] == "original"
    assert rows["clips/a.mp4"]["path"] == (tmp_path / "clips/a.mp4").as_posix()
    reasons = fails.frame()["reason"].tolist()
    assert len(reasons) == 5
    assert any("label 'maybe' is not real/fake/0/1" in r for r in reasons)
    assert "listed in labels.csv but missing on disk" in reasons
    assert sum("outside the dataset root" in r for r in reasons) == 2
    assert any("listed twice" in r for r in reasons)


def test_generic_folders_identity_grouped(tmp_path):
    people = ["ann", "bob", "carl", "dan", "eve", "fay", "gus", "hal"]
    touch(tmp_path, *[f"real/{p}/{k}.mp4" for p in people for k in range(3)])
    touch(tmp_path, *[f"fake/{p}/{k}.mp4" for p in people for k in range(2)], "fake/loose.mp4")
    df, fails = ingest("generic", tmp_path, csv="", probe=False, seed=5,
                       split_fractions=(0.5, 0.25, 0.25))
    assert len(df) == 8 * 5 + 1 and len(fails) == 0
    assert by_id(df)["real/bob/2.mp4"]["identity"] == "bob"
    assert by_id(df)["fake/loose.mp4"]["identity"] == ""
    assert set(df["split"]) == {"train", "val", "test"}
    no_person_in_two_splits(df)
    assert df.equals(ingest("generic", tmp_path, csv="", probe=False, seed=5,
                            split_fractions=(0.5, 0.25, 0.25))[0])


def test_generic_wrong_root(tmp_path):
    touch(tmp_path, "videos/a.mp4")
    with pytest.raises(LayoutError) as err:
        ingest("generic", tmp_path, csv="", probe=False)
    assert f"{tmp_path}: no real/ and fake/ folder" in str(err.value)
    assert "is this a generic-layout root?" in str(err.value)


# ----------------------------------------------------------------------------- split helpers
def test_grouped_split_balances_videos_not_groups():
    from dfdetect.data.manifest import grouped_split

    groups = ["celebrity"] * 90 + [f"single{i}" for i in range(30)]
    for seed in range(6):
        m = grouped_split(groups, (0.7, 0.15, 0.15), seed)
        counts = pd.Series([m[g] for g in groups]).value_counts().to_dict()
        assert m["celebrity"] == "train" and counts == {"train": 90, "val": 15, "test": 15}


def test_chained_identities_fall_back_to_target_grouping(tmp_path, caplog):
    """Celeb-DF v2 style: every celebrity is another's donor, so strict grouping is one group."""
    n = 8
    touch(tmp_path, *[f"Celeb-real/id{i}_{c:04d}.mp4" for i in range(n) for c in range(3)])
    touch(tmp_path, *[f"Celeb-synthesis/id{i}_id{(i + 1) % n}_{c:04d}.mp4"
                      for i in range(n) for c in range(3)])
    touch(tmp_path, "YouTube-real/00000.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n")
    with caplog.at_level(logging.WARNING, logger="dfdetect"):
        df = get_layout("celebdf")(tmp_path, Failures("ingest"), seed=0, val_fraction=0.25)
    assert "grouped by target identity only" in caplog.text
    val = df[df["split"] == "val"]
    assert set(val["label"]) == {"real", "fake"}
    # still no target identity in two splits
    assert (df[df["split"] != "test"].groupby("identity")["split"].nunique() == 1).all()


# ----------------------------------------------------------------------------- symlinks
def symlink_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A generic tree with links out of the root (a video, /etc/passwd, a folder), a link
    inside the root, and a folder link that loops back."""
    root, outside = tmp_path / "ds", tmp_path / "outside"
    touch(outside, "elsewhere.mp4", "dir/x.mp4", "dir/y.mp4")
    touch(root, *[f"{label}/{p}/0.mp4" for label in ("real", "fake") for p in ("ann", "bob")])
    (root / "real" / "ext.mp4").symlink_to(outside / "elsewhere.mp4")
    (root / "fake" / "passwd.mp4").symlink_to("/etc/passwd")
    (root / "real" / "extdir").symlink_to(outside / "dir", target_is_directory=True)
    (root / "fake" / "alias.mp4").symlink_to("ann/0.mp4")                 # inside: allowed
    (root / "real" / "loop").symlink_to("..", target_is_directory=True)   # back to the root
    return root, outside


INSIDE = {f"{label}/{p}/0.mp4" for label in ("real", "fake") for p in ("ann", "bob")} | {"fake/alias.mp4"}


def _refused(fails: Failures) -> dict[str, str]:
    f = fails.frame()
    return dict(zip(f["video_id"], f["reason"]))


def test_symlinks_out_of_the_root_are_refused_in_folder_and_csv_mode(tmp_path):
    root, outside = symlink_tree(tmp_path)
    real_out = Path(os.path.realpath(outside))
    why = "symlink points outside the dataset root: "
    folder_df, folder_fails = ingest("generic", root, csv="", probe=False, seed=0)
    assert set(folder_df["video_id"]) == INSIDE
    assert _refused(folder_fails) == {"real/ext.mp4": f"{why}{real_out / 'elsewhere.mp4'}",
                                      "fake/passwd.mp4": f"{why}/etc/passwd",
                                      "real/extdir": f"{why}{real_out / 'dir'}"}
    assert folder_fails.frame().set_index("video_id").loc["fake/passwd.mp4", "path"] == \
        str(root / "fake" / "passwd.mp4")                     # the link, not the target

    listed = sorted(INSIDE | {"real/ext.mp4", "fake/passwd.mp4", "real/extdir/x.mp4"})
    (root / "labels.csv").write_text("path,label\n" + "".join(
        f"{p},{p.split('/')[0]}\n" for p in listed))
    csv_df, csv_fails = ingest("generic", root, csv="labels.csv", probe=False, seed=0)
    assert set(csv_df["video_id"]) == set(folder_df["video_id"])   # both modes agree
    assert _refused(csv_fails) == {"real/ext.mp4": f"{why}{real_out / 'elsewhere.mp4'}",
                                   "fake/passwd.mp4": f"{why}/etc/passwd",
                                   "real/extdir/x.mp4": f"{why}{real_out / 'dir' / 'x.mp4'}"}
    # an absolute path through the link is refused the same way
    (root / "abs.csv").write_text(f"path,label\n{root / 'real' / 'ext.mp4'},real\n")
    _, abs_fails = ingest("generic", root, csv="abs.csv", probe=False, seed=0)
    assert _refused(abs_fails) == {"real/ext.mp4": f"{why}{real_out / 'elsewhere.mp4'}"}


def test_follow_external_symlinks_accepts_them(tmp_path):
    root, _ = symlink_tree(tmp_path)
    df, fails = ingest("generic", root, csv="", probe=False, seed=0, follow_external_symlinks=True)
    assert set(df["video_id"]) == INSIDE | {"real/ext.mp4", "fake/passwd.mp4",
                                            "real/extdir/x.mp4", "real/extdir/y.mp4"}
    assert len(fails) == 0
    with pytest.raises(ValueError, match="follow_external_symlinks must be true or false"):
        ingest("generic", root, csv="", probe=False, follow_external_symlinks="yes")


def test_symlinks_out_of_the_root_are_refused_by_every_layout(tmp_path):
    outside = tmp_path / "outside"
    touch(outside, "0001_fake.mp4", "id9_0000.mp4")
    uadfv = tmp_path / "uadfv"
    uadfv_tree(uadfv, n=4)
    (uadfv / "fake" / "0001_fake.mp4").unlink()
    (uadfv / "fake" / "0001_fake.mp4").symlink_to(outside / "0001_fake.mp4")
    df, fails = ingest("uadfv", uadfv, probe=False, seed=0)
    assert "fake/0001_fake.mp4" not in set(df["video_id"]) and len(df) == 7
    assert list(_refused(fails)) == ["fake/0001_fake.mp4"]
    celeb = tmp_path / "celeb"
    celebdf_tree(celeb)
    (celeb / "Celeb-real" / "id9_0000.mp4").symlink_to(outside / "id9_0000.mp4")
    (celeb / "Celeb-real" / "id8_0000.mp4").symlink_to("/etc/passwd")
    df, fails = ingest("celebdf", celeb, probe=False, seed=0)
    assert not {"Celeb-real/id9_0000.mp4", "Celeb-real/id8_0000.mp4"} & set(df["video_id"])
    refused = _refused(fails)
    assert refused["Celeb-real/id8_0000.mp4"] == "symlink points outside the dataset root: /etc/passwd"
    assert refused["Celeb-real/id9_0000.mp4"].startswith("symlink points outside the dataset root")


# ----------------------------------------------------------------------------- signatures
def test_generic_named_csv_must_exist(tmp_path):
    touch(tmp_path, "real/ann/0.mp4", "fake/ann/0.mp4")
    for kwargs, name in (({}, "labels.csv"), ({"csv": "nope.csv"}, "nope.csv")):
        with pytest.raises(LayoutError) as err:   # never a silent fallback to real/ + fake/
            ingest("generic", tmp_path, probe=False, **kwargs)
        assert str(err.value).startswith(f"{tmp_path / name}: labels CSV not found")
        assert "set csv to ''" in str(err.value)
    df, _ = ingest("generic", tmp_path, csv="", probe=False)
    assert sorted(df["video_id"]) == ["fake/ann/0.mp4", "real/ann/0.mp4"]


def test_generic_folders_need_real_and_fake_videos(tmp_path):
    touch(tmp_path, "real/ann/0.mp4", "real/bob/0.mp4", "fake/readme.txt")
    with pytest.raises(LayoutError) as err:
        ingest("generic", tmp_path, csv="", probe=False)
    assert f"{tmp_path}: fake/ holds no videos; is this a generic-layout root?" in str(err.value)
    (tmp_path / "fake" / "readme.txt").unlink()
    (tmp_path / "fake").rmdir()
    with pytest.raises(LayoutError, match=r"no fake/ folder \(csv ''\)"):
        ingest("generic", tmp_path, csv="", probe=False)


def test_uadfv_signature(tmp_path):
    generic = tmp_path / "generic"      # a generic real/fake tree is not UADFV
    touch(generic, *[f"{label}/{p}/{k}.mp4" for label in ("real", "fake") for p in ("ann", "bob")
                     for k in range(2)])
    with pytest.raises(LayoutError) as err:
        ingest("uadfv", generic, probe=False)
    msg = str(err.value)
    assert msg.startswith(f"{generic}: no real/NNNN.mp4 has its fake/NNNN_fake.mp4")
    assert "is this a UADFV root? Expected real/NNNN.mp4 and fake/NNNN_fake.mp4" in msg
    fakes_unpaired = tmp_path / "unpaired"   # well named but no fake matches a real
    touch(fakes_unpaired, "real/0000.mp4", "real/0001.mp4", "fake/0002_fake.mp4")
    with pytest.raises(LayoutError, match="no real/NNNN.mp4 has its fake/NNNN_fake.mp4"):
        ingest("uadfv", fakes_unpaired, probe=False)
    mixed = tmp_path / "mixed"               # UADFV with strays: strays are failures
    uadfv_tree(mixed, n=5)
    touch(mixed, "real/interview.mp4", "fake/0003.mp4", "real/0042.mp4")
    df, fails = ingest("uadfv", mixed, probe=False, seed=0)
    assert len(df) == 11 and "real/0042.mp4" in set(df["video_id"])   # unpaired but well named
    assert _refused(fails) == {"real/interview.mp4": "not a UADFV real video name (expected real/NNNN.mp4)",
                               "fake/0003.mp4": "not a UADFV fake video name (expected fake/NNNN_fake.mp4)"}
