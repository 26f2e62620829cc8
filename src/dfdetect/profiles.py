"""Params profiles: ``params.yaml`` is the demo profile; ``full`` is the full-size one for real data.

``params.yaml`` keeps `make demo` fast on 2 cores: its models sections cap training (3 epochs,
256 frames, 96-128 px) and mark those values ``DEMO PROFILE``. The real recipe is each detector's
code defaults (README "Training recipes"). Pointing the pipeline at FaceForensics++ with the demo
profile would train every detector for 3 epochs on 256 frames, so this module gives the
full-size profile as ``dvc exp run -S`` flags, to be put in front of a dataset's own flags:

    dvc exp run $(dfdetect profile full) -S ingest.layout=ffpp -S ingest.root=/data/ffpp

(``dfdetect profile`` is the console script's front for :func:`main`; ``python -m
dfdetect.profiles full`` is the same.)

The flags change nothing in ``params.yaml`` itself (an experiment records them). ``full`` is:

- every key of a video detector's ``models`` section set to the detector's code default where
  they differ (image size, epochs, early stopping, frame caps, batch size, learning rate,
  augmentation probabilities), except the machine's choices in :data:`KEEP` (threads, device,
  weights source);
- the papers' settings no code default holds (:data:`FULL`): 32 frames per video, MST++ cubes
  at 128 px (HyperFake's paper-like size), the two-branch network's paper profile (224 px,
  sequences of 10, reals oversampled 2x, trained until the plateau rule stops it).

Only keys present in ``params.yaml`` are printed (an absent key already takes its default).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

import yaml

from .config import _lookup

# keys of a models section that are the machine's or the user's choice, not the profile's
KEEP = frozenset({"num_threads", "nthread", "threads", "device", "num_workers", "hub", "pretrained",
                  "standin"})

# the full-size settings that are no detector's code default (dotted key -> value)
FULL: dict[str, Any] = {
    "sample_frames.num_frames": 32,
    "hyperspectral.size": 128,
    "models.two_branch.image_size": 224,
    "models.two_branch.seq_len": 10,
    "models.two_branch.real_oversample": 2,
    "models.two_branch.epochs": 1000,
    "models.two_branch.batch_size": 8,
}

PROFILES = ("full",)


def code_default_overrides(section: Mapping, defaults: Mapping, prefix: str = "") -> dict[str, Any]:
    """Dotted key (under ``prefix``) -> code default, for every key of ``section`` (recursing into
    nested sections) whose value differs from ``defaults``; :data:`KEEP` keys and keys the
    defaults lack are left out."""
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key in KEEP or key not in defaults:
            continue
        default = defaults[key]
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and isinstance(default, Mapping):
            out.update(code_default_overrides(value, default, name))
        elif value != default:
            out[name] = default
    return out


def full_overrides(params: Mapping) -> dict[str, Any]:
    """Dotted key -> value that turn ``params`` (a parsed params.yaml) into the full profile."""
    from .detectors.base import registry  # noqa: PLC0415

    reg = registry()
    out: dict[str, Any] = {}
    for name, section in (params.get("models") or {}).items():
        cls = reg.get(name)
        if cls is not None and isinstance(section, Mapping):
            out.update(code_default_overrides(section, dict(cls.defaults or {}), f"models.{name}"))
    for dotted, value in FULL.items():
        parts = dotted.split(".")
        if parts[0] == "models" and _lookup(params, ".".join(parts[:2])) is None:
            continue                       # a detector this params.yaml does not train
        out[dotted] = value
    return {k: v for k, v in out.items() if _lookup(params, k) != v}


def apply(params: dict, overrides: Mapping[str, Any]) -> dict:
    """``params`` with each dotted key set (as ``dvc exp run -S`` does); changes it in place.
    ValueError when a key's parent is a value, not a section."""
    for dotted, value in overrides.items():
        node = params
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{dotted}: {part} is not a section")
        node[last] = value
    return params


def dvc_flags(overrides: Mapping[str, Any]) -> list[str]:
    """``-S key=value`` pairs (values as compact JSON, which YAML reads back: no spaces, so the
    flags survive ``$(...)`` word splitting)."""
    out = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        out += ["-S", f"{key}={text}"]
    return out


def print_flags(profile: str, params_path: str | Path = "params.yaml") -> int:
    """Print ``profile``'s flags (one of :data:`PROFILES`, which the parser checks) for the params
    file; exit status 0, or 2 without the file."""
    path = Path(params_path)
    if not path.is_file():
        print(f"dfdetect profile: {path}: no such params file", file=sys.stderr)
        return 2
    params = yaml.safe_load(path.read_text()) or {}
    print(" ".join(dvc_flags(full_overrides(params))))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dfdetect.profiles ARGS`` = ``dfdetect profile ARGS`` (the console script's parser)."""
    from .cli import main as cli_main  # noqa: PLC0415

    return cli_main(["profile", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
