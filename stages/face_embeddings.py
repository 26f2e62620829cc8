"""Frozen face-recognition embeddings of every aligned face (one shard): metric_learning.txt.

Reads data/faces/shard-N.h5 (the `face` crop and its 68 landmarks) and writes
data/face_emb/shard-N.h5: field `embedding` float32 (n, 128) with dlib's ResNet descriptor (the
offline default) or (n, 512) with FaceNet InceptionResnetV1 when `face_embeddings.facenet_weights`
names a local state dict (read weights_only; nothing is downloaded). Same (video_id, frame_index)
rows as the faces shard; a face that cannot be embedded is a row of
data/failures/face_embeddings/shard-N.csv. The embedder is frozen: only this section's params and
the faces shard rerun this stage, never the triplet or classifier params (models.triplet_*).
Parallel over videos with the executor section (dlib). Example:

    python stages/face_embeddings.py --shard 0 --num_jitters 0
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.failures import Failures  # noqa: E402
from dfdetect.store import shard_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("face_embeddings", __doc__, sections=["face_embeddings", "executor"],
                   shared=common.PER_ITEM)
    cli.add("--shard", type=int, required=True, help="shard number N (data/faces/shard-N.h5)")
    cli.add("--faces", default=str(common.FACES), help="directory of the faces shards")
    cli.add("--out", default=str(common.FACE_EMB), help="directory of the embedding shards")
    cli.add("--failures", default=None,
            help="failures CSV (default data/failures/face_embeddings/shard-N.csv)")
    cfg, args = cli.parse(argv)
    run, max_ratio = common.pop_executor(cfg)
    for key in common.PER_ITEM:
        cfg.pop(key, None)

    from dfdetect.faceid.embed import embed_shard  # noqa: PLC0415

    table = Path(args.failures) if args.failures else shard_path(common.FAILURES / "face_embeddings", args.shard, ".csv")
    failures = Failures("face_embeddings")
    try:
        counts = embed_shard(shard_path(args.faces, args.shard), shard_path(args.out, args.shard), cfg,
                             failures=failures, **run)
    except (FileNotFoundError, ValueError) as exc:   # a bad weights file / param: one line, exit 2
        print(f"{cli.parser.prog}: {exc}", file=sys.stderr)
        return 2
    failures.write(table)
    print(f"face_embeddings shard {args.shard}: {counts['faces']} faces of {counts['videos']} videos "
          f"({counts['embedder']}, {counts['dim']}-d) in {counts['seconds']:.1f} s; {len(failures)} failures",
          file=sys.stderr)
    return common.failure_guard(cli.parser.prog, failures, max_ratio, table)


if __name__ == "__main__":
    sys.exit(main())
