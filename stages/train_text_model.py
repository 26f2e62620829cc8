"""Train DADA's text branch: authorship attribution with a triplet loss (dada.txt §3.1).

Loads the attributed-text corpus (params text_model.corpus: Debian's fortune quotations by
default, or a Wikiquotes-style JSONL file with ``--corpus.source jsonl --corpus.path FILE``),
keeps authors with at least ``corpus.min_quotes`` texts, splits each author's texts into
train/val/test, encodes them with the pretrained encoder (offline default: the packaged
all-MiniLM-L6-v2; last three hidden states, masked mean pooling) and trains the head with the
triplet loss. Writes models/dada_text/ (model.safetensors + config.json) and
metrics/dada_text.json (ABX accuracy, nearest-centroid macro F1 and accuracy per split:
dada.txt Table 2). With ``finetune: false`` (default) the encoder is frozen: its features are
computed once per text and only the head is trained (CPU friendly). Example:

    python stages/train_text_model.py --distance sqeuclidean --margin 1.0
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
    cli = StageCLI("train_text_model", __doc__, sections=["text_model"])
    cli.add("--out", default=str(common.MODELS / "dada_text"), help="model directory")
    cli.add("--metrics", default=str(common.METRICS / "dada_text.json"), help="metrics JSON")
    cfg, args = cli.parse(argv)
    seed = int(cfg.pop("seed", 0))
    cfg.pop("sharding", None)
    corpus_cfg = cfg.pop("corpus", {}) or {}

    from dfdetect.text.model import train_text_model  # noqa: PLC0415
    from dfdetect.metrics import json_safe  # noqa: PLC0415  (after validation: sklearn is slow to import)

    model, metrics = train_text_model(corpus_cfg, cfg, seed=seed)
    out = Path(args.out)
    with atomic_dir(out) as tmp:
        model.save(tmp)
    metrics = json_safe(metrics)
    write_json_atomic(args.metrics, metrics)
    brief = {s: metrics[s] for s in ("train", "val", "test") if s in metrics}
    print(json.dumps({"out": str(out), "authors": metrics["authors"], **brief}), file=sys.stderr)
    return metrics


if __name__ == "__main__":
    main()
