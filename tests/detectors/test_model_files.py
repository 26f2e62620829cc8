"""Loading errors: every load() path raises ModelLoadError naming the file and the reason."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch

from dfdetect.detectors.base import ModelLoadError, create, get
from dfdetect.model_files import model_file, short_error

TINY = {"image_size": 32, "pretrained": "none", "num_threads": 1, "device": "cpu"}


@pytest.fixture
def saved(tmp_path) -> Path:
    """A saved (unfitted, randomly initialised) efficientnet_lite0 detector."""
    det = create("efficientnet_lite0", TINY)
    det.model, det._init = det._build("none", seed=0)
    det.save(tmp_path / "m")
    return tmp_path / "m"


def _reason(err: pytest.ExceptionInfo, path: Path) -> str:
    text = str(err.value)
    assert err.value.path == path and text.startswith(f"{path}: ") and "\n" not in text, text
    return text[len(f"{path}: "):]


def test_saved_detector_loads(saved):
    again = get("efficientnet_lite0").load(saved)
    assert again.model is not None


def test_truncated_safetensors(saved):
    path = saved / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelLoadError) as err:
        get("efficientnet_lite0").load(saved)
    assert _reason(err, path).startswith("not a safetensors file (SafetensorError: ")


def test_missing_file(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError) as err:
        get("efficientnet_lite0").load(saved)
    assert _reason(err, saved / "model.safetensors") == "missing file"
    with pytest.raises(ModelLoadError) as err:
        get("efficientnet_lite0").load(saved.parent / "nowhere")
    assert _reason(err, saved.parent / "nowhere" / "config.json") == "missing file"


def test_config_of_another_detector(saved):
    with pytest.raises(ModelLoadError) as err:
        get("resnet50").load(saved)
    assert _reason(err, saved / "config.json") == "config says detector efficientnet_lite0, expected resnet50"
    (saved / "config.json").write_text("[1, 2]\n")
    with pytest.raises(ModelLoadError) as err:
        get("efficientnet_lite0").load(saved)
    assert _reason(err, saved / "config.json").startswith("not a model config")


def test_weights_of_another_shape(saved):
    from safetensors.torch import save_file

    save_file({"conv_stem.weight": torch.zeros(1)}, str(saved / "model.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        get("efficientnet_lite0").load(saved)
    assert _reason(err, saved / "model.safetensors").startswith(
        "weights do not fit the EfficientNet model (RuntimeError: ")


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickled_code_checkpoint_is_refused(tmp_path):
    path = tmp_path / "init.pth"
    torch.save({"conv_stem.weight": torch.zeros(1), "x": _Payload()}, path)
    det = create("efficientnet_lite0", {**TINY, "pretrained": str(path)})
    with pytest.raises(ModelLoadError) as err:
        det._build(str(path), seed=0)
    assert _reason(err, path) == "refused: the checkpoint contains pickled code (weights_only)"


def test_branch_models_check_their_kind(tmp_path):
    from dfdetect.audio.model import AudioModel
    from dfdetect.text.model import TextAuthorModel

    (tmp_path / "config.json").write_text(json.dumps({"kind": "dada_text", "params": {}}))
    with pytest.raises(ModelLoadError) as err:
        AudioModel.load(tmp_path)
    assert _reason(err, tmp_path / "config.json") == "config says kind dada_text, expected dada_audio"
    (tmp_path / "config.json").write_text(json.dumps({"kind": "dada_text", "params": {"nope": 1}}))
    with pytest.raises(ModelLoadError) as err:
        TextAuthorModel.load(tmp_path)
    assert _reason(err, tmp_path / "config.json").startswith("params the text model does not accept (")


def test_wrapper_reason_and_xgboost_message_cleanup(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    with pytest.raises(ModelLoadError) as err:
        with model_file(path, "not a thing"):
            raise pickle.UnpicklingError("invalid load key, 'x'.")
    assert _reason(err, path) == "not a thing (UnpicklingError: invalid load key, 'x'.)"
    assert short_error(RuntimeError("[08:03:54] /workspace/src/learner.cc:12: map::at\nStack trace:")) == \
        "RuntimeError: map::at"
