"""Transcription on CPU: real-time factor and WER of both engines, and the cost of a cached rerun.

Goals (issue 5, section 7): report the real-time factor (compute seconds / audio seconds) of
Whisper transcription on CPU, and what a rerun costs once the transcripts are cached by DVC.

What it does:
  1. an audio store (data/audio format) of real speech with reference transcripts from Debian
     packages: pocketsphinx-testdata's LibriVox (5) and cards (5) utterances and N Asterisk
     prompts of Allison Smith (8 kHz telephone speech, resampled);
  2. transcribes it with openai-whisper and faster-whisper (offline tiny.en, temperature 0,
     greedy), side by side in one run: RTF overall and per file (median), model load time, WER
     (word edits / reference words, lower-cased, punctuation dropped, integers spelled out);
  3. in a temporary DVC project holding only the transcribe stage (the project's own stage
     script and params section) plus an unrelated fusion params section (`models.dada_late`): times the first
     `dvc repro`, a no-op `dvc repro`, and a `dvc repro` after changing only `models.dada_late.alpha`
     (must not rerun the stage), and prints the ratio.

Run: `.venv/bin/python benchmarks/transcribe.py [--allison 10] [--threads 2]`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from dfdetect.audio.transcribe import wer  # noqa: E402
from dfdetect.audio.whisper_engine import load_engine  # noqa: E402
from dfdetect.data.demo import speech  # noqa: E402
from dfdetect.store import ShardWriter  # noqa: E402


def references(n_allison: int) -> list[tuple[str, np.ndarray, str]]:
    rng = np.random.default_rng(0)
    utts = speech.real_utterances(n_allison, 1.5, 6.0, rng)
    return [(f"{u['speaker']}/{u['name']}", u["wave"], u["text"]) for u in utts]


def engine_run(name: str, items, threads: int) -> dict:
    t0 = time.perf_counter()
    eng = load_engine(name, "tiny.en", threads=threads)
    load = time.perf_counter() - t0
    eng.transcribe(items[0][1])                      # warm-up (first call allocates)
    edits = words = 0
    audio = compute = 0.0
    rtfs, by_speaker = [], {}
    for item_id, wave, ref in items:
        r = eng.transcribe(wave)
        e, n = wer(ref, r["text"])
        edits, words = edits + e, words + n
        spk = item_id.split("/")[0]
        se, sn = by_speaker.get(spk, (0, 0))
        by_speaker[spk] = (se + e, sn + n)
        audio += r["duration"]
        compute += r["seconds"]
        rtfs.append(r["rtf"])
    return {"engine": name, "load_s": load, "audio_s": audio, "compute_s": compute,
            "rtf": compute / audio, "rtf_median": float(np.median(rtfs)), "wer": edits / words,
            "wer_by_speaker": {k: e / n for k, (e, n) in by_speaker.items()}}


def run(cmd, cwd, env):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0, p.stdout + p.stderr


def dvc_cache_cost(items, threads: int) -> dict:
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(REPO / "src")}
    tmp = Path(tempfile.mkdtemp(prefix="bench_transcribe_"))
    try:
        with ShardWriter(tmp / "data" / "audio" / "shard-0.h5", stage="extract_audio") as w:
            for item_id, wave, _ref in items:
                w.add_video(item_id, [0], attrs={"sample_rate": 16000}, wave=wave[None, :])
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        section = dict(params["transcribe"], threads=threads)
        (tmp / "params.yaml").write_text(yaml.safe_dump({"transcribe": section,
                                                         "models": {"dada_late": {"alpha": 0.5}}}))
        shutil.copytree(REPO / "stages", tmp / "stages")
        stage = {"cmd": "python stages/transcribe.py", "deps": ["stages/transcribe.py", "data/audio"],
                 "params": ["transcribe"],
                 "outs": ["data/transcripts.jsonl", "data/failures/transcribe.csv",
                          {"metrics/transcribe_rtf.csv": {"cache": False}}],
                 "metrics": [{"metrics/transcribe.json": {"cache": False}}]}
        (tmp / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"transcribe": stage}}))
        run([dvc, "init", "--no-scm", "-q"], tmp, env)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        first, _ = run([dvc, "repro"], tmp, env)
        noop, out_noop = run([dvc, "repro"], tmp, env)
        p = yaml.safe_load((tmp / "params.yaml").read_text())
        p["models"]["dada_late"]["alpha"] = 0.8
        (tmp / "params.yaml").write_text(yaml.safe_dump(p))
        fusion, out_fusion = run([dvc, "repro"], tmp, env)
        status, out_status = run([dvc, "status"], tmp, env)
        return {"first_s": first, "noop_s": noop, "after_fusion_change_s": fusion,
                "status_s": status,
                "noop_skipped": "didn't change, skipping" in out_noop or "up to date" in out_noop,
                "fusion_skipped": "didn't change, skipping" in out_fusion or "up to date" in out_fusion,
                "status": out_status.strip().splitlines()[-1] if out_status.strip() else ""}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--allison", type=int, default=10, help="Asterisk prompts added to the set")
    ap.add_argument("--threads", type=int, default=2, help="torch / ctranslate2 threads")
    ap.add_argument("--skip-dvc", action="store_true", help="skip the cached-rerun measurement")
    args = ap.parse_args()
    items = references(args.allison)
    audio_s = sum(len(w) for _, w, _ in items) / 16000
    print(f"{len(items)} real utterances, {audio_s:.1f} s of audio, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows = [engine_run(name, items, args.threads) for name in ("openai-whisper", "faster-whisper")]
    print(f"\n{'engine':16s} {'load s':>7s} {'RTF':>6s} {'RTF med':>8s} {'WER':>6s}  WER by speaker")
    for r in rows:
        spk = ", ".join(f"{k} {v:.1%}" for k, v in sorted(r["wer_by_speaker"].items()))
        print(f"{r['engine']:16s} {r['load_s']:7.2f} {r['rtf']:6.3f} {r['rtf_median']:8.3f} "
              f"{r['wer']:6.1%}  {spk}")
    print(f"openai-whisper / faster-whisper compute time: {rows[0]['compute_s'] / rows[1]['compute_s']:.2f}x")
    result = {"engines": rows}
    if not args.skip_dvc:
        c = dvc_cache_cost(items, args.threads)
        result["dvc"] = c
        print(f"\nDVC: first `dvc repro` {c['first_s']:.1f} s; no-op rerun {c['noop_s']:.1f} s "
              f"(skipped: {c['noop_skipped']}); after changing only models.dada_late.alpha "
              f"{c['after_fusion_change_s']:.1f} s (skipped: {c['fusion_skipped']}); "
              f"`dvc status` {c['status_s']:.1f} s: {c['status']!r}")
        print(f"cached rerun costs {c['noop_s'] / c['first_s']:.1%} of the first run "
              f"({c['first_s'] / c['noop_s']:.1f}x faster)")
    out = os.environ.get("BENCH_JSON")
    if out:
        Path(out).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
