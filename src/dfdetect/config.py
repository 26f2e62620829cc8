"""Params sections and stage command lines.

Every stage reads one section of ``params.yaml`` (plus the shared ``seed`` and ``sharding``
sections) and exposes every key of it as a command-line flag, so that

    python stages/ingest.py --layout ffpp --root /data/ffpp

overrides ``ingest.layout`` and ``ingest.root``. Nested keys become dotted flags
(``--init.weights imagenet``). Values given on the command line are parsed as YAML scalars,
so ``--epochs 3``, ``--use_gpu false`` and ``--sizes [128,224]`` keep their types.

Every section has a declared schema (:data:`SECTIONS`; type, range, choices, nested sections):
:class:`StageCLI` checks the merged values (params.yaml + command line) before the stage does
anything and stops with exit code 2 and one line naming the key, the value and what is allowed;
an unknown key or section is an error with a did-you-mean.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import importlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NoReturn, Sequence

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


def dataclass_kwargs(cls, params: Mapping | None, none_is_empty: tuple[str, ...] = ()) -> dict:
    """The entries of a params section that are fields of the dataclass ``cls`` (other keys of
    the section are another part's); a ``None`` among ``none_is_empty`` (YAML's ``""`` read back
    through a flag) becomes ``""``."""
    from dataclasses import fields  # noqa: PLC0415

    names = {f.name for f in fields(cls)}
    kw = {k: v for k, v in (params or {}).items() if k in names}
    for key in none_is_empty:
        if kw.get(key) is None:
            kw[key] = ""
    return kw


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


# --------------------------------------------------------------------------------------------
# Declared params schemas: every params.yaml section is checked, once, before a stage works.
#
# A schema is a tree of small nodes (Int, Float, Str, Bool, List, Section, Map, AnyOf, Anything)
# declared in the library next to the code that reads the section (``PARAMS`` in
# dfdetect.video.sample for ``sample_frames``, ...). ``SECTIONS`` below says where each
# top-level section's schema lives, so that checking a section imports only its module.
# Validation never changes a value (no coercion, no defaults filled in): it accepts or raises
# ParamError naming the key, the value and what is allowed.


class ParamError(ValueError):
    """A params value (or key) that is not allowed: ``key = value: what is allowed``."""

    def __init__(self, key: str, value: Any = None, allowed: str = "", *, show_value: bool = True):
        self.key, self.value, self.allowed = key, value, allowed
        text = f"{key} = {_show(value)}: {allowed}" if show_value else f"{key}: {allowed}"
        super().__init__(text)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None or isinstance(value, (bool, dict, list, tuple)):
        return json.dumps(value, default=str)      # YAML spelling: null, true, [0, 1]
    return str(value)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name (difflib), else ``""``."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_key_error(where: str, key: str, value: Any, known: Iterable[str], what: str = "key") -> ParamError:
    known = sorted(str(k) for k in known)
    name = f"{where}.{key}" if where else str(key)
    return ParamError(name, value, f"unknown {what}{did_you_mean(key, known)} (known: {', '.join(known)})",
                      show_value=what == "key")


def check_unknown(params: Mapping, known: Iterable[str], where: str, what: str = "key") -> None:
    """Raise ParamError (with a did-you-mean) for the first key of ``params`` not in ``known``."""
    known = list(known)
    for key in params:
        if key not in known:
            raise unknown_key_error(where, key, params[key], known, what)


class Node:
    """One schema node. ``nullable``: None is allowed; ``check(value, where)``: a further
    constraint run once the value has the right shape (it raises ParamError)."""

    def __init__(self, nullable: bool = False, check: Callable[[Any, str], None] | None = None):
        self.nullable = nullable
        self.check = check

    def describe(self) -> str:  # what is allowed, after "must be"
        raise NotImplementedError

    def _fail(self, where: str, value: Any, extra: str = "") -> ParamError:
        allowed = "must be " + self.describe() + (" or null" if self.nullable else "")
        return ParamError(where, value, allowed + extra)

    def validate(self, value: Any, where: str) -> None:
        if value is None and self.nullable:
            return
        self._check(value, where)
        if self.check is not None:
            self.check(value, where)

    def _check(self, value: Any, where: str) -> None:
        raise NotImplementedError


def _bounds(ge=None, gt=None, le=None, lt=None) -> str:
    lo = f"[{ge}" if ge is not None else (f"({gt}" if gt is not None else None)
    hi = f"{le}]" if le is not None else (f"{lt})" if lt is not None else None)
    if lo and hi:
        return f" in {lo}, {hi}"
    if lo:
        return f" >= {ge}" if ge is not None else f" > {gt}"
    if hi:
        return f" <= {le}" if le is not None else f" < {lt}"
    return ""


class _Number(Node):
    kind = "a number"

    def __init__(self, ge=None, gt=None, le=None, lt=None, choices: Sequence | None = None, **kw):
        super().__init__(**kw)
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.choices = tuple(choices) if choices is not None else None

    def describe(self) -> str:
        text = self.kind + _bounds(self.ge, self.gt, self.le, self.lt)
        if self.choices is not None:
            text += " among " + ", ".join(map(str, self.choices))
        return text

    def _type_ok(self, value: Any) -> bool:
        raise NotImplementedError

    def _check(self, value: Any, where: str) -> None:
        if not self._type_ok(value):
            raise self._fail(where, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise self._fail(where, value)
        if ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt)
                or (self.choices is not None and value not in self.choices)):
            raise self._fail(where, value)


class Int(_Number):
    kind = "an integer"

    def _type_ok(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)


class Float(_Number):
    """A finite real number (YAML int or float; NaN and infinities are refused)."""

    def _type_ok(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)


class Bool(Node):
    def describe(self) -> str:
        return "true or false"

    def _check(self, value: Any, where: str) -> None:
        if not isinstance(value, bool):
            raise self._fail(where, value)


class Str(Node):
    """A string, optionally one of ``choices`` or matching the regex ``pattern``."""

    def __init__(self, choices: Sequence[str] | None = None, pattern: str | None = None, **kw):
        super().__init__(**kw)
        self.choices = tuple(choices) if choices is not None else None
        self.pattern = pattern

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) if c == "" else str(c) for c in self.choices)
        if self.pattern is not None:
            return f"a string matching {self.pattern}"
        return "a string"

    def validate(self, value: Any, where: str) -> None:
        # an empty flag value or params.yaml string reaches the stage as None (YAML reads "" as
        # null; the code treats both alike): None is accepted wherever "" is
        if value is None and self._accepts_empty():
            return
        super().validate(value, where)

    def _accepts_empty(self) -> bool:
        return ((self.choices is None or "" in self.choices)
                and (self.pattern is None or re.fullmatch(self.pattern, "") is not None))

    def _check(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise self._fail(where, value)
        if self.choices is not None and value not in self.choices:
            raise self._fail(where, value, did_you_mean(value, [c for c in self.choices if c]))
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            raise self._fail(where, value)


def Choice(*choices: str, **kw) -> Str:  # noqa: N802  (reads like a type)
    return Str(choices=choices, **kw)


_PATH_KINDS = {"dir": ("an existing folder", Path.is_dir), "file": ("an existing file", Path.is_file),
               "any": ("an existing file or folder", Path.exists)}


def path_exists(value: str, kind: str = "any") -> bool:
    """Whether ``value`` names an existing folder / file / either (``~`` expanded; a relative
    path is relative to the working directory: the repository root for a stage)."""
    return _PATH_KINDS[kind][1](Path(str(value)).expanduser())


class PathStr(Str):
    """A path that must exist when given (``""`` / null: not given, the code's default applies).

    ``kind``: ``dir`` | ``file`` | ``any``. Checked when a stage parses its params, before any
    work, so a mistyped folder ends in one line and exit 2 instead of a traceback mid-run."""

    def __init__(self, kind: str = "any", **kw):
        if kind not in _PATH_KINDS:
            raise ValueError(f"PathStr kind must be one of {sorted(_PATH_KINDS)}, got {kind!r}")
        super().__init__(**kw)
        self.kind = kind

    def describe(self) -> str:
        return _PATH_KINDS[self.kind][0] + " or ''"

    def _check(self, value: Any, where: str) -> None:
        super()._check(value, where)
        if value and not path_exists(value, self.kind):
            raise ParamError(where, value, f"must be {_PATH_KINDS[self.kind][0]} or '' (not found "
                             f"from {Path.cwd()})")


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def hub_offline() -> bool:
    """Whether Hugging Face downloads are off (``HF_HUB_OFFLINE``; the Makefile sets it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_hub_model(value: Any, where: str, packaged: Sequence[str] = ()) -> None:
    """ParamError unless ``value`` is one of ``packaged``, a local model folder, or a Hugging
    Face model id that can be had: online any id, offline (``HF_HUB_OFFLINE``) one in the
    local Hugging Face cache. Checked before any work, so that a mistyped or uncached model
    ends in one line instead of a download traceback mid-stage."""
    name = "" if value is None else str(value)
    if name.lower() in packaged or path_exists(name, "dir"):
        return
    first = "'packaged', " if packaged else ""
    if not _HUB_ID.fullmatch(name):
        raise ParamError(where, value, f"must be {first}a local model folder or a Hugging Face "
                         "model id (owner/name)")
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise ParamError(where, value, f"must be {first}a local model folder, or a Hugging "
                             "Face model in the local cache: HF_HUB_OFFLINE is set and it is not "
                             "cached (unset HF_HUB_OFFLINE=1 to download it)")


class Anything(Node):
    def describe(self) -> str:
        return "any value"

    def _check(self, value: Any, where: str) -> None:
        return None


class List(Node):
    """A YAML list of ``item`` values; ``length`` / ``min_len`` / ``max_len`` bound its size;
    ``unique``: no repeated value."""

    def __init__(self, item: Node, length: int | None = None, min_len: int | None = None,
                 max_len: int | None = None, unique: bool = False, **kw):
        super().__init__(**kw)
        self.item, self.length, self.min_len, self.max_len, self.unique = item, length, min_len, max_len, unique

    def describe(self) -> str:
        size = ""
        if self.length is not None:
            size = f" of {self.length}"
        elif self.min_len is not None and self.max_len is not None:
            size = f" of {self.min_len} to {self.max_len}"
        elif self.min_len is not None:
            size = f" of at least {self.min_len}"
        elif self.max_len is not None:
            size = f" of at most {self.max_len}"
        return f"a list{size} of {self.item.describe()}" + (" (no repeats)" if self.unique else "")

    def _check(self, value: Any, where: str) -> None:
        if not isinstance(value, (list, tuple)):
            raise self._fail(where, value)
        n = len(value)
        if ((self.length is not None and n != self.length) or (self.min_len is not None and n < self.min_len)
                or (self.max_len is not None and n > self.max_len)):
            raise self._fail(where, value)
        for i, item in enumerate(value):
            self.item.validate(item, f"{where}[{i}]")
        if self.unique and len({json.dumps(v, sort_keys=True, default=str) for v in value}) != n:
            raise self._fail(where, value)


class Section(Node):
    """A mapping with declared keys: an unknown key is an error (with a did-you-mean), a
    missing key is allowed (the code's default applies). ``check(value, where)`` runs after
    the keys are valid, for constraints between keys; it raises ParamError."""

    def __init__(self, fields: Mapping[str, Node], **kw):
        super().__init__(**kw)
        self.fields = dict(fields)

    def describe(self) -> str:
        return "a mapping of " + ", ".join(self.fields) if self.fields else "an empty mapping"

    def _check(self, value: Any, where: str) -> None:
        if not isinstance(value, Mapping):
            raise self._fail(where, value)
        check_unknown(value, self.fields, where)
        for key, item in value.items():
            self.fields[key].validate(item, f"{where}.{key}" if where else str(key))


class Map(Node):
    """A mapping of free names (``keys`` None) or names given by ``keys()`` (a callable, so a
    registry can be read late) to values of ``value(name)`` (a Node or a callable giving one)."""

    def __init__(self, value: Node | Callable[[str], Node], keys: Callable[[], Iterable[str]] | None = None,
                 what: str = "name", **kw):
        super().__init__(**kw)
        self.value, self.keys, self.what = value, keys, what

    def describe(self) -> str:
        return f"a mapping of {self.what}s"

    def node(self, key: str) -> Node:
        return self.value if isinstance(self.value, Node) else self.value(key)

    def _check(self, value: Any, where: str) -> None:
        if not isinstance(value, Mapping):
            raise self._fail(where, value)
        if self.keys is not None:
            check_unknown(value, list(self.keys()), where, what=self.what)
        for key, item in value.items():
            self.node(key).validate(item, f"{where}.{key}")


class AnyOf(Node):
    """The first of ``options`` that accepts the value; the error of the option of the same
    YAML kind (mapping, list, scalar) when one exists, else a summary of all options."""

    def __init__(self, *options: Node, **kw):
        super().__init__(**kw)
        self.options = options

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)

    def _check(self, value: Any, where: str) -> None:
        errors = []
        for option in self.options:
            try:
                option.validate(value, where)
                return
            except ParamError as err:
                errors.append((option, err))
        for option, err in errors:
            if isinstance(value, Mapping) and isinstance(option, (Section, Map)):
                raise err
            if isinstance(value, (list, tuple)) and isinstance(option, List):
                raise err
        raise self._fail(where, value)


def from_defaults(defaults: Mapping[str, Any], overrides: Mapping[str, Node] | None = None,
                  check: Callable[[Any, str], None] | None = None) -> Section:
    """A Section whose keys are those of ``defaults`` (a detector's ``defaults``), each typed
    from its default value (int, float, bool, list; nested mappings become Sections; strings and
    None accept anything unless overridden), with explicit ``overrides`` (dotted names reach
    into nested mappings) for ranges and choices; ``check`` is the Section's own (between keys)."""
    overrides = dict(overrides or {})
    fields: dict[str, Node] = {}
    for key, default in defaults.items():
        if key in overrides:
            fields[key] = overrides.pop(key)
            continue
        if isinstance(default, Mapping):
            prefix = key + "."
            sub = {k[len(prefix):]: overrides.pop(k) for k in list(overrides) if k.startswith(prefix)}
            fields[key] = from_defaults(default, sub)
        elif isinstance(default, bool):
            fields[key] = Bool()
        elif isinstance(default, int):
            fields[key] = Int()
        elif isinstance(default, float):
            fields[key] = Float()
        elif isinstance(default, (list, tuple)):
            fields[key] = List(Anything())
        else:
            fields[key] = Anything()
    if overrides:
        raise ValueError(f"schema overrides for keys without a default: {sorted(overrides)}")
    return Section(fields, check=check)


# top-level sections of params.yaml -> "module:attribute" of their schema (imported on use)
SECTIONS: dict[str, str] = {
    "seed": "dfdetect.config:SEED",
    "sharding": "dfdetect.config:SHARDING",
    "executor": "dfdetect.parallel:EXECUTOR",
    "max_failure_ratio": "dfdetect.failures:MAX_FAILURE_RATIO",
    "make_demo": "dfdetect.data.demo.build:PARAMS",
    "make_demo_unseen": "dfdetect.data.demo.build:OVERRIDES",
    "test_sets": "dfdetect.data.ingest:TEST_SETS",
    "ingest": "dfdetect.data.ingest:PARAMS",
    "sample_frames": "dfdetect.video.sample:PARAMS",
    "align_faces": "dfdetect.faces.stage:PARAMS",
    "make_demo_audio": "dfdetect.data.demo.speech:PARAMS",
    "ingest_audio": "dfdetect.audio.ingest:PARAMS",
    "extract_audio": "dfdetect.audio.extract:PARAMS",
    "transcribe": "dfdetect.audio.transcribe:PARAMS",
    "text_model": "dfdetect.text.params:PARAMS",
    "audio_model": "dfdetect.audio.model_params:PARAMS",
    "saab": "dfdetect.saab.features:PARAMS",
    "train_mst": "dfdetect.spectral.params:TRAIN_MST",
    "hyperspectral": "dfdetect.spectral.reconstruct:PARAMS",
    "face_embeddings": "dfdetect.faceid.embed:PARAMS",
    "triplet_plots": "dfdetect.detectors.metric_learning:PLOTS",
    "hyperfake_plots": "dfdetect.spectral.params:HYPERFAKE_PLOTS",
    "models": "dfdetect.detectors.base:MODELS",
    "evaluate": "dfdetect.detectors.evaluation:PARAMS",
    "report": "dfdetect.report:PARAMS",
}


def _check_sharding(value: Mapping, where: str) -> None:
    n = value.get("num_shards", 1)
    listed = value.get("shards")
    if listed is not None and list(listed) != list(range(n)):
        raise ParamError(f"{where}.shards", listed,
                         f"must be [0..{n - 1}] (= range of {where}.num_shards = {n}); give --sharding.num_shards "
                         "alone on a command line to derive it")


def _positive_sum(value, where: str) -> None:
    if not sum(value) > 0:
        raise ParamError(where, list(value), "must have a positive sum (shares, normalised by their sum)")


def fractions(n: int = 3) -> List:
    """``n`` shares in [0, 1] with a positive sum (train/val/test split fractions)."""
    return List(Float(ge=0, le=1), length=n, check=_positive_sum)


# a torch device: auto (cuda when present) | cpu | cuda | cuda:N | mps
DEVICE = Str(pattern=r"auto|cpu|cuda(:\d+)?|mps")
SEED = Int(ge=0, le=2**32 - 1)
SHARDING = Section({"num_shards": Int(ge=1), "shards": List(Int(ge=0))}, check=_check_sharding)


def schema(name: str) -> Node:
    """The schema of a params section: ``"sample_frames"``, or ``"models.resnet50"``."""
    head, _, rest = name.partition(".")
    if head not in SECTIONS:
        raise unknown_key_error("", head, None, SECTIONS, what="section")
    module, _, attr = SECTIONS[head].partition(":")
    node = getattr(importlib.import_module(module), attr)
    for part in rest.split(".") if rest else []:
        if isinstance(node, Section):
            if part not in node.fields:
                raise unknown_key_error(head, part, None, node.fields)
            node = node.fields[part]
        elif isinstance(node, Map):
            if node.keys is not None:
                known = list(node.keys())
                if part not in known:
                    raise unknown_key_error(head, part, None, known, what=node.what)
            node = node.node(part)
        else:
            raise KeyError(f"params section {name!r} has no sub-sections")
        head = f"{head}.{part}"
    return node


def check_sections(params: Mapping, source: str = "params.yaml") -> None:
    """Every top-level key of ``params`` must be a known section (did-you-mean otherwise)."""
    for key in params:
        if key not in SECTIONS:
            raise ParamError(f"{source}: {key}", None,
                             f"unknown section{did_you_mean(key, SECTIONS)} (known: {', '.join(sorted(SECTIONS))})",
                             show_value=False)


def validate(name: str, value: Any) -> None:
    """Validate one section's value against its schema (ParamError on the first problem)."""
    schema(name).validate(value, name)


def validate_params(params: Mapping, source: str = "params.yaml") -> None:
    """A whole params file: known sections only, every section valid."""
    check_sections(params, source)
    for key, value in params.items():
        validate(key, value)


SHARED = ("seed", "sharding")


class StageCLI:
    """Argument parser whose flags are generated from a params section.

    ``extra`` arguments (paths of the DAG, shard index, ...) are added by the stage with
    :meth:`add` before :meth:`parse`. The parsed result is ``(cfg, args)`` where ``cfg`` is the
    section with overrides applied (nested dict) and ``args`` the argparse namespace of the
    extra arguments. ``shared`` top-level entries of params.yaml (``seed``, ``sharding`` and,
    for per-item stages, ``max_failure_ratio``) are added to ``cfg`` under their own name.

    Before returning, :meth:`parse` validates the params file's section names and every value
    the stage reads against its schema; on a problem it prints one line to stderr
    (``stages/x.py: x.key = value: must be ...``) and exits with code 2.
    """

    def __init__(self, name: str, description: str, sections: Iterable[str] | None = None,
                 params_path: str | Path = DEFAULT_PARAMS, shared: Iterable[str] = SHARED):
        self.name = name
        self.sections = list(sections) if sections is not None else [name]
        self.shared = list(shared)
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

    def fail(self, err: BaseException | str) -> NoReturn:
        """One line on stderr, exit code 2 (as argparse does for a bad flag)."""
        print(f"{self.parser.prog}: {err}", file=sys.stderr)
        raise SystemExit(2)

    def parse(self, argv: list[str] | None = None) -> tuple[dict, argparse.Namespace]:
        # params path may be overridden before the defaults are known
        probe = argparse.ArgumentParser(add_help=False)
        probe.add_argument("--params", default=str(self._params_path))
        known, _ = probe.parse_known_args(argv)
        try:
            params = load_params(known.params)
        except (ValueError, yaml.YAMLError) as err:
            self.fail(" ".join(str(err).split()))
        merged: dict = {}
        origin: dict[str, str] = {}   # top-level key of cfg -> the section it came from
        for sec in self.sections:
            values = section(params, sec)
            merged.update(values)
            origin.update({key: sec for key in values})
        for key in self.shared:
            if key in params and key not in merged:
                merged[key] = copy.deepcopy(params[key])
                origin[key] = key
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
        cfg = unflatten(updated)
        if isinstance(cfg.get("sharding"), dict):
            derive_shards(cfg["sharding"], given=_flags_given(argv))
        try:
            check_sections(params, known.params)
            for sec in self.sections:
                schema(sec)   # the section itself must be known (models.<name>: a registered one)
                raw = _lookup(params, sec)
                if raw is not None and not isinstance(raw, dict):
                    validate(sec, raw)   # `sample_frames: 3`: not a mapping
                values = {k: v for k, v in cfg.items() if origin.get(k) == sec}
                if values or isinstance(raw, dict):
                    validate(sec, values)
            for key in self.shared:
                if key in cfg and origin.get(key) == key:
                    validate(key, cfg[key])
            _check_shard(args, cfg)
        except ParamError as err:
            self.fail(err)
        return cfg, args


def _check_shard(args: argparse.Namespace, cfg: Mapping) -> None:
    """A stage's ``--shard N`` must be one of ``sharding.shards`` (else the shard's input file
    does not exist and the stage would end in a traceback)."""
    shard = getattr(args, "shard", None)
    sharding = cfg.get("sharding")
    if shard is None or not isinstance(sharding, Mapping):
        return
    shards = list(sharding.get("shards") or range(int(sharding.get("num_shards", 1))))
    if shard not in shards:
        raise ParamError("--shard", shard, f"must be one of sharding.shards {json.dumps(shards)}")


def _lookup(params: Mapping, name: str) -> Any:
    """The value of a dotted section name in ``params`` (None when absent)."""
    node: Any = params
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _flags_given(argv: list[str] | None) -> set[str]:
    tokens = sys.argv[1:] if argv is None else argv
    return {t[2:].split("=", 1)[0] for t in tokens if t.startswith("--")}


def derive_shards(sharding: dict, given: Iterable[str] = ()) -> dict:
    """``sharding.num_shards`` given alone on a command line: ``shards = [0 .. n-1]``.

    A params file whose two disagree is left alone (its validation then fails)."""
    given = set(given)
    n = sharding.get("num_shards")
    if ("sharding.num_shards" in given and "sharding.shards" not in given
            and isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        sharding["shards"] = list(range(n))
    return sharding


def num_shards(cfg_or_params: dict) -> int:
    """Number of shards, validated against the list that dvc.yaml's ``foreach`` iterates."""
    sharding = cfg_or_params.get("sharding", cfg_or_params)
    value = {k: sharding[k] for k in ("num_shards", "shards") if k in sharding}
    SHARDING.validate(value, "sharding")
    return int(value.get("num_shards", 1))
