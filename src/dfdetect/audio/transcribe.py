"""Transcribe every item of the audio store with Whisper; deterministic JSONL + timing metrics.

``transcribe_store(audio_dir, ...)`` reads the ``wave`` field of every item of
``data/audio/shard-*.h5`` (16 kHz mono), transcribes it with one engine
(:mod:`dfdetect.audio.whisper_engine`), and writes

- ``data/transcripts.jsonl``: one JSON object per line, sorted by id: ``{"id", "text",
  "language", "segments": [{"start", "end", "text", "avg_logprob"}], "avg_logprob",
  "duration", "engine", "model"}`` (no timings: same audio + params give the same bytes);
- ``metrics/transcribe.json``: counts, audio seconds, compute seconds, real-time factor
  (overall = compute / audio seconds; per-file mean, median, p90) and the model load time;
- a per-file timing table (id, duration, seconds, rtf) and the failures table.

An item whose transcription raises is a failure row (the rest go on). Identical waves (same
samples, byte for byte) are transcribed once: a dataset's fakes often carry their source's audio
track (face swaps, each compression level of one clip), and the engine is a pure function of the
wave (greedy, temperature 0, fixed threads), so the reused record is the one a new run would give.
The timing table and the RTF figures hold the items actually run; ``reused`` counts the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .. import config as _cfg
from ..failures import Failures
from ..store import Store, write_csv_atomic, write_json_atomic, write_text_atomic
from .whisper_engine import ENGINES, check_model, english_only, load_engine

log = logging.getLogger("dfdetect")
STAGE = "transcribe"


def _check_section(value: Mapping, where: str) -> None:
    """The model must exist for the engine, and an English-only model needs language en."""
    engine = value.get("engine", "openai-whisper")
    model = value.get("model", "tiny.en")
    check_model(model, f"{where}.model", engine)
    language = value.get("language", "en")
    if language not in (None, "", "en") and english_only(model):
        raise _cfg.ParamError(f"{where}.language", language,
                              f"must be en or null: {where}.model {model!r} is English-only")


# params schema of the ``transcribe`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "engine": _cfg.Choice(*ENGINES),
    "model": _cfg.Str(),
    "language": _cfg.Str(nullable=True),
    "temperature": _cfg.Float(choices=(0,)),   # only 0: deterministic, no fallback
    "beam_size": _cfg.Int(ge=1),
    "device": _cfg.DEVICE,
    "threads": _cfg.Int(ge=0),
    # which items of the audio store: "audio" = the audio dataset's utterances (what DADA reads),
    # "video" = the audio tracks of the video dataset (no video detector reads them today)
    "sources": _cfg.List(_cfg.Choice("audio", "video"), min_len=1, unique=True),
}, check=_check_section)
SOURCES = ("audio", "video")
ENGINE_KEYS = ("engine", "model", "language", "beam_size", "device", "threads", "temperature")


def _clean(x):
    """JSON-safe floats (NaN -> None) rounded to 6 decimals for stable bytes."""
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def record(item_id: str, result: Mapping, engine: str, model: str) -> dict:
    """The JSONL record of one transcription (the contract's keys, in order)."""
    return _clean({"id": item_id, "text": result["text"], "language": result["language"],
                   "segments": list(result["segments"]), "avg_logprob": result["avg_logprob"],
                   "duration": float(result["duration"]), "engine": engine, "model": model})


def read_transcripts(path: str | Path) -> pd.DataFrame:
    """The JSONL as a DataFrame (one row per id)."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    return pd.DataFrame(rows, columns=["id", "text", "language", "segments", "avg_logprob",
                                       "duration", "engine", "model"])


def transcribe_store(audio_dir: str | Path, out_jsonl: str | Path, metrics_path: str | Path,
                     failures_path: str | Path, params: Mapping, timings_path: str | Path | None = None,
                     progress: bool = True, failures: Failures | None = None) -> dict:
    """Transcribe every item of the audio store; returns the metrics dict. ``failures``
    (optional) receives the failures table's rows (and ``items``)."""
    params = dict(params)
    store = Store(audio_dir)
    wanted = set(params.get("sources") or SOURCES)
    ids = sorted(v for v in store.videos() if store.shard_for(v).video_attrs(v).get("source", "audio") in wanted)
    failures = Failures(STAGE) if failures is None else failures
    failures.items = len(ids)
    t0 = time.perf_counter()
    engine = load_engine(**{k: params[k] for k in ENGINE_KEYS if k in params})
    load_s = time.perf_counter() - t0
    lines, timing = [], []
    done: dict[str, dict] = {}   # sha256 of the wave's bytes -> the engine's result
    reused = 0
    try:
        from tqdm import tqdm  # noqa: PLC0415

        it = tqdm(ids, desc=STAGE, unit="item", disable=not progress or not ids, mininterval=1.0)
    except ImportError:  # pragma: no cover
        it = ids
    for item_id in it:
        try:
            wave = np.ascontiguousarray(store.read(item_id, "wave")[0])
            key = hashlib.sha256(f"{wave.dtype.str}{wave.shape}".encode() + wave.tobytes()).hexdigest()
            result = done.get(key)
            if result is None:
                result = done[key] = engine.transcribe(wave)
                timing.append({"id": item_id, "duration": result["duration"],
                               "seconds": result["seconds"], "rtf": result["rtf"]})
            else:
                reused += 1
        except Exception as err:  # noqa: BLE001 - recorded, never fatal
            failures.add_error(item_id, err, path=str(audio_dir))
            continue
        lines.append(json.dumps(record(item_id, result, engine.name, engine.model_label),
                                ensure_ascii=True))
    store.close()
    write_text_atomic(out_jsonl, "".join(line + "\n" for line in lines))
    failures.write(failures_path)
    tdf = pd.DataFrame(timing, columns=["id", "duration", "seconds", "rtf"])
    audio_s = float(tdf["duration"].sum())
    compute_s = float(tdf["seconds"].sum())
    metrics = {
        "engine": engine.name, "model": engine.model_label, "beam_size": engine.beam_size,
        "device": engine.device, "sources": sorted(wanted), "items": len(ids), "transcribed": len(lines),
        "engine_runs": len(tdf), "reused": reused,
        "failures": len(failures), "empty_text": sum(1 for line in lines if not json.loads(line)["text"]),
        "audio_seconds": round(audio_s, 3), "compute_seconds": round(compute_s, 3),
        "model_load_seconds": round(load_s, 3),
        "rtf": round(compute_s / audio_s, 4) if audio_s > 0 else None,
        "rtf_mean": round(float(tdf["rtf"].mean()), 4) if len(tdf) else None,
        "rtf_median": round(float(tdf["rtf"].median()), 4) if len(tdf) else None,
        "rtf_p90": round(float(np.percentile(tdf["rtf"], 90)), 4) if len(tdf) else None,
    }
    write_json_atomic(metrics_path, metrics)
    if timings_path is not None:
        write_csv_atomic(timings_path, tdf.round(4))
    log.info("transcribed %d/%d items (%d identical waves reused), RTF %.3f (%.1f s audio run)",
             len(lines), len(ids), reused, metrics["rtf"] or float("nan"), audio_s)
    return metrics


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell_number(n: int) -> list[str]:
    """English words of 0 <= n < 1,000,000 ("10" -> ["ten"]), as references write numbers."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (spell_number(n % 100) if n % 100 else [])
    return spell_number(n // 1000) + ["thousand"] + (spell_number(n % 1000) if n % 1000 else [])


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation, integers spelled out, for WER."""
    import re  # noqa: PLC0415

    words = []
    for w in re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split():
        words.extend(spell_number(int(w)) if w.isdigit() and int(w) < 1_000_000 else [w])
    return words


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(word edits, reference words)``: Levenshtein distance over normalised words."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)
