"""Build the embedded audio demo: real speech of named speakers, TTS and voice-conversion spoofs.

Real (bona fide) speech and its transcripts come from Debian packages: Allison Smith's Asterisk
prompts (asterisk-core-sounds-en-wav), the LibriVox reader of Sense and Sensibility and the
cards speaker (pocketsphinx-testdata). Spoofs claim one of those speakers: espeak-ng saying a
sentence of the kind the claimed speaker says (tts_espeak_<voice>), or another speaker's real
utterance converted by pitch shift (sox) and spectral-envelope warping (vc_pitch_warp_<setting>);
the test spoofs use only attacks (voices, VC settings) that train and val do not. Writes OUT/{real,fake}/...wav
(16 kHz mono) and OUT/labels.csv (path,label,method,identity,source_id,split,text: the generic
audio layout), deterministic from the seed. Example:

    python stages/make_demo_audio.py --out data/demo_audio --tts 8 --vc 8
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.data.demo.speech import build_demo_audio  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("make_demo_audio", __doc__, sections=["make_demo_audio"])
    cli.add("--out", default="data/demo_audio", help="output folder (replaced)")
    cfg, args = cli.parse(argv)
    table = build_demo_audio(args.out, seed=int(cfg.get("seed", 0)), params=cfg)
    counts = table.groupby(["label", "method"]).size().to_dict()
    print(f"make_demo_audio: {len(table)} utterances of {table['identity'].nunique()} claimed "
          f"speakers in {args.out}: {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
