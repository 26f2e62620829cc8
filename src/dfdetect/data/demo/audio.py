"""Speech tracks for the demo videos.

Photos have no sound, so every portrait identity gets its own espeak-ng voice saying Harvard
sentences (IEEE 1969 "Recommended Practice for Speech Quality Measurements", public domain).
Videos from ``make_demo.source`` keep their own sound where they have it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from ...failures import ItemError

RATE = 16000

HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
)

# espeak-ng voice variants, one per identity (cycled)
VOICES = ("en-us+f3", "en-us+f2", "en-us+m3", "en-gb+m1", "en-us+m7", "en-gb+f4",
          "en-us+m2", "en-gb+m4", "en-us+f1", "en-gb+m6")


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise RuntimeError(f"the {program} program is needed (apt-get install {program})")
    return path


ESPEAK_RUNS = 4                 # most espeak-ng runs for one utterance (run_espeak)
log = logging.getLogger(__name__)


def run_espeak(text: str, voice: str, speed: int, out_wav: str | Path) -> Path:
    """espeak-ng's WAV of ``text`` in ``voice`` at ``speed`` words/min, written to ``out_wav``:
    the bytes two consecutive runs agree on.

    espeak-ng adds noise (breath, aspiration) from the C library's ``rand()``. Its output is the
    same on every run and machine, except that the first ``make demo`` on each of two fresh
    machines (an AMD and an Intel one) got other bytes for one utterance of the first voice,
    ``en-us+f3``, and never again (README "Determinism across machines"; not reproduced since,
    cause unknown). One such utterance changes the demo's hash and every stage after it. A run
    costs about 15 ms; a second run per utterance makes a transient like that fall out, and
    output that never settles is an error rather than an irreproducible demo."""
    out_wav = Path(out_wav)
    cmd = [_need("espeak-ng"), "-v", voice, "-s", str(int(speed)), "-w", str(out_wav), text]
    prev = None
    for run in range(1, ESPEAK_RUNS + 1):
        done = subprocess.run(cmd, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"espeak-ng failed (voice {voice}): "
                               f"{done.stderr.decode(errors='replace').strip()[:200]}")
        data = out_wav.read_bytes()
        if data == prev:
            if run > 2:
                log.warning("espeak-ng gave other bytes on %d of %d runs (voice %s, %r); kept the "
                            "output of the last two, which agree", run - 2, run, voice, text)
            return out_wav
        prev = data
    raise RuntimeError(f"espeak-ng gave different output on each of {ESPEAK_RUNS} runs "
                       f"(voice {voice}, {text!r}): its output is not reproducible here")


def write_wav(path: str | Path, samples: np.ndarray, rate: int = RATE) -> None:
    pcm = np.clip(np.asarray(samples, dtype=np.float64), -1, 1)
    pcm = (pcm * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(int(rate))
        wf.writeframes(pcm.tobytes())


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wf:
        rate = wf.getframerate()
        ch = wf.getnchannels()
        data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").astype(np.float32)
    if ch > 1:
        data = data.reshape(-1, ch).mean(1)
    return data / 32768.0, rate


def _fit(samples: np.ndarray, rate: int, seconds: float, lead: float = 0.1) -> np.ndarray:
    n = int(round(seconds * rate))
    out = np.zeros(n, np.float32)
    start = min(int(lead * rate), n)
    seg = samples[: n - start]
    out[start:start + len(seg)] = seg
    fade = min(len(out), int(0.02 * rate))
    if fade:
        out[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return out


def speak(text: str, voice: str, seconds: float, out_wav: str | Path, speed: int = 165) -> Path:
    """espeak-ng saying ``text`` with ``voice``, resampled to 16 kHz mono and cut/padded to
    exactly ``seconds`` (speech starts after 0.1 s)."""
    out_wav = Path(out_wav)
    raw = out_wav.with_suffix(".espeak.wav")
    run_espeak(text, voice, speed, raw)
    res = out_wav.with_suffix(".16k.wav")
    subprocess.run([_need("ffmpeg"), "-nostdin", "-v", "error", "-y", "-i", str(raw),
                    "-ac", "1", "-ar", str(RATE), "-fflags", "+bitexact", "-flags:a", "+bitexact",
                    str(res)], check=True, capture_output=True)
    samples, rate = read_wav(res)
    write_wav(out_wav, _fit(samples, rate, seconds), rate)
    raw.unlink(missing_ok=True)
    res.unlink(missing_ok=True)
    return out_wav


def extract_audio(video: str | Path, start: float, seconds: float, out_wav: str | Path) -> bool:
    """The sound of ``video`` from ``start`` for ``seconds`` as 16 kHz mono WAV; False when the
    video has no audio stream."""
    out_wav = Path(out_wav)
    probe = subprocess.run([_need("ffprobe"), "-v", "error", "-select_streams", "a",
                            "-show_entries", "stream=index", "-of", "csv=p=0", str(video)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise ItemError(f"ffprobe failed: {probe.stderr.strip()[:200]}", path=str(video))
    if not probe.stdout.strip():
        return False
    tmp = out_wav.with_suffix(".src.wav")
    run = subprocess.run([_need("ffmpeg"), "-nostdin", "-v", "error", "-y", "-ss", f"{start:.3f}",
                          "-i", str(video), "-t", f"{seconds:.3f}", "-vn", "-ac", "1",
                          "-ar", str(RATE), "-fflags", "+bitexact", "-flags:a", "+bitexact",
                          str(tmp)], capture_output=True, text=True)
    if run.returncode != 0:
        raise ItemError(f"cannot extract audio: {run.stderr.strip()[:200]}", path=str(video))
    samples, rate = read_wav(tmp)
    write_wav(out_wav, _fit(samples, rate, seconds, lead=0.0), rate)
    tmp.unlink(missing_ok=True)
    return True


def envelope(wav: str | Path, fps: float, n: int) -> np.ndarray:
    """RMS loudness of the WAV per video frame (``n`` frames at ``fps``)."""
    samples, rate = read_wav(wav)
    hop = rate / float(fps)
    out = np.zeros(n)
    for i in range(n):
        seg = samples[int(round(i * hop)): int(round((i + 1) * hop))]
        out[i] = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if len(seg) else 0.0
    return out
