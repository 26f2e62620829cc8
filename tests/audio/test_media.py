"""Real speech: audio tracks of the real videos in DFDETECT_MEDIA (skipped when unset)."""

from __future__ import annotations

import csv

import pytest

from dfdetect.audio.extract import extract_item
from dfdetect.audio.transcribe import normalise_words
from dfdetect.audio.whisper_engine import load_engine
from dfdetect.failures import ItemError

pytestmark = pytest.mark.media

# common English function words: a real English transcript of several seconds contains some
ENGLISH = {"the", "a", "an", "and", "to", "of", "in", "is", "it", "that", "i", "you", "we",
           "this", "for", "on", "are", "be", "was", "have", "not", "with", "they", "my", "so"}


def inventory(media):
    with open(media / "INVENTORY.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_every_video_with_audio_extracts(media):
    rows = inventory(media)
    with_audio = [r for r in rows if r["audio"] not in ("none", "", "-")]
    assert len(with_audio) == 11
    for r in with_audio:
        res = extract_item(media / r["file"])
        assert res["attrs"]["sample_rate"] == 16000
        assert abs(res["attrs"]["duration"] - float(r["dur_s"])) < 0.5, r["file"]
    silent = next(r for r in rows if r["audio"] == "none")
    with pytest.raises(ItemError, match="no audio track"):
        extract_item(media / silent["file"])


def test_real_video_transcribes_to_english(media, tmp_path, monkeypatch):
    monkeypatch.setenv("DFDETECT_CACHE", str(tmp_path))
    wave = extract_item(media / "videos" / "sadtalker__WDA_AlexandriaOcasioCortez_000.mp4")["wave"][0]
    result = load_engine("openai-whisper", "tiny.en", threads=2).transcribe(wave)
    words = normalise_words(result["text"])
    assert result["language"] == "en" and len(words) >= 8, result["text"]
    assert len(set(words) & ENGLISH) >= 2, result["text"]
    assert all(ch.isascii() for ch in result["text"]), result["text"]
