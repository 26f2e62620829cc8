"""Params sections and stage command lines.

Every stage reads one section of ``params.yaml`` (plus the shared ``seed`` and ``sharding``
sections) and exposes every key of it as a command-line flag, so that

    python stages/ingest.py --layout ffpp --root /data/ffpp

overrides ``ingest.layout`` and ``ingest.root``. Nested keys become dotted flags
(``--init.weights imagenet``). Values given on the command line are parsed as YAML scalars,
so ``--epochs 3``, ``--use_gpu false`` and ``--sizes [128,224]`` keep their types.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        return {}
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def section(params: dict, name: str) -> dict:
    """A deep copy of one section (``a.b`` reaches into nested sections)."""
    node: Any = params
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return copy.deepcopy(node) if isinstance(node, dict) else {}


class StageCLI:
    """Argument parser whose flags are generated from a params section.

    ``extra`` arguments (paths of the DAG, shard index, ...) are added by the stage with
    :meth:`add` before :meth:`parse`. The parsed result is ``(cfg, args)`` where ``cfg`` is the
    section with overrides applied (nested dict) and ``args`` the argparse namespace of the
    extra arguments.
    """

    def __init__(self, name: str, description: str, sections: Iterable[str] | None = None,
                 params_path: str | Path = DEFAULT_PARAMS):
        self.name = name
        self.sections = list(sections) if sections is not None else [name]
        self.parser = argparse.ArgumentParser(
            prog=f"stages/{name}.py", description=description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        self.parser.add_argument("--params", default=str(params_path),
                                 help="params file whose sections give the defaults")
        self._params_path = Path(params_path)
        self._flag_keys: list[str] = []

    def add(self, *args, **kwargs) -> "StageCLI":
        self.parser.add_argument(*args, **kwargs)
        return self

    def parse(self, argv: list[str] | None = None) -> tuple[dict, argparse.Namespace]:
        # params path may be overridden before the defaults are known
        probe = argparse.ArgumentParser(add_help=False)
        probe.add_argument("--params", default=str(self._params_path))
        known, _ = probe.parse_known_args(argv)
        params = load_params(known.params)
        merged: dict = {}
        for sec in self.sections:
            merged.update(section(params, sec))
        for key in ("seed",):
            if key in params and key not in merged:
                merged[key] = params[key]
        if "sharding" in params and "sharding" not in merged:
            merged["sharding"] = copy.deepcopy(params["sharding"])
        flat = flatten(merged)
        group = self.parser.add_argument_group(
            f"params ({', '.join(self.sections)} section of {known.params}; YAML values)")
        for key, value in flat.items():
            dest = "param__" + key.replace(".", "__")
            group.add_argument(f"--{key}", dest=dest, default=value, type=_yaml_value,
                               metavar=type(value).__name__.upper() if value is not None else "VALUE",
                               help=f"default: {value!r}")
            self._flag_keys.append(key)
        args = self.parser.parse_args(argv)
        updated = {}
        for key in self._flag_keys:
            updated[key] = getattr(args, "param__" + key.replace(".", "__"))
        for key in self._flag_keys:
            delattr(args, "param__" + key.replace(".", "__"))
        return unflatten(updated), args


def num_shards(cfg_or_params: dict) -> int:
    """Number of shards, validated against the list that dvc.yaml's ``foreach`` iterates."""
    sharding = cfg_or_params.get("sharding", cfg_or_params)
    n = int(sharding.get("num_shards", 1))
    listed = sharding.get("shards")
    if listed is not None and list(listed) != list(range(n)):
        raise ValueError(
            f"sharding.shards must be [0..{n - 1}] to match sharding.num_shards={n}, got {listed}")
    if n < 1:
        raise ValueError("sharding.num_shards must be >= 1")
    return n
