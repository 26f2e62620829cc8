"""Reading saved model files, with one error type that names the file and the reason.

Every ``load(directory)`` of a detector (and of the DADA branch models, and ``pretrained:
<path>`` weights) reads its files through this module. Whatever goes wrong, the caller gets a
:class:`ModelLoadError` whose message is one line, ``<file>: <reason>``::

    models/defakehop/final_xgb.json: not an XGBoost model (XGBoostError: Invalid cast, from Null to Object)
    models/hyperfake/model.safetensors: not a safetensors file (SafetensorError: invalid header length)
    models/x/init.pth: refused: the checkpoint contains pickled code (weights_only)
    models/resnet50/config.json: missing file
    models/resnet50/config.json: config says detector efficientnet_b0, expected resnet50

:func:`model_file` is the one wrapper; the readers below (JSON, configs, safetensors, npz,
``torch.load(weights_only=True)``, XGBoost JSON) are built on it.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

#: XGBoost prefixes its messages with ``[hh:mm:ss] /path/file.cc:123: `` and appends a stack trace
_XGB_PREFIX = re.compile(r"^\[[^\]]*\]\s+\S+:\d+:\s*")


class ModelLoadError(ValueError):
    """A saved model file that cannot be used: ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = str(reason)
        super().__init__(f"{self.path}: {self.reason}")


def short_error(err: BaseException) -> str:
    """``"Type: first line"`` of an exception, without XGBoost's location prefix and backtrace."""
    text = ""
    for line in str(err).splitlines():
        line = _XGB_PREFIX.sub("", line.strip())
        if line:
            text = line
            break
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _pickled_code(err: BaseException) -> bool:
    import pickle  # noqa: PLC0415

    return isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower()


@contextlib.contextmanager
def model_file(path: str | Path, problem: str) -> Iterator[Path]:
    """Read ``path`` inside the block; any failure becomes one :class:`ModelLoadError`.

    A missing file is ``"missing file"``; ``torch.load(weights_only=True)`` refusing pickled
    code is ``"refused: the checkpoint contains pickled code (weights_only)"``; any other
    exception is ``"<problem> (<Type>: <first line of its message>)"``, e.g. ``problem`` =
    ``"not an XGBoost model"``. A :class:`ModelLoadError` raised inside passes through.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(path, "missing file")
    try:
        yield path
    except ModelLoadError:
        raise
    except Exception as err:  # noqa: BLE001  (any failure of a reader names the file)
        if _pickled_code(err):
            raise ModelLoadError(path, "refused: the checkpoint contains pickled code (weights_only)") from err
        raise ModelLoadError(path, f"{problem} ({short_error(err)})") from err


def read_json(path: str | Path, problem: str = "not valid JSON") -> Any:
    with model_file(path, problem) as p:
        return json.loads(p.read_text(encoding="utf-8"))


def read_config(directory: str | Path, expected: str | None = None, key: str = "detector") -> dict:
    """``directory/config.json`` as a dict; ``expected`` checks its ``key`` (detector / kind)."""
    path = Path(directory) / "config.json"
    cfg = read_json(path, "not a model config (JSON)")
    if not isinstance(cfg, Mapping):
        raise ModelLoadError(path, f"not a model config (a JSON {type(cfg).__name__}, expected an object)")
    if expected is not None and cfg.get(key) != expected:
        got = cfg.get(key)
        raise ModelLoadError(path, f"config says {key} {got if got is not None else '(none)'}, "
                                   f"expected {expected}")
    return dict(cfg)


def require(mapping: Mapping, name: str, path: str | Path) -> Any:
    """``mapping[name]``, or a :class:`ModelLoadError` saying the file lacks it."""
    if not isinstance(mapping, Mapping) or name not in mapping:
        raise ModelLoadError(path, f"lacks {name!r}")
    return mapping[name]


def load_safetensors(path: str | Path, framework: str = "torch") -> dict:
    """Tensors of a safetensors file (``framework`` ``"torch"``: CPU tensors; ``"numpy"``)."""
    with model_file(path, "not a safetensors file") as p:
        if framework == "numpy":
            from safetensors.numpy import load_file  # noqa: PLC0415

            return load_file(str(p))
        from safetensors.torch import load_file  # noqa: PLC0415

        return load_file(str(p), device="cpu")


def torch_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: pickled code is refused."""
    import torch  # noqa: PLC0415

    with model_file(path, "not a torch checkpoint") as p:
        return torch.load(str(p), map_location=map_location, weights_only=True)


def load_npz(path: str | Path, names: list[str] | tuple[str, ...] = ()) -> dict:
    """Every array of an npz archive (no pickles), read whole; ``names`` must all be present."""
    import numpy as np  # noqa: PLC0415

    with model_file(path, "not an npz archive") as p:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    for name in names:
        require(arrays, name, path)
    return arrays


def load_xgboost_json(path: str | Path, depth: int = 0):
    """XGBoost boosters of a JSON file in XGBoost's JSON model format: ``depth`` 0, the file is
    one model; 1, an object of models (``{name: model}``); 2, an object of lists of models."""
    import xgboost  # noqa: PLC0415

    def build(obj):
        booster = xgboost.Booster()
        booster.load_model(bytearray(json.dumps(obj).encode()))
        return booster

    def walk(node, depth):
        if depth == 0:
            return build(node)
        if isinstance(node, Mapping):
            return {str(k): walk(v, depth - 1) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, depth - 1) for v in node]
        raise TypeError(f"expected a JSON object or list, got {type(node).__name__}")

    with model_file(path, "not an XGBoost model") as p:
        obj = json.loads(p.read_text(encoding="utf-8"))
        return walk(obj, int(depth))


def fit_state_dict(module, state: Mapping, path: str | Path, strict: bool = True) -> None:
    """``module.load_state_dict(state)``; a mismatch is a :class:`ModelLoadError` on ``path``."""
    with model_file(path, f"weights do not fit the {type(module).__name__} model"):
        module.load_state_dict(state, strict=strict)
