"""Build the embedded demo dataset: real face videos and deepfakes made from them.

Real faces come from installed packages (scikit-image's astronaut, matplotlib's Grace Hopper,
scikit-image's LFW subset), animated with seeded head motion; fakes are landmark-driven face
swaps (Delaunay warp, mean colour shift, feathered blending), expression reenactment
(landmark warping driven by another person's speech) and optionally a decoder-style
re-rendering. H.264 at each quality (c23 = CRF 23, c40 = CRF 40) with an espeak-ng speech track.
With --source DIR the same kind of dataset is built from a folder of real videos/photos; the
default source, data/demo_source/, holds only a README, and a folder with no photo or video
means the packaged faces (the log line and metadata.json's params.source say which).
Writes OUT/{real,fake}/..., OUT/labels.csv (with identity-grouped splits), OUT/metadata.json,
OUT/README.md, atomically; bad sources go to the failures table. Example:

    python stages/make_demo.py --out data/demo --identities 4 --seconds 1.0
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.data.demo.build import build, describe_source  # noqa: E402
from dfdetect.failures import Failures  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    extra = common.probe_flag(argv, "--section")
    cli = StageCLI("make_demo", __doc__, sections=["make_demo", *([extra] if extra else []), "executor"])
    cli.add("--section", default=None, help="a params section whose keys override make_demo's "
            "(e.g. make_demo_unseen: the demo's test set of other people)")
    cli.add("--out", default="data/demo", help="output folder (replaced atomically)")
    cli.add("--failures", default=str(common.FAILURES / "make_demo.csv"), help="failures table CSV")
    cfg, args = cli.parse(argv)
    failures = Failures("make_demo")
    print(f"make_demo: real faces from {describe_source(cfg.get('source'))}", file=sys.stderr)
    meta = build(args.out, cfg, int(cfg.get("seed", 0)), failures,
                 executor=cfg.get("backend", "process"), workers=cfg.get("workers"))
    failures.write(args.failures)
    print(f"make_demo: {meta['videos']} videos in {args.out} "
          f"({', '.join(f'{k}: {len(v)} identities' for k, v in meta['splits'].items())}); "
          f"{len(failures)} failure(s) -> {args.failures}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
