"""The embedded audio demo: real speech of named speakers, TTS and voice-conversion spoofs.

Everything comes from installed Debian packages, so the demo builds offline:

- real speech (bona fide), with the packages' reference transcripts:
  ``allison``: Allison Smith, the voice of Asterisk's prompts (``asterisk-core-sounds-en-wav``,
  8 kHz, CC-BY-SA-3.0, transcripts in ``core-sounds-en.txt.gz``);
  ``austen_reader``: the LibriVox reader of *Sense and Sensibility* chapter 1
  (``pocketsphinx-testdata`` ``librivox/``, public domain);
  ``cards_speaker``: the speaker of pocketsphinx's ``cards/`` test utterances;
- TTS spoofs (``tts_espeak_<voice>``): espeak-ng saying a sentence of the same kind as the
  claimed speaker's real speech (``sentence_pool``: an Asterisk prompt not used as real speech
  for ``allison``, a sentence of the LibriVox chapter for ``austen_reader``, a card phrase of
  pocketsphinx's ``cards.gram`` for ``cards_speaker``), so the words alone do not tell a TTS
  spoof from its claimed speaker. ``source_id`` is "" and ``text`` the sentence;
- voice-conversion spoofs (``vc_pitch_warp_<setting>``): a real utterance of speaker B,
  pitch-shifted with sox (WSOLA) towards speaker A and with its spectral envelope warped along
  frequency (STFT magnitude resampled by a factor, original phase), claiming speaker A;
  ``source_id`` = B and ``text`` = B's transcript.

Unseen attacks (as ASVspoof's evaluation set): the train and val spoofs use the attacks of
``TTS_ATTACKS["seen"]`` / ``VC_ATTACKS["seen"]`` (espeak voices, VC pitch ranges and envelope
factors), the test spoofs only those of ``["unseen"]``; ``method`` names the attack.

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
from .audio import run_espeak

log = logging.getLogger("dfdetect")
RATE = 16000
ASTERISK = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
DEFAULTS = {
    "allison": 16,            # Asterisk prompts used (all LibriVox and cards utterances are used)
    "tts": 16,                # espeak-ng spoofs
    "vc": 16,                 # voice-conversion spoofs
    "min_seconds": 2.0,       # Asterisk prompts kept between these lengths
    "max_seconds": 5.0,
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
    "split_fractions": _cfg.fractions(3),
}, check=_min_below_max)
# Attacks. TTS: espeak-ng (voice, variant, words per minute); VC: (|semitones| range, envelope
# exponent e: the spectral envelope moves by 2 ** (e * semitones / 12)). "seen" attacks make the
# train and val spoofs, "unseen" ones the test spoofs (none of them occurs in train or val).
TTS_ATTACKS = {"seen": [("en-us", "f3", 160), ("en-gb", "m3", 150), ("en-us", "m1", 170)],
               "unseen": [("en-gb-scotland", "f2", 145), ("en-029", "m4", 175)]}
VC_ATTACKS = {"seen": [("a", (2.0, 3.5), 0.5), ("b", (2.0, 3.5), 0.0)],
              "unseen": [("c", (3.5, 5.0), 1.0)]}


def tts_method(voice: str, variant: str) -> str:
    return f"tts_espeak_{voice}_{variant}"


def attacks_for(split: str) -> str:
    return "unseen" if split == "test" else "seen"


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


def asterisk_candidates(prompts: Mapping[str, str], min_s: float, max_s: float) -> list[str]:
    """Names of the Asterisk prompts whose recording lasts ``min_s``..``max_s`` seconds."""
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
    return cands


def real_utterances(allison: int, min_s: float, max_s: float, rng: np.random.Generator) -> list[dict]:
    """Real utterances: ``{"speaker", "name", "wave", "text"}`` (16 kHz)."""
    utts = []
    prompts = asterisk_prompts()
    cands = asterisk_candidates(prompts, min_s, max_s)
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


# ----------------------------------------------------------------------------- spoof sentences
CARD_RANKS = ("ace two three four five six seven eight nine ten jack queen king").split()
CARD_SUITS = ("clubs", "hearts", "diamonds", "spades")


def card_phrase(rng: np.random.Generator) -> str:
    """A phrase of pocketsphinx's ``cards.gram`` (one to three cards, "<rank> of <suit>")."""
    n = int(rng.integers(1, 4))
    return " ".join(f"{CARD_RANKS[int(rng.integers(len(CARD_RANKS)))]} of "
                    f"{CARD_SUITS[int(rng.integers(len(CARD_SUITS)))]}" for _ in range(n))


def sentence_pool(real: Sequence[dict], spare_prompts: Sequence[str]) -> dict[str, list[str]]:
    """Sentences of the kind each real speaker says, for the TTS spoofs claiming them:
    ``allison``: Asterisk prompts not used as real speech (``spare_prompts``); other speakers:
    their own transcripts (``cards_speaker`` also gets card phrases, see :func:`spoof_sentence`)."""
    pool: dict[str, list[str]] = {}
    for u in real:
        pool.setdefault(u["speaker"], []).append(u["text"])
    if spare_prompts:
        pool["allison"] = sorted(spare_prompts)
    return {k: sorted(set(v)) for k, v in pool.items()}


def spoof_sentence(speaker: str, pool: Mapping[str, list[str]], rng: np.random.Generator) -> str:
    if speaker == "cards_speaker":
        return card_phrase(rng)
    cands = pool[speaker]
    return cands[int(rng.integers(len(cands)))]


# ----------------------------------------------------------------------------- synthesis
def espeak(text: str, voice: str, speed: int) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise DemoSourceError("espeak-ng not found: apt install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = run_espeak(text, voice, speed, Path(tmp) / "tts.wav")
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

    used = {u["text"] for u in real if u["speaker"] == "allison"}
    prompts = asterisk_prompts()
    spare = [prompts[n] for n in asterisk_candidates(prompts, float(p["min_seconds"]), float(p["max_seconds"]))
             if prompts[n] not in used]
    pool = sentence_pool(real, spare)
    n_tts = int(p["tts"])
    claimed = [speakers[i % len(speakers)] for i in range(n_tts)]
    turn = {"seen": 0, "unseen": 0}
    for spk in speakers:
        idx = [i for i, c in enumerate(claimed) if c == spk]
        for i, split in zip(idx, stratified_splits(len(idx), fr, rng)):
            kind = attacks_for(split)
            voice, variant, speed = TTS_ATTACKS[kind][turn[kind] % len(TTS_ATTACKS[kind])]
            turn[kind] += 1
            text = spoof_sentence(spk, pool, rng)
            x = espeak(text, f"{voice}+{variant}", speed)
            method = tts_method(voice, variant)
            rel = f"fake/{method}/{spk}/tts_{i:03d}.wav"
            write_wav(tmp / rel, normalise_level(x))
            rows.append({"path": rel, "label": "fake", "method": method, "identity": spk,
                         "source_id": "", "split": split, "text": text})

    n_vc = int(p["vc"])
    order = rng.permutation(len(real))
    turn = {"seen": 0, "unseen": 0}
    for j in range(n_vc):
        src = real[int(order[j % len(real)])]
        targets = [s for s in speakers if s != src["speaker"]]
        target = targets[int(rng.integers(len(targets)))]
        kind = attacks_for(src["split"])
        setting, (lo, hi), expo = VC_ATTACKS[kind][turn[kind] % len(VC_ATTACKS[kind])]
        turn[kind] += 1
        semitones = float(rng.choice([-1.0, 1.0]) * rng.uniform(lo, hi))
        formant = float(2.0 ** (expo * semitones / 12.0))
        x = voice_convert(src["wave"], semitones, formant)
        method = f"vc_pitch_warp_{setting}"
        rel = f"fake/{method}/{target}/vc_{j:03d}_from_{src['speaker']}_{src['name']}.wav"
        write_wav(tmp / rel, normalise_level(x))
        rows.append({"path": rel, "label": "fake", "method": method, "identity": target,
                     "source_id": src["speaker"], "split": src["split"], "text": src["text"]})

    table = pd.DataFrame(rows, columns=["path", "label", "method", "identity", "source_id",
                                        "split", "text"]).sort_values("path", kind="stable")
    write_csv_atomic(tmp / "labels.csv", table.reset_index(drop=True))
    (tmp / "SPEAKERS.txt").write_text("".join(f"{k}: {v}\n" for k, v in SPEAKER_INFO.items()))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return table.reset_index(drop=True)
