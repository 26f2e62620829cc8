"""The embedded audio demo: named real speakers, spoofs claiming them, determinism."""

from __future__ import annotations

import filecmp
import os
import subprocess
import wave

import pandas as pd
import pytest

from dfdetect.audio.ingest import ingest_audio
from dfdetect.data.demo import speech

SMALL = {"allison": 4, "tts": 9, "vc": 8}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_audio"
    table = speech.build_demo_audio(out, seed=7, params=SMALL)
    return out, table


def test_speakers_labels_and_claims(demo):
    out, table = demo
    real = table[table["label"] == "real"]
    assert set(real["identity"]) == {"allison", "austen_reader", "cards_speaker"}
    assert len(real) == 4 + 5 + 5 and (real["text"] != "").all()
    fake = table[table["label"] == "fake"]
    tts_rows = fake["method"].str.startswith("tts_espeak_")
    vc_rows = fake["method"].str.startswith("vc_pitch_warp_")
    assert tts_rows.sum() == 9 and vc_rows.sum() == 8 and (tts_rows | vc_rows).all()
    assert set(fake["identity"]) <= set(real["identity"])          # every spoof claims a real speaker
    vc = fake[vc_rows]
    assert (vc["source_id"] != vc["identity"]).all() and vc["source_id"].isin(real["identity"]).all()
    assert (fake.loc[tts_rows, "source_id"] == "").all()
    assert (out / "labels.csv").is_file() and (out / "SPEAKERS.txt").is_file()


def test_tts_spoofs_say_what_their_claimed_speaker_would_say(demo):
    """No topic of their own (the old demo's TTS read fortunes quotations, real speech prompts
    and book text, so the text branch told them apart by topic alone)."""
    _, table = demo
    tts = table[table["method"].str.startswith("tts_espeak_")]
    prompts = set(speech.asterisk_prompts().values())
    austen = set(table.loc[(table["label"] == "real") & (table["identity"] == "austen_reader"), "text"])
    for _, row in tts.iterrows():
        if row["identity"] == "allison":
            assert row["text"] in prompts, row["text"]
        elif row["identity"] == "austen_reader":
            assert row["text"] in austen, row["text"]
        else:
            words = row["text"].split()
            assert words and set(words) <= set(speech.CARD_RANKS) | set(speech.CARD_SUITS) | {"of"}
    assert set(tts["identity"]) == {"allison", "austen_reader", "cards_speaker"}


def test_test_attacks_are_unseen_in_train_and_val(demo):
    """As ASVspoof's evaluation set: no test spoof's attack (TTS voice, VC setting) occurs in
    train or val, and the test split has spoofs of both kinds."""
    _, table = demo
    fake = table[table["label"] == "fake"]
    seen = set(fake.loc[fake["split"] != "test", "method"])
    test = set(fake.loc[fake["split"] == "test", "method"])
    assert test and not test & seen, (test, seen)
    assert any(m.startswith("tts_") for m in test) and any(m.startswith("vc_") for m in test)
    assert any(m.startswith("tts_") for m in seen) and any(m.startswith("vc_") for m in seen)


def test_audio_format_and_lengths(demo):
    out, table = demo
    for rel in table["path"]:
        with wave.open(str(out / rel), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            seconds = w.getnframes() / 16000
        assert 0.8 <= seconds <= 8.0, rel


def test_splits_hold_every_real_speaker_and_vc_follows_source(demo):
    out, table = demo
    real = table[table["label"] == "real"]
    for split in ("train", "val", "test"):
        assert set(real.loc[real["split"] == split, "identity"]) == set(real["identity"])
    by_text = real.set_index(["identity", "text"])["split"]
    for _, row in table[table["method"].str.startswith("vc_pitch_warp_")].iterrows():
        assert by_text[(row["source_id"], row["text"])] == row["split"]


def test_deterministic(demo, tmp_path):
    out, table = demo
    again = speech.build_demo_audio(tmp_path / "again", seed=7, params=SMALL)
    pd.testing.assert_frame_equal(table, again)
    for rel in list(table["path"]) + ["labels.csv"]:
        assert filecmp.cmp(out / rel, tmp_path / "again" / rel, shallow=False), rel
    other = speech.build_demo_audio(tmp_path / "other", seed=8, params=SMALL)
    assert not table.equals(other)


def test_ingest_demo_layout(demo):
    out, table = demo
    df, failures = ingest_audio("demo_audio", out, executor="serial", progress=False)
    assert len(failures) == 0 and len(df) == len(table)
    assert set(df["dataset"]) == {"demo_audio"} and df["has_audio"].all()
    assert (df["duration"] > 0.5).all()
    merged = df.set_index("video_id").join(table.set_index("path"), rsuffix="_csv")
    assert (merged["split"] == merged["split_csv"]).all()
    assert (merged["text"] == merged["text_csv"]).all()


# ----------------------------------------------------------------------------- run_espeak
def _fake_espeak(tmp_path, monkeypatch, body: str):
    """An ``espeak-ng`` on PATH that runs ``body`` (bash; $OUT is the -w file, $N the run number)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "espeak-ng"
    script.write_text("#!/bin/bash\nwhile [ $# -gt 1 ]; do [ \"$1\" = -w ] && OUT=$2; shift; done\n"
                      f"N=$(( $(cat {tmp_path}/count 2>/dev/null || echo 0) + 1 )); echo $N > {tmp_path}/count\n"
                      + body + "\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return tmp_path / "count"


def test_run_espeak_keeps_the_bytes_two_runs_agree_on(tmp_path, monkeypatch, caplog):
    from dfdetect.data.demo.audio import run_espeak

    # the first run gives other bytes (as the first make demo on a fresh machine did), then stable
    count = _fake_espeak(tmp_path, monkeypatch,
                         'if [ $N = 1 ]; then printf odd > "$OUT"; else printf stable > "$OUT"; fi')
    with caplog.at_level("WARNING"):
        out = run_espeak("a sentence", "en-us+f3", 150, tmp_path / "x.wav")
    assert out.read_bytes() == b"stable" and count.read_text().strip() == "3"
    assert "1 of 3 runs" in caplog.text and "en-us+f3" in caplog.text
    # agreeing runs: two runs, no warning
    caplog.clear()
    (tmp_path / "b").mkdir()
    count = _fake_espeak(tmp_path / "b", monkeypatch, 'printf same > "$OUT"')
    with caplog.at_level("WARNING"):
        assert run_espeak("s", "en-gb", 130, tmp_path / "y.wav").read_bytes() == b"same"
    assert count.read_text().strip() == "2" and "runs" not in caplog.text


def test_run_espeak_fails_on_output_that_never_settles_or_a_failing_program(tmp_path, monkeypatch):
    from dfdetect.data.demo import audio

    count = _fake_espeak(tmp_path, monkeypatch, 'printf "run $N" > "$OUT"')
    with pytest.raises(RuntimeError, match=rf"each of {audio.ESPEAK_RUNS} runs.*en-us\+m3.*not reproducible"):
        audio.run_espeak("words", "en-us+m3", 150, tmp_path / "x.wav")
    assert count.read_text().strip() == str(audio.ESPEAK_RUNS) == "4"
    (tmp_path / "fail").mkdir()
    _fake_espeak(tmp_path / "fail", monkeypatch, 'echo "unknown voice" >&2; exit 1')
    with pytest.raises(RuntimeError, match="espeak-ng failed.*unknown voice"):
        audio.run_espeak("words", "xx", 150, tmp_path / "y.wav")


def test_run_espeak_is_espeak_ng_output(tmp_path):
    from dfdetect.data.demo.audio import run_espeak

    direct = tmp_path / "direct.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+f3", "-s", "150", "-w", str(direct), "Rice is often served in round bowls."],
                   check=True, capture_output=True)
    got = run_espeak("Rice is often served in round bowls.", "en-us+f3", 150, tmp_path / "got.wav")
    assert got.read_bytes() == direct.read_bytes() and len(direct.read_bytes()) > 10_000
