"""The embedded audio demo: real speech of named speakers, TTS and voice-conversion spoofs.

Everything comes from installed Debian packages, so the demo builds offline:

- real speech (bona fide), with the packages' reference transcripts:
  ``allison``: Allison Smith, the voice of Asterisk's prompts (``asterisk-core-sounds-en-wav``,
  8 kHz, CC-BY-SA-3.0, transcripts in ``core-sounds-en.txt.gz``);
  ``austen_reader``: the LibriVox reader of *Sense and Sensibility* chapter 1
  (``pocketsphinx-testdata`` ``librivox/``, public domain);
  ``cards_speaker``: the speaker of pocketsphinx's ``cards/`` test utterances;
- TTS spoofs (``tts_espeak``): espeak-ng (a voice chosen per claimed speaker) saying a quotation
  from Debian's ``fortunes`` files (``fortunes``, ``wisdom``) that the claimed speaker never
  said. ``source_id`` is "" and ``text`` the quotation;
- voice-conversion spoofs (``vc_pitch_warp``): a real utterance of speaker B, pitch-shifted
  with sox (WSOLA) towards speaker A and with its spectral envelope warped along frequency
  (STFT magnitude resampled by a factor, original phase), claiming speaker A;
  ``source_id`` = B and ``text`` = B's transcript.

Every file is 16 kHz mono 16-bit PCM; ``labels.csv`` (``path,label,method,identity,source_id,
split,text``) is the generic audio layout. Splits are assigned per speaker (stratified by
claimed speaker and method) so that every split holds every speaker: the late-fusion text
model must know the claimed speaker. A VC spoof takes the split of its source utterance.
The same seed and parameters give byte-identical files (checked by the tests).
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import subprocess
import tempfile
import wave as wavmod
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import signal

from ... import config as _cfg
from ...store import write_csv_atomic

log = logging.getLogger("dfdetect")
RATE = 16000
ASTERISK = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
FORTUNES = Path("/usr/share/games/fortunes")
DEFAULTS = {
    "allison": 16,            # Asterisk prompts used (all LibriVox and cards utterances are used)
    "tts": 16,                # espeak-ng spoofs
    "vc": 16,                 # voice-conversion spoofs
    "min_seconds": 2.0,       # Asterisk prompts / quotations kept between these lengths
    "max_seconds": 5.0,
    "fortune_files": ["fortunes", "wisdom"],
    "split_fractions": [0.6, 0.2, 0.2],
}


def _min_below_max(value, where: str) -> None:
    lo, hi = value.get("min_seconds", DEFAULTS["min_seconds"]), value.get("max_seconds", DEFAULTS["max_seconds"])
    if lo > hi:
        raise _cfg.ParamError(f"{where}.min_seconds", lo, f"must be <= {where}.max_seconds ({hi})")


# params schema of the ``make_demo_audio`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "allison": _cfg.Int(ge=1),
    "tts": _cfg.Int(ge=0),
    "vc": _cfg.Int(ge=0),
    "min_seconds": _cfg.Float(gt=0),
    "max_seconds": _cfg.Float(gt=0),
    "fortune_files": _cfg.List(_cfg.Str(), min_len=1),
    "split_fractions": _cfg.fractions(3),
}, check=_min_below_max)
# espeak-ng voice and speed of the TTS spoofs that claim each speaker
TTS_VOICES = {"allison": ("en-us+f3", 160), "austen_reader": ("en-gb+f4", 150),
              "cards_speaker": ("en-us+m3", 165)}
SPEAKER_INFO = {
    "allison": "Allison Smith (Asterisk core sounds, CC-BY-SA-3.0)",
    "austen_reader": "LibriVox reader, Sense and Sensibility ch. 1 (pocketsphinx-testdata)",
    "cards_speaker": "speaker of pocketsphinx-testdata cards/ (CMU)",
}


class DemoSourceError(RuntimeError):
    """A Debian package the demo needs is not installed."""


# ----------------------------------------------------------------------------- io
def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    with wavmod.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        rate, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    if ch > 1:
        data = data.reshape(-1, ch).mean(axis=1)
    return data, rate


def read_raw(path: str | Path, rate: int = 16000) -> tuple[np.ndarray, int]:
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768, rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int = RATE) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767), -32768, 32767)
    with wavmod.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def to_rate(x: np.ndarray, rate: int, target: int = RATE) -> np.ndarray:
    if rate == target:
        return x.astype(np.float32)
    g = np.gcd(int(rate), int(target))
    return signal.resample_poly(x, target // g, rate // g).astype(np.float32)


def normalise_level(x: np.ndarray, peak: float = 0.7) -> np.ndarray:
    m = float(np.abs(x).max()) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def _need(path: Path, package: str) -> Path:
    if not path.exists():
        raise DemoSourceError(f"{path} not found: install the Debian package {package} "
                              f"(apt install {package}; `make apt` does it)")
    return path


# ----------------------------------------------------------------------------- real speech
def asterisk_prompts() -> dict[str, str]:
    """Asterisk prompt name -> transcript (spoken prompts only, no tones)."""
    text = gzip.decompress(_need(ASTERISK_TEXT, "asterisk-core-sounds-en").read_bytes()).decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        if not line or line.startswith(";") or ": " not in line:
            continue
        name, said = line.split(": ", 1)
        said = said.strip()
        if said and not said.startswith("[") and "/" not in name:
            out[name.strip()] = said
    return out


def _sphinx_transcripts(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*$", line)
        if m:
            out[m.group(2)] = " ".join(m.group(1).split())
    return out


def real_utterances(allison: int, min_s: float, max_s: float, rng: np.random.Generator) -> list[dict]:
    """Real utterances: ``{"speaker", "name", "wave", "text"}`` (16 kHz)."""
    utts = []
    prompts = asterisk_prompts()
    _need(ASTERISK, "asterisk-core-sounds-en-wav")
    cands = []
    for name in sorted(prompts):
        f = ASTERISK / f"{name}.wav"
        if not f.is_file():
            continue
        with wavmod.open(str(f), "rb") as w:
            dur = w.getnframes() / w.getframerate()
        if min_s <= dur <= max_s:
            cands.append(name)
    if len(cands) < allison:
        raise DemoSourceError(f"only {len(cands)} Asterisk prompts of {min_s}-{max_s} s")
    for name in sorted(rng.choice(cands, size=allison, replace=False).tolist()):
        x, r = read_wav(ASTERISK / f"{name}.wav")
        utts.append({"speaker": "allison", "name": name, "wave": to_rate(x, r), "text": prompts[name]})
    libri = _need(POCKETSPHINX / "librivox", "pocketsphinx-testdata")
    for uid, said in sorted(_sphinx_transcripts(libri / "transcription").items()):
        x, r = read_wav(libri / f"{uid}.wav")
        utts.append({"speaker": "austen_reader", "name": uid.rsplit("-", 1)[-1], "wave": to_rate(x, r),
                     "text": said})
    cards = POCKETSPHINX / "cards"
    for uid, said in sorted(_sphinx_transcripts(cards / "cards.transcription").items()):
        x, r = read_wav(cards / f"{uid}.wav")
        utts.append({"speaker": "cards_speaker", "name": uid, "wave": to_rate(x, r), "text": said})
    return utts


# ----------------------------------------------------------------------------- quotations
def fortune_quotes(files: Sequence[str], min_words: int = 6, max_words: int = 14) -> list[str]:
    """Single-sentence-ish quotations from fortune files (attributions dropped), sorted."""
    out = set()
    for name in files:
        path = _need(FORTUNES / name, "fortunes")
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            body = re.split(r"\n\s*--", entry)[0]
            text = " ".join(body.split())
            if not re.fullmatch(r"[A-Za-z][A-Za-z ,.;:'!?-]*[.!?]", text):
                continue
            if min_words <= len(text.split()) <= max_words:
                out.add(text)
    return sorted(out)


# ----------------------------------------------------------------------------- synthesis
def espeak(text: str, voice: str, speed: int) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise DemoSourceError("espeak-ng not found: apt install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tts.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        x, r = read_wav(out)
    return to_rate(x, r)


def sox_pitch(x: np.ndarray, cents: float) -> np.ndarray:
    """Pitch shift keeping duration (sox ``pitch``, WSOLA)."""
    if shutil.which("sox") is None:
        raise DemoSourceError("sox not found: apt install sox")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        write_wav(src, normalise_level(x, 0.5))
        subprocess.run(["sox", "-D", str(src), str(dst), "pitch", f"{cents:.0f}"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        y, r = read_wav(dst)
    return to_rate(y, r)


def warp_envelope(x: np.ndarray, factor: float, nfft: int = 512) -> np.ndarray:
    """Move formants by ``factor``: each STFT frame's magnitude is resampled along frequency
    (bin k takes the magnitude at k / factor); the phase is kept."""
    _, _, z = signal.stft(x, fs=RATE, nperseg=nfft, noverlap=nfft * 3 // 4)
    bins = np.arange(z.shape[0], dtype=np.float64)
    src = bins / factor
    mag = np.abs(z)
    warped = np.empty_like(mag)
    for t in range(mag.shape[1]):
        warped[:, t] = np.interp(src, bins, mag[:, t], right=0.0)
    _, y = signal.istft(warped * np.exp(1j * np.angle(z)), fs=RATE, nperseg=nfft,
                        noverlap=nfft * 3 // 4)
    return y[: len(x)].astype(np.float32)


def voice_convert(x: np.ndarray, semitones: float, formant: float) -> np.ndarray:
    return warp_envelope(sox_pitch(x, 100.0 * semitones), formant)


# ----------------------------------------------------------------------------- splits
def stratified_splits(n: int, fractions: Sequence[float], rng: np.random.Generator) -> list[str]:
    """``n`` split names, shuffled, with the fractions' counts and >= 1 per split when n >= 3."""
    fr = np.asarray(fractions, dtype=float) / float(np.sum(fractions))
    counts = np.floor(fr * n).astype(int)
    if n >= 3:
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    while counts.sum() < n:
        counts[int(np.argmax(fr * n - counts))] += 1
    names = [s for s, c in zip(("train", "val", "test"), counts) for _ in range(c)]
    return [names[i] for i in rng.permutation(n)]


# ----------------------------------------------------------------------------- build
def build_demo_audio(out_dir: str | Path, seed: int = 0, params: Mapping | None = None) -> pd.DataFrame:
    """Write the demo audio dataset to ``out_dir`` (replaced) and return its labels table."""
    p = {**DEFAULTS, **{k: v for k, v in dict(params or {}).items() if k in DEFAULTS}}
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows: list[dict] = []
    fr = p["split_fractions"]

    real = real_utterances(int(p["allison"]), float(p["min_seconds"]), float(p["max_seconds"]), rng)
    speakers = sorted({u["speaker"] for u in real})
    for spk in speakers:
        mine = [u for u in real if u["speaker"] == spk]
        for u, split in zip(mine, stratified_splits(len(mine), fr, rng)):
            u["split"] = split
    for u in real:
        rel = f"real/{u['speaker']}/{u['name']}.wav"
        write_wav(tmp / rel, normalise_level(u["wave"]))
        rows.append({"path": rel, "label": "real", "method": "bonafide", "identity": u["speaker"],
                     "source_id": "", "split": u["split"], "text": u["text"]})

    quotes = fortune_quotes(p["fortune_files"])
    n_tts = int(p["tts"])
    if len(quotes) < n_tts:
        raise DemoSourceError(f"only {len(quotes)} usable quotations in {p['fortune_files']}")
    picked = [quotes[i] for i in rng.choice(len(quotes), size=n_tts, replace=False)]
    claimed = [speakers[i % len(speakers)] for i in range(n_tts)]
    for spk in speakers:
        idx = [i for i, c in enumerate(claimed) if c == spk]
        for i, split in zip(idx, stratified_splits(len(idx), fr, rng)):
            voice, speed = TTS_VOICES.get(spk, ("en-us", 165))
            x = espeak(picked[i], voice, speed)
            rel = f"fake/tts_espeak/{spk}/tts_{i:03d}.wav"
            write_wav(tmp / rel, normalise_level(x))
            rows.append({"path": rel, "label": "fake", "method": "tts_espeak", "identity": spk,
                         "source_id": "", "split": split, "text": picked[i]})

    n_vc = int(p["vc"])
    order = rng.permutation(len(real))
    for j in range(n_vc):
        src = real[int(order[j % len(real)])]
        targets = [s for s in speakers if s != src["speaker"]]
        target = targets[int(rng.integers(len(targets)))]
        semitones = float(rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 5.0))
        formant = float(2.0 ** (semitones / 24.0))   # envelope moves half as far as the pitch
        x = voice_convert(src["wave"], semitones, formant)
        rel = f"fake/vc_pitch_warp/{target}/vc_{j:03d}_from_{src['speaker']}_{src['name']}.wav"
        write_wav(tmp / rel, normalise_level(x))
        rows.append({"path": rel, "label": "fake", "method": "vc_pitch_warp", "identity": target,
                     "source_id": src["speaker"], "split": src["split"], "text": src["text"]})

    table = pd.DataFrame(rows, columns=["path", "label", "method", "identity", "source_id",
                                        "split", "text"]).sort_values("path", kind="stable")
    write_csv_atomic(tmp / "labels.csv", table.reset_index(drop=True))
    (tmp / "SPEAKERS.txt").write_text("".join(f"{k}: {v}\n" for k, v in SPEAKER_INFO.items()))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return table.reset_index(drop=True)
