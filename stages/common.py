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


def setup() -> None:
    """Logging and thread settings shared by every stage."""
    logging.basicConfig(level=os.environ.get("DFDETECT_LOGLEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
