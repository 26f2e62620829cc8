"""Audio dataset layouts on tiny fake trees: protocol parsing, labels, splits, missing files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.audio.ingest import ingest_audio
from dfdetect.audio.layouts import LAYOUTS, get_layout
from dfdetect.data.layouts import LayoutError
from dfdetect.data.demo.speech import write_wav
from dfdetect.failures import Failures


def tone(path: Path, seconds: float = 0.3, freq: float = 220.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    write_wav(path, 0.3 * np.sin(2 * np.pi * freq * t))
    return path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def asv19_tree(root: Path) -> Path:
    proto = root / "LA" / "ASVspoof2019_LA_cm_protocols"
    proto.mkdir(parents=True)
    (proto / "ASVspoof2019.LA.cm.train.trn.txt").write_text(
        "LA_0079 LA_T_1138215 - - bonafide\nLA_0079 LA_T_1004644 - A01 spoof\n"
        "LA_0080 LA_T_0000001 - A02 spoof\n")          # the last one is missing on disk
    (proto / "ASVspoof2019.LA.cm.dev.trl.txt").write_text("LA_0069 LA_D_1047731 - - bonafide\n"
                                                          "LA_0069 LA_D_2000000 - A03 maybe\n")
    (proto / "ASVspoof2019.LA.cm.eval.trl.txt").write_text("LA_0039 LA_E_2834763 - A11 spoof\n")
    for part, name in (("train", "LA_T_1138215"), ("train", "LA_T_1004644"),
                       ("dev", "LA_D_1047731"), ("dev", "LA_D_2000000"), ("eval", "LA_E_2834763")):
        touch(root / "LA" / f"ASVspoof2019_LA_{part}" / "flac" / f"{name}.flac")
    return root


def test_asvspoof2019_protocols_labels_and_official_splits(tmp_path):
    failures = Failures("ingest_audio")
    df = get_layout("asvspoof2019")(asv19_tree(tmp_path), failures).set_index("video_id")
    assert list(df.index) == ["LA/ASVspoof2019_LA_train/flac/LA_T_1138215.flac",
                              "LA/ASVspoof2019_LA_train/flac/LA_T_1004644.flac",
                              "LA/ASVspoof2019_LA_dev/flac/LA_D_1047731.flac",
                              "LA/ASVspoof2019_LA_eval/flac/LA_E_2834763.flac"]
    row = df.loc["LA/ASVspoof2019_LA_train/flac/LA_T_1004644.flac"]
    assert (row.label, row.method, row.split, row.identity) == ("fake", "A01", "train", "LA_0079")
    assert df.loc["LA/ASVspoof2019_LA_train/flac/LA_T_1138215.flac", "label"] == "real"
    assert df.loc["LA/ASVspoof2019_LA_dev/flac/LA_D_1047731.flac", "split"] == "val"
    assert df.loc["LA/ASVspoof2019_LA_eval/flac/LA_E_2834763.flac", "split"] == "test"
    reasons = failures.frame().set_index("video_id")["reason"]
    assert "missing on disk" in reasons["LA/ASVspoof2019_LA_train/flac/LA_T_0000001.flac"]
    assert "'maybe' is not bonafide/spoof" in reasons["LA/ASVspoof2019_LA_dev/flac/LA_D_2000000.flac"]


def test_asvspoof2019_partitions_option_and_wrong_root(tmp_path):
    root = asv19_tree(tmp_path / "a")
    df = get_layout("asvspoof2019")(root, Failures("x"), partitions=["eval"])
    assert set(df["split"]) == {"test"}
    with pytest.raises(LayoutError, match="ASVspoof2019_LA_cm_protocols"):
        get_layout("asvspoof2019")(tmp_path / "b", Failures("x"))


def test_asvspoof2021_keys(tmp_path):
    keys = tmp_path / "keys" / "LA" / "CM"
    keys.mkdir(parents=True)
    (keys / "trial_metadata.txt").write_text(
        "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval\n"
        "LA_0013 LA_E_6244438 none - bonafide bonafide notrim progress\n"
        "LA_0013 LA_E_0000000 none - bonafide bonafide notrim eval\n")
    for name in ("LA_E_9332881", "LA_E_6244438"):
        touch(tmp_path / "ASVspoof2021_LA_eval" / "flac" / f"{name}.flac")
    failures = Failures("x")
    df = get_layout("asvspoof2021")(tmp_path, failures).set_index("video_id")
    spoof = df.loc["ASVspoof2021_LA_eval/flac/LA_E_9332881.flac"]
    assert (spoof.label, spoof.method, spoof.quality, spoof.split) == ("fake", "A07", "alaw/ita_tx", "test")
    assert df.loc["ASVspoof2021_LA_eval/flac/LA_E_6244438.flac", "label"] == "real"
    assert "missing on disk" in failures.frame()["reason"].iloc[0]
    only_eval = get_layout("asvspoof2021")(tmp_path, Failures("x"), phases=["eval"])
    assert list(only_eval["video_id"]) == ["ASVspoof2021_LA_eval/flac/LA_E_9332881.flac"]
    (keys / "trial_metadata.txt").unlink()
    with pytest.raises(LayoutError, match="keys package"):
        get_layout("asvspoof2021")(tmp_path, Failures("x"))


def test_in_the_wild_meta_and_split_within_speakers(tmp_path):
    """In-the-Wild has no official split; it is split within speakers so that every test
    speaker is enrolled (has bona fide train speech) for DADA's late fusion (a speaker-grouped
    split left every test speaker unknown and p_text the constant tau)."""
    base = tmp_path / "release_in_the_wild"
    rows = []
    for i in range(41):
        spk = f"speaker{i % 4}"
        label = "spoof" if (i // 4) % 2 else "bona-fide"
        rows.append({"file": f"{i}.wav", "speaker": spk, "label": label})
        if i != 40:
            tone(base / f"{i}.wav", freq=200 + 10 * i)
    base.mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(base / "meta.csv", index=False)
    df, failures = ingest_audio("itw", tmp_path, seed=3, executor="serial", progress=False)
    assert len(df) == 40 and len(failures) == 1
    assert "listed in meta.csv but missing on disk" in failures.frame()["reason"].iloc[0]
    assert set(df["label"]) == {"real", "fake"}
    assert df.loc[df["video_id"] == "release_in_the_wild/0.wav", "label"].item() == "real"
    assert df["has_audio"].all() and np.allclose(df["duration"], 0.3, atol=0.01)
    # every (speaker, label) cell of 5 files: 3 train, 1 val, 1 test
    counts = df.groupby(["identity", "label", "split"]).size().unstack("split")
    assert (counts[["train", "val", "test"]].to_numpy() == [3, 1, 1]).all()
    test_speakers = set(df.loc[df["split"] == "test", "identity"])
    enrolled = set(df.loc[(df["split"] == "train") & (df["label"] == "real"), "identity"])
    assert test_speakers == {f"speaker{k}" for k in range(4)} and test_speakers <= enrolled
    again, _ = ingest_audio("itw", tmp_path, seed=3, probe=False, progress=False)
    assert again["split"].tolist() == df["split"].tolist()
    other, _ = ingest_audio("itw", tmp_path, seed=4, probe=False, progress=False)
    assert other["split"].tolist() != df["split"].tolist()


def test_mlaad_fake_meta_and_mailabs_real(tmp_path):
    model = tmp_path / "fake" / "en" / "tts_models_en_ljspeech_vits"
    model.mkdir(parents=True)
    (model / "meta.csv").write_text(
        "path|original_file|language|is_original_language|duration|training_data|model_name|"
        "architecture|transcript\n"
        "fake/en/tts_models_en_ljspeech_vits/a.wav|en_US/by_book/female/judy_bieber/oz/wavs/"
        "oz_01_f000001.wav|en|True|1.0|ljspeech|tts_models/en/ljspeech/vits|vits|Dorothy lived.\n"
        "fake/en/tts_models_en_ljspeech_vits/b.wav|en_US/by_book/male/elliot_miller/x/wavs/"
        "x_1.wav|en|True|1.0|ljspeech|tts_models/en/ljspeech/vits|vits|Gone.\n")
    touch(model / "a.wav")
    other = tmp_path / "fake" / "de" / "m"
    other.mkdir(parents=True)
    (other / "meta.csv").write_text("path|original_file|language|model_name|transcript\n"
                                    "fake/de/m/c.wav|de_DE/by_book/male/k/b/wavs/c.wav|de|m|Hallo.\n")
    touch(other / "c.wav")
    book = tmp_path / "mailabs" / "en_US" / "by_book" / "female" / "judy_bieber" / "oz"
    (book / "wavs").mkdir(parents=True)
    (book / "metadata.csv").write_text("oz_01_f000001|Dorothy lived.|Dorothy lived.\n"
                                       "oz_01_f000002|Gone|Gone\n")
    touch(book / "wavs" / "oz_01_f000001.wav")
    failures = Failures("x")
    df = get_layout("mlaad")(tmp_path, failures, languages=["en"]).set_index("video_id")
    fake = df.loc["fake/en/tts_models_en_ljspeech_vits/a.wav"]
    assert (fake.label, fake.method, fake.identity, fake.text) == (
        "fake", "tts_models/en/ljspeech/vits", "judy_bieber", "Dorothy lived.")
    real = df.loc["mailabs/en_US/by_book/female/judy_bieber/oz/wavs/oz_01_f000001.wav"]
    assert (real.label, real.identity, real.method) == ("real", "judy_bieber", "bonafide")
    assert "fake/de/m/c.wav" not in df.index                     # language filter
    reasons = " | ".join(failures.frame()["reason"])
    assert reasons.count("missing on disk") == 2                 # b.wav and oz_01_f000002.wav


def test_generic_csv_with_speaker_text_and_failures(tmp_path):
    tone(tmp_path / "a.wav")
    tone(tmp_path / "sub" / "b.wav")
    (tmp_path / "labels.csv").write_text(
        "path,label,speaker,split,text\n"
        "a.wav,bonafide,alice,train,hello there\n"
        "sub/b.wav,spoof,alice,test,fake words\n"
        "missing.wav,real,bob,,\n"
        "../escape.wav,real,bob,,\n"
        "a.wav,real,alice,train,again\n"
        "sub/b.wav,weird,alice,train,\n")
    failures = Failures("x")
    df = get_layout("generic")(tmp_path, failures).set_index("video_id")
    assert list(df.index) == ["a.wav", "sub/b.wav"]
    assert (df.loc["a.wav", "label"], df.loc["a.wav", "identity"], df.loc["a.wav", "text"]) == (
        "real", "alice", "hello there")
    assert df.loc["sub/b.wav", "label"] == "fake"
    reasons = " | ".join(failures.frame()["reason"])
    for part in ("missing on disk", "outside the dataset root", "listed twice", "'weird'"):
        assert part in reasons


def test_generic_folders(tmp_path):
    tone(tmp_path / "real" / "carol" / "1.wav")
    tone(tmp_path / "fake" / "carol" / "2.flac".replace(".flac", ".wav"))
    (tmp_path / "fake" / "notes.txt").write_text("ignored")
    df = get_layout("generic")(tmp_path, Failures("x"), csv="")
    assert list(df["video_id"]) == ["real/carol/1.wav", "fake/carol/2.wav"]
    assert list(df["identity"]) == ["carol", "carol"]
    with pytest.raises(LayoutError):
        get_layout("generic")(tmp_path / "nothing", Failures("x"))


def test_ingest_probe_records_corrupt_and_keeps_text(tmp_path):
    tone(tmp_path / "ok.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....garbage")
    (tmp_path / "labels.csv").write_text("path,label,speaker,split,text\n"
                                         "ok.wav,real,a,train,said this\nbad.wav,fake,a,test,\n")
    df, failures = ingest_audio("generic", tmp_path, executor="serial", progress=False)
    assert list(df["video_id"]) == ["ok.wav"] and df["text"].tolist() == ["said this"]
    assert failures.frame()["video_id"].tolist() == ["bad.wav"]
    assert "corrupt audio" in failures.frame()["reason"].iloc[0]
    assert set(LAYOUTS) == {"asvspoof2019", "asvspoof2021", "itw", "mlaad", "generic", "demo_audio"}


def test_generic_named_csv_must_exist_and_symlinks_out_of_the_root(tmp_path):
    import os

    root, outside = tmp_path / "ds", tmp_path / "outside"
    touch(root / "real" / "ann" / "1.wav")
    touch(root / "fake" / "ann" / "2.wav")
    touch(outside / "x.wav")
    touch(outside / "dir" / "y.wav")
    (root / "real" / "ext.wav").symlink_to(outside / "x.wav")
    (root / "fake" / "passwd.wav").symlink_to("/etc/passwd")
    (root / "fake" / "extdir").symlink_to(outside / "dir", target_is_directory=True)
    (root / "fake" / "alias.wav").symlink_to("ann/2.wav")
    with pytest.raises(LayoutError, match=r"ds/labels.csv: labels CSV not found"):
        ingest_audio("generic", root, probe=False)          # no silent fallback to folders
    why = "symlink points outside the dataset root: "
    real_out = Path(os.path.realpath(outside))
    df, fails = ingest_audio("generic", root, csv="", probe=False)
    assert sorted(df["video_id"]) == ["fake/alias.wav", "fake/ann/2.wav", "real/ann/1.wav"]
    assert dict(zip(fails.frame()["video_id"], fails.frame()["reason"])) == {
        "real/ext.wav": f"{why}{real_out / 'x.wav'}", "fake/passwd.wav": f"{why}/etc/passwd",
        "fake/extdir": f"{why}{real_out / 'dir'}"}
    (root / "labels.csv").write_text("path,label\nreal/ann/1.wav,real\nfake/ann/2.wav,fake\n"
                                     "fake/alias.wav,fake\nreal/ext.wav,real\nfake/passwd.wav,fake\n"
                                     "fake/extdir/y.wav,fake\n")
    csv_df, csv_fails = ingest_audio("generic", root, probe=False)
    assert sorted(csv_df["video_id"]) == sorted(df["video_id"])   # CSV and folders agree
    assert sorted(csv_fails.frame()["video_id"]) == ["fake/extdir/y.wav", "fake/passwd.wav", "real/ext.wav"]
    followed, none = ingest_audio("generic", root, csv="", probe=False, follow_external_symlinks=True)
    assert len(none) == 0 and {"real/ext.wav", "fake/extdir/y.wav"} <= set(followed["video_id"])


def test_asvspoof2019_asv_scores_from_the_dataset_layout(tmp_path):
    """ASVspoof 2019 LA ships ASV scores with its protocols: the DADA detectors compute t-DCF
    on the dev/eval partition from ASVspoof2019_LA_asv_scores/ without an asv_scores file."""
    from dfdetect.metrics_asv import asvspoof2019_asv_scores
    from dfdetect.detectors.base import DetectorData, create
    from dfdetect.metrics_asv import read_asv_scores, tdcf_from_fake_prob

    root = asv19_tree(tmp_path)
    la = root / "LA"
    proto = la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    lines = []
    for i in range(6):
        name, key = f"LA_E_{100 + i}", ("bonafide" if i < 3 else "spoof")
        lines.append(f"LA_0039 {name} - {'-' if key == 'bonafide' else 'A17'} {key}")
        touch(la / "ASVspoof2019_LA_eval" / "flac" / f"{name}.flac")
    proto.write_text("\n".join(lines) + "\n")
    df, _ = ingest_audio("asvspoof2019", root, probe=False, progress=False)
    ev = df[df["split"] == "test"].reset_index(drop=True)
    assert asvspoof2019_asv_scores(ev["path"]) is None             # not shipped in this tree yet
    scores_dir = la / "ASVspoof2019_LA_asv_scores"
    scores_dir.mkdir()
    rng = np.random.default_rng(0)
    asv_lines = ([f"LA_0039 bonafide target {v:.4f}" for v in rng.normal(3, 1, 40)]
                 + [f"LA_0039 bonafide nontarget {v:.4f}" for v in rng.normal(0, 1, 40)]
                 + [f"LA_0039 A17 spoof {v:.4f}" for v in rng.normal(2, 1, 20)])
    f = scores_dir / "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt"
    f.write_text("\n".join(asv_lines) + "\n")
    (scores_dir / "ASVspoof2019.LA.asv.dev.gi.trl.scores.txt").write_text("LA_0069 bonafide target 1.0\n")
    assert asvspoof2019_asv_scores(ev["path"]) == f
    assert asvspoof2019_asv_scores(df.loc[df["split"] == "val", "path"]).name.startswith("ASVspoof2019.LA.asv.dev")
    assert asvspoof2019_asv_scores(df.loc[df["split"] == "train", "path"]) is None   # no ASV for train
    assert asvspoof2019_asv_scores(df["path"]) is None                              # mixed partitions
    # the detector's metrics: t-DCF from the dataset's own file, the same as with the file given
    p_fake = np.array([0.1, 0.3, 0.6, 0.4, 0.8, 0.9])
    y = (ev["label"] == "fake").to_numpy()
    scores = pd.DataFrame({"video_id": ev["video_id"], "frame_index": -1, "score": p_fake, "split": "test"})
    det = create("dada_late", {})
    got = det.extra_metrics(DetectorData(ev), scores)["tdcf"]
    want = tdcf_from_fake_prob(y, p_fake, read_asv_scores(f))
    assert got["asv_scores_file"] == str(f)
    assert got["min_tdcf_2019"] == pytest.approx(want["min_tdcf_2019"])
    assert got["min_tdcf_2021"] == pytest.approx(want["min_tdcf_2021"])
    # an explicit asv_scores param still wins
    other = tmp_path / "asv.txt"
    other.write_text("a - target 5\na - nontarget -5\na A01 spoof 4\n")
    got2 = create("dada_mid", {"asv_scores": str(other)}).extra_metrics(DetectorData(ev), scores)["tdcf"]
    assert got2["asv_scores_file"] == str(other) and got2["asv"]["eer"] == 0.0
