"""Train DADA's audio branch (dada.txt §3.2) on the audio manifest's train utterances.

Reads data/audio_manifest.csv and the audio store data/audio (field ``wave``, 16 kHz), computes
the frozen backbone's per-layer features once per utterance (offline default: the Whisper
tiny.en encoder's hidden states; ``--backbone wav2vec2`` when online; ``lfcc``/``logmel`` front
ends train their encoder from scratch), then trains multi-layer attentive pooling + bottleneck
with the three-stage triplet margin schedule (lambda_0 -> AdaTriplet -> lambda_f; cosine
distance) and a logistic head giving P(fake). Writes models/dada_audio/ (model.safetensors +
config.json) and metrics/dada_audio.json (ABX, AUC, EER, F1 per split; margins; timings);
utterances whose waves hold NaN/inf are left out and listed in data/failures/train_audio_model.csv.
Example:

    python stages/train_audio_model.py --fixed_epochs 2 --ada_epochs 2 --final_epochs 2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.store import atomic_dir, write_json_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    common.setup()
    cli = StageCLI("train_audio_model", __doc__, sections=["audio_model"])
    cli.add("--manifest", default=str(common.AUDIO_MANIFEST), help="audio manifest CSV")
    cli.add("--audio", default=str(common.AUDIO), help="audio store folder (shard-*.h5)")
    cli.add("--out", default=str(common.MODELS / "dada_audio"), help="model directory")
    cli.add("--metrics", default=str(common.METRICS / "dada_audio.json"), help="metrics JSON")
    cfg, args = cli.parse(argv)
    seed = int(cfg.pop("seed", 0))
    cfg.pop("sharding", None)

    from dfdetect.audio.model import train_audio_model  # noqa: PLC0415
    from dfdetect.metrics import json_safe  # noqa: PLC0415  (after validation: sklearn is slow to import)
    from dfdetect.data.manifest import read_manifest  # noqa: PLC0415
    from dfdetect.detectors.base import DetectorData  # noqa: PLC0415

    data = DetectorData(read_manifest(args.manifest), sources={"audio": Path(args.audio)}, seed=seed)
    fail_path = common.FAILURES / "train_audio_model.csv"
    try:
        model, metrics = train_audio_model(data, cfg, seed=seed)
    finally:  # utterances whose waves hold NaN/inf, left out
        data.checks.failures("train_audio_model").write(fail_path)
    out = Path(args.out)
    with atomic_dir(out) as tmp:
        model.save(tmp)
    metrics = json_safe(metrics)
    write_json_atomic(args.metrics, metrics)
    brief = {s: {k: metrics[s].get(k) for k in ("n", "abx", "auc", "eer", "f1")}
             for s in ("train", "val", "test") if s in metrics}
    print(json.dumps({"out": str(out), "backbone": metrics["backbone"], **brief}), file=sys.stderr)
    return metrics


if __name__ == "__main__":
    main()
