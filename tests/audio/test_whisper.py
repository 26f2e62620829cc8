"""Whisper: the CTranslate2 -> openai-whisper converter, offline transcription, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dfdetect.audio import whisper_engine as we
from dfdetect.audio.transcribe import normalise_words, read_transcripts, transcribe_store, wer
from dfdetect.data.demo import speech
from dfdetect.data.demo.speech import espeak
from dfdetect.store import ShardWriter

FOX = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("DFDETECT_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def engine(cache):
    return we.load_engine("openai-whisper", "tiny.en", threads=1)


@pytest.fixture(scope="module")
def fox() -> np.ndarray:
    return espeak(FOX, "en-gb", 130)   # tiny.en: "the quick brown fox jump over the lazy dog"


def test_wer_helper():
    assert wer("The quick, brown fox.", "the quick brown fox") == (0, 4)
    assert wer("a b c d", "a x c") == (2, 4)
    assert normalise_words("Call-Forward on No Answer.") == ["call", "forward", "on", "no", "answer"]
    assert normalise_words("Go forward 10 meters, 42 or 305") == [
        "go", "forward", "ten", "meters", "forty", "two", "or", "three", "hundred", "five"]


def test_converted_checkpoint_matches_ctranslate2_encoder(engine, cache, fox):
    import ctranslate2
    import torch
    import whisper

    ckpt = we.packaged_checkpoint()
    assert ckpt.parent == cache / "whisper" and ckpt.is_file()
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert saved["dims"] == {"n_mels": 80, "n_vocab": 51864, "n_audio_ctx": 1500,
                             "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
                             "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6,
                             "n_text_layer": 4}
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(fox)).numpy()[None]
    with torch.no_grad():
        ours = engine.model.encoder(torch.from_numpy(mel)).numpy()
    ct2 = ctranslate2.models.Whisper(str(we.packaged_ct2_dir()), device="cpu",
                                     compute_type="float32", intra_threads=1)
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)),
                              to_cpu=True))
    assert ours.shape == ref.shape == (1, 1500, 384)
    assert np.abs(ours - ref).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))
    # the alignment heads of the packaged config were installed (word timestamps use them)
    assert int(engine.model.alignment_heads.to_dense().sum()) == 8


def test_nonzero_key_bias_is_refused():
    d = 8
    v = {"encoder/layer_0/ffn/linear_0/weight": np.zeros((4, d)),
         "decoder/layer_0/ffn/linear_0/weight": np.zeros((4, d)),
         "encoder/conv1/weight": np.zeros((d, 80, 3)), "encoder/conv1/bias": np.zeros(d),
         "encoder/conv2/weight": np.zeros((d, d, 3)), "encoder/conv2/bias": np.zeros(d),
         "encoder/position_encodings/encodings": np.zeros((10, d)),
         "encoder/layer_0/self_attention/linear_0/weight": np.zeros((3 * d, d)),
         "encoder/layer_0/self_attention/linear_0/bias": np.r_[np.zeros(d), np.ones(d), np.zeros(d)]}
    with pytest.raises(ValueError, match="key bias"):
        we.ct2_to_state_dict(v)


def test_offline_default_transcribes_the_fox(engine, fox):
    result = engine.transcribe(fox)
    edits, n = wer(FOX, result["text"])
    assert edits / n <= 0.25, result["text"]
    assert result["language"] == "en"
    assert result["segments"] and result["segments"][0]["start"] >= 0.0
    assert result["segments"][-1]["end"] <= result["duration"] + 0.5
    assert np.isfinite(result["avg_logprob"]) and result["avg_logprob"] < 0
    assert result["rtf"] > 0


def test_deterministic_and_store_jsonl(engine, fox, tmp_path, monkeypatch):
    audio = tmp_path / "audio"
    with ShardWriter(audio / "shard-0.h5", stage="extract_audio") as w:
        w.add_video("b/fox.wav", [0], attrs={"sample_rate": 16000}, wave=fox[None, :])
        w.add_video("a/silence.wav", [0], attrs={"sample_rate": 16000},
                    wave=np.zeros((1, 16000), np.float32))
    import dfdetect.audio.transcribe as tr

    monkeypatch.setattr(tr, "load_engine", lambda **kw: engine)
    outs = []
    for k in range(2):
        out = tmp_path / f"t{k}.jsonl"
        metrics = transcribe_store(audio, out, tmp_path / f"m{k}.json", tmp_path / f"f{k}.csv",
                                   {"engine": "openai-whisper"}, timings_path=tmp_path / "rtf.csv",
                                   progress=False)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]                                   # byte-identical reruns
    df = read_transcripts(tmp_path / "t0.jsonl")
    assert list(df["id"]) == ["a/silence.wav", "b/fox.wav"]     # sorted by id
    first = json.loads(outs[0].decode().splitlines()[1])
    assert list(first) == ["id", "text", "language", "segments", "avg_logprob", "duration",
                           "engine", "model"]
    assert wer(FOX, first["text"])[0] <= 2
    assert metrics["items"] == 2 and metrics["transcribed"] == 2 and metrics["rtf"] > 0


def test_faster_whisper_engine_agrees(cache, fox):
    fw = we.load_engine("faster-whisper", "tiny.en", threads=1)
    a, b = fw.transcribe(fox), fw.transcribe(fox)
    assert a["text"] == b["text"] and a["segments"] == b["segments"]
    assert wer(FOX, a["text"])[0] / 9 <= 0.25, a["text"]


def test_temperature_must_be_zero():
    with pytest.raises(ValueError, match="temperature"):
        we.load_engine("openai-whisper", temperature=0.2)
    with pytest.raises(ValueError, match="temperature"):
        we.load_engine("faster-whisper", temperature=[0.0, 0.4])
    with pytest.raises(ValueError, match="unknown transcription engine"):
        we.load_engine("whisper.cpp")


@pytest.mark.slow
def test_real_speech_wer_on_librivox(engine):
    """pocketsphinx-testdata's 5 LibriVox utterances (24 s) with their reference transcripts."""
    utts = [u for u in speech.real_utterances(1, 1.0, 10.0, np.random.default_rng(0))
            if u["speaker"] == "austen_reader"]
    assert len(utts) == 5
    edits = words = 0
    for u in utts:
        e, n = wer(u["text"], engine.transcribe(u["wave"])["text"])
        edits, words = edits + e, words + n
    assert edits / words <= 0.15


def test_sources_selects_audio_dataset_or_video_tracks(engine, fox, tmp_path, monkeypatch):
    """``transcribe.sources`` picks items by the store's ``source`` attribute (extract_audio sets
    it): [audio] skips the video tracks, [audio, video] transcribes both."""
    audio = tmp_path / "audio"
    with ShardWriter(audio / "shard-0.h5", stage="extract_audio") as w:
        w.add_video("real/a.wav", [0], attrs={"sample_rate": 16000, "source": "audio"}, wave=fox[None, :])
        w.add_video("real/v.mp4", [0], attrs={"sample_rate": 16000, "source": "video"}, wave=fox[None, :])
    import dfdetect.audio.transcribe as tr

    monkeypatch.setattr(tr, "load_engine", lambda **kw: engine)
    ids = {}
    for sources in (["audio"], ["video"], ["audio", "video"]):
        out = tmp_path / f"{'-'.join(sources)}.jsonl"
        m = transcribe_store(audio, out, tmp_path / "m.json", tmp_path / "f.csv",
                             {"engine": "openai-whisper", "sources": sources}, progress=False)
        ids[tuple(sources)] = list(read_transcripts(out)["id"])
        assert m["items"] == len(ids[tuple(sources)]) and m["sources"] == sorted(sources)
    assert ids[("audio",)] == ["real/a.wav"] and ids[("video",)] == ["real/v.mp4"]
    assert ids[("audio", "video")] == ["real/a.wav", "real/v.mp4"]
    with pytest.raises(Exception, match="sources"):
        tr.PARAMS.validate({"engine": "openai-whisper", "model": "tiny.en", "language": "en", "temperature": 0,
                            "beam_size": 1, "device": "cpu", "threads": 0, "sources": ["subtitles"]}, "transcribe")


def test_identical_waves_are_transcribed_once(engine, fox, tmp_path, monkeypatch):
    """Two items with the same samples (a fake that kept its source's audio track) cost one
    engine run, and the reused record is byte for byte the one a run of that item alone gives;
    a wave that differs in one sample is run again."""
    other = fox.copy()
    other[100] += 1e-3
    audio = tmp_path / "audio"
    with ShardWriter(audio / "shard-0.h5", stage="extract_audio") as w:
        for vid, wave in (("real/a.mp4", fox), ("fake/a.mp4", fox), ("fake/b.mp4", other)):
            w.add_video(vid, [0], attrs={"sample_rate": 16000, "source": "video"}, wave=wave[None, :])
    alone = tmp_path / "alone"
    with ShardWriter(alone / "shard-0.h5", stage="extract_audio") as w:
        w.add_video("real/a.mp4", [0], attrs={"sample_rate": 16000, "source": "video"}, wave=fox[None, :])
    import dfdetect.audio.transcribe as tr

    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(engine, name)

        def transcribe(self, wave):
            calls.append(wave.shape)
            return engine.transcribe(wave)

    monkeypatch.setattr(tr, "load_engine", lambda **kw: Counting())
    m = transcribe_store(audio, tmp_path / "t.jsonl", tmp_path / "m.json", tmp_path / "f.csv",
                         {"engine": "openai-whisper", "sources": ["video"]},
                         timings_path=tmp_path / "rtf.csv", progress=False)
    assert len(calls) == 2 and m["engine_runs"] == 2 and m["reused"] == 1
    assert m["items"] == 3 and m["transcribed"] == 3
    rows = {json.loads(line)["id"]: line for line in (tmp_path / "t.jsonl").read_text().splitlines()}
    assert rows["fake/a.mp4"] == rows["real/a.mp4"].replace('"real/a.mp4"', '"fake/a.mp4"')
    transcribe_store(alone, tmp_path / "alone.jsonl", tmp_path / "m2.json", tmp_path / "f2.csv",
                     {"engine": "openai-whisper", "sources": ["video"]}, progress=False)
    assert (tmp_path / "alone.jsonl").read_text().splitlines() == [rows["real/a.mp4"]]
    assert len(read_transcripts(tmp_path / "t.jsonl")) == 3
    assert list(pd.read_csv(tmp_path / "rtf.csv")["id"]) == ["fake/a.mp4", "fake/b.mp4"]  # real/a reused


def test_engine_threads_do_not_leak_into_the_process(fox):
    """The engine's ``threads`` hold for its own calls only: loading and transcribing leave the
    caller's torch thread count as it was (a leaked count once changed later MTCNN bytes)."""
    import torch

    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        eng = we.load_engine("openai-whisper", "tiny.en", threads=1)
        assert torch.get_num_threads() == 2
        seen = []
        real = eng.model.transcribe

        def spy(*a, **kw):
            seen.append(torch.get_num_threads())
            return real(*a, **kw)

        eng.model.transcribe = spy
        eng.transcribe(fox)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(prev)


def test_model_names_are_the_engines_own():
    """The names check_model accepts are exactly those each engine's loader downloads."""
    import whisper  # noqa: PLC0415

    assert we.OPENAI_MODELS == tuple(whisper.available_models())
    try:
        import faster_whisper  # noqa: PLC0415
    except ImportError:
        pytest.skip("faster-whisper not installed")
    assert we.FASTER_MODELS == tuple(faster_whisper.available_models())
    assert we.english_only("tiny.en") and we.english_only("packaged") and not we.english_only("small")
