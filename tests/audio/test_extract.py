"""Audio extraction: ffmpeg -> 16 kHz mono float32; bad audio becomes failure rows with reasons."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.audio.extract import decode_audio, extract_item, extract_shard
from dfdetect.data.demo.speech import write_wav
from dfdetect.data.manifest import normalise
from dfdetect.failures import ItemError
from dfdetect.store import ShardReader


def tone(path: Path, seconds: float, rate: int = 16000, amp: float = 0.3) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    write_wav(path, amp * np.sin(2 * np.pi * 440 * t), rate)
    return path


# the fixtures are steady tones, which the speech-activity check (tested below) calls "no speech"
NO_VAD = {"min_speech_seconds": 0}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    out = {"wav44": tone(d / "tone44k.wav", 1.5, rate=44100)}
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=1.2",
           "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=1.2",
           "-ac", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(d / "clip.mp4"))
    out["mp4"] = d / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=0.5", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(d / "mute.mp4"))
    out["mute"] = d / "mute.mp4"
    out["silent"] = tone(d / "silent.wav", 1.0, amp=0.0)
    out["short"] = tone(d / "short.wav", 0.02)
    out["empty"] = d / "empty.wav"
    out["empty"].write_bytes(b"")
    out["corrupt"] = d / "corrupt.wav"
    out["corrupt"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 4)
    out["header_only"] = d / "header_only.wav"
    write_wav(out["header_only"], np.zeros(0))
    out["missing"] = d / "nope.wav"
    return out


def test_wav_resampled_to_16k_mono(files):
    res = extract_item(files["wav44"], NO_VAD)
    wave = res["wave"]
    assert wave.dtype == np.float32 and wave.shape[0] == 1
    assert abs(wave.shape[1] - 24000) <= 2                    # 1.5 s at 16 kHz
    assert res["attrs"]["sample_rate"] == 16000
    assert res["attrs"]["rms"] == pytest.approx(0.3 / np.sqrt(2), rel=0.02)
    spectrum = np.abs(np.fft.rfft(wave[0]))
    assert abs(np.argmax(spectrum) * 16000 / wave.shape[1] - 440) < 2


def test_video_audio_track_downmixed(files):
    res = extract_item(files["mp4"], NO_VAD)
    assert res["wave"].shape[0] == 1
    assert 1.1 <= res["attrs"]["duration"] <= 1.3
    assert not res["attrs"]["truncated"]


def test_max_seconds_truncates(files):
    res = extract_item(files["wav44"], {"max_seconds": 0.5, **NO_VAD})
    assert res["wave"].shape[1] == 8000 and res["attrs"]["truncated"]


@pytest.mark.parametrize("name, reason", [
    ("silent", "silent audio: RMS"), ("short", "empty audio"), ("empty", "empty file: 0 bytes"),
    ("header_only", "empty audio"), ("corrupt", "corrupt audio"), ("missing", "missing"),
    ("mute", "no audio track")])
def test_bad_audio_reasons(files, name, reason):
    with pytest.raises(ItemError, match=reason):
        extract_item(files[name])


def test_decode_missing_names_the_file(files):
    with pytest.raises(ItemError) as err:
        decode_audio(files["missing"])
    assert str(files["missing"]) in str(err.value)


def test_extract_shard_audio_and_video_rows(files, tmp_path):
    audio = normalise(pd.DataFrame({
        "video_id": ["tone44k.wav", "silent.wav", "corrupt.wav", "nope.wav"],
        "path": [str(files[k]) for k in ("wav44", "silent", "corrupt", "missing")],
        "label": ["real", "real", "fake", "fake"], "has_audio": True}))
    video = normalise(pd.DataFrame({
        "video_id": ["clip.mp4", "mute.mp4", "tone44k.wav"],
        "path": [str(files["mp4"]), str(files["mute"]), str(files["wav44"])],
        "label": ["fake", "real", "real"], "has_audio": [True, False, True]}))
    am, vm = tmp_path / "am.csv", tmp_path / "vm.csv"
    audio.to_csv(am, index=False)
    video.to_csv(vm, index=False)
    out, fail = tmp_path / "shard-0.h5", tmp_path / "fail.csv"
    extract_shard(am, vm, out, fail, {"min_rms": 1e-4, **NO_VAD}, executor="serial", progress=False)
    with ShardReader(out) as r:
        assert r.videos() == ["clip.mp4", "tone44k.wav"]
        assert r.video_attrs("clip.mp4")["source"] == "video"
        assert r.video_attrs("tone44k.wav")["source"] == "audio"
        assert list(r.frame_indices("clip.mp4")) == [0]
        assert r.read("tone44k.wav", "wave").dtype == np.float32
    table = pd.read_csv(fail, keep_default_na=False).set_index("video_id")["reason"]
    assert table["silent.wav"].startswith("silent audio")
    assert table["corrupt.wav"].startswith("corrupt audio")
    assert table["nope.wav"].startswith("missing")
    assert "also used by the audio manifest" in table["tone44k.wav"]
    assert "mute.mp4" not in table.index                        # has_audio False: not attempted
    # a missing video-manifest shard (no videos) is not an error
    extract_shard(am, tmp_path / "none.csv", tmp_path / "s2.h5", tmp_path / "f2.csv", NO_VAD,
                  executor="serial", progress=False)
    with ShardReader(tmp_path / "s2.h5") as r:
        assert r.videos() == ["tone44k.wav"]


def _speechlike(seconds: float, rng, rate: int = 16000) -> np.ndarray:
    """Voiced 'syllables': a harmonic series (f0 120-200 Hz) with formant-like weights,
    switched on and off at about 4 Hz, over faint noise."""
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 80 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    gate = (np.sin(2 * np.pi * 4 * t) > 0).astype(float)
    return 0.2 * voiced * gate + 1e-3 * rng.normal(size=t.size)


def test_noise_above_the_rms_floor_is_no_speech(tmp_path):
    """White noise at RMS 2e-4 passes the silence check (min_rms 1e-4) but is no speech: a
    failure "no speech" naming the file, as is a steady hum; speech-like audio and the real
    speech of the demo's sources pass and record their speech seconds."""
    from dfdetect.audio.vad import speech_seconds

    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.wav"
    write_wav(noise, 2e-4 * rng.normal(size=48000))
    with pytest.raises(ItemError, match="no speech") as err:
        extract_item(noise, {"min_rms": 1e-4})
    assert str(noise) in str(err.value)
    assert "RMS 2." in str(err.value)
    loud = tmp_path / "loud_noise.wav"
    write_wav(loud, 0.1 * rng.normal(size=48000))
    with pytest.raises(ItemError, match="no speech"):
        extract_item(loud)
    assert extract_item(noise, {"min_rms": 1e-4, "min_speech_seconds": 0})["wave"].shape == (1, 48000)
    voiced = tmp_path / "voiced.wav"
    write_wav(voiced, _speechlike(3.0, rng))
    res = extract_item(voiced)
    assert 1.0 <= res["attrs"]["speech_seconds"] <= 2.0       # on half the time
    assert speech_seconds(2e-4 * rng.normal(size=48000), 16000) == 0.0
    from dfdetect.data.demo.speech import POCKETSPHINX

    real = POCKETSPHINX / "cards" / "001.wav"
    if real.is_file():
        assert extract_item(real)["attrs"]["speech_seconds"] >= 0.3
    # in the shard: a failure row with the reason, the rest extracted
    am = tmp_path / "am.csv"
    normalise(pd.DataFrame({"video_id": ["noise.wav", "voiced.wav"], "path": [str(noise), str(voiced)],
                            "label": ["real", "real"], "has_audio": True})).to_csv(am, index=False)
    extract_shard(am, None, tmp_path / "shard-0.h5", tmp_path / "f.csv", {}, executor="serial",
                  progress=False)
    with ShardReader(tmp_path / "shard-0.h5") as r:
        assert r.videos() == ["voiced.wav"]
    table = pd.read_csv(tmp_path / "f.csv", keep_default_na=False).set_index("video_id")
    assert table.loc["noise.wav", "reason"].startswith("no speech")
