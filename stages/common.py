"""Where the DAG keeps its files: the only module (with dvc.yaml) that knows these paths.

Every stage script imports from here; the library takes paths as arguments.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ---- CPU dispatch pin (determinism) -------------------------------------------------------
# Before any stage imports numpy/cv2/torch: pin their kernels to one x86-64 level (AVX2+FMA3) so
# cached outputs are byte-identical across CPUs (dfdetect.determinism; README "Determinism").
# DFDETECT_PIN_CPU=0 runs with each library's native dispatch instead.
from dfdetect.determinism import pin_cpu  # noqa: E402

CPU_PINS = pin_cpu()
# ---- end of the CPU dispatch pin -----------------------------------------------------------

MANIFEST = Path("data/manifest.csv")
MANIFEST_SHARDS = Path("data/manifest")
AUDIO_MANIFEST = Path("data/audio_manifest.csv")
AUDIO_MANIFEST_SHARDS = Path("data/audio_manifest")
FRAMES = Path("data/frames")
FACES = Path("data/faces")
SAAB = Path("data/saab")
HSI = Path("data/hsi")
FACE_EMB = Path("data/face_emb")   # face_embeddings (metric_learning.txt)
AUDIO = Path("data/audio")
TRANSCRIPTS = Path("data/transcripts.jsonl")
SCORES = Path("data/scores")
FAILURES = Path("data/failures")
MODELS = Path("models")
METRICS = Path("metrics")

# cached inputs a detector may declare (Detector.inputs) -> where the DAG keeps them
SOURCES = {
    "manifest": MANIFEST,
    "frames": FRAMES,
    "faces": FACES,
    "saab": SAAB,
    "hsi": HSI,
    "face_emb": FACE_EMB,
    "audio": AUDIO,
    "transcripts": TRANSCRIPTS,
    "mst": MODELS / "mst",
    "saab_model": MODELS / "saab",
    "audio_manifest": AUDIO_MANIFEST,
    "dada_text": MODELS / "dada_text",
    "dada_audio": MODELS / "dada_audio",
}

# which manifest a detector is trained and evaluated on (Detector.manifest)
MANIFESTS = {"video": MANIFEST, "audio": AUDIO_MANIFEST}

# test sets (params `test_sets`): each has its own tree under data/sets/<name>/, the same
# layout as the training DAG's; its scores and metrics sit beside the DAG's own
SETS = Path("data/sets")
SET_SCORES = Path("data/set_scores")
SET_METRICS = METRICS / "sets"


def probe_flag(argv: list[str] | None, flag: str) -> str | None:
    """The value of ``flag`` on the command line, read before the stage's parser is built
    (a flag that chooses which params sections the stage reads)."""
    import argparse  # noqa: PLC0415

    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument(flag, default=None)
    known, _ = probe.parse_known_args(argv)
    return getattr(known, flag.lstrip("-").replace("-", "_"))


def set_paths(name: str) -> dict[str, Path]:
    """Where the DAG keeps test set ``name``'s manifest, caches, scores and metrics."""
    root = SETS / name
    return {"manifest": root / "manifest.csv", "manifest_shards": root / "manifest",
            "frames": root / "frames", "faces": root / "faces", "saab": root / "saab",
            "hsi": root / "hsi", "face_emb": root / "face_emb", "failures": FAILURES / "sets" / name,
            "scores": SET_SCORES / name, "metrics": SET_METRICS / name}


# shared params of the per-item stages: seed, sharding and the failure-ratio guard
PER_ITEM = ("seed", "sharding", "max_failure_ratio")


def pop_executor(cfg: dict) -> tuple[dict, object]:
    """Take the executor section's keys and the failure-ratio guard out of a per-video stage's
    params: ``({executor, workers, address}, max_failure_ratio)``; what is left is the stage's own."""
    run = {"executor": cfg.pop("backend", "process"), "workers": cfg.pop("workers", None),
           "address": cfg.pop("address", None) or None}
    return run, cfg.pop("max_failure_ratio", None)


def failure_guard(prog: str, failures, max_ratio, table) -> int:
    """Exit code of a per-item stage: 1 (after printing the summary) when more than
    ``max_failure_ratio`` of its items failed, so DVC does not cache a hollow output; else 0.
    The failures table has been written by then."""
    from dfdetect.failures import ratio_error  # noqa: PLC0415

    message = ratio_error(failures, max_ratio, where=str(table))
    if message:
        print(f"{prog}: {message}", file=sys.stderr)
        return 1
    return 0


def setup() -> None:
    """Logging, thread settings and signal handling shared by every stage.

    SIGTERM is handled like Ctrl-C, so a terminated stage stops its workers and removes its
    temporary outputs (:func:`dfdetect.parallel.sigterm_as_interrupt`).
    """
    from dfdetect.parallel import sigterm_as_interrupt  # noqa: PLC0415

    sigterm_as_interrupt()
    logging.basicConfig(level=os.environ.get("DFDETECT_LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
