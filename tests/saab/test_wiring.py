"""DVC wiring of DefakeHop: the Saab stage depends on the `saab` params only, so changing the
classifier's params (models.defakehop) reruns train/evaluate but never saab_features."""

from __future__ import annotations

from pathlib import Path

import yaml

from dfdetect.detectors.base import create, get
from dfdetect.saab.features import PIXELHOP_KEYS, pixelhop_kwargs

REPO = Path(__file__).resolve().parents[2]


def test_saab_stage_params_are_separate_from_the_classifier():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    stage = dvc["stages"]["saab_features"]
    assert sorted(stage["params"]) == ["saab", "seed"]
    assert {"data/saab", "models/saab"} <= set(stage["outs"])
    assert "src/dfdetect/saab" in stage["deps"] and "src/dfdetect/detectors" not in stage["deps"]
    inputs = next(v for v in dvc["vars"] if "train_inputs" in v)["train_inputs"]["defakehop"]
    assert inputs["a"] == "data/saab"


def test_params_sections_build_the_models():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    saab = params["saab"]
    kw = pixelhop_kwargs(saab, params["seed"])
    assert set(kw) - {"seed"} <= set(PIXELHOP_KEYS)
    assert (kw["num_hops"], kw["kernel_size"], kw["max_channels"]) == (3, 3, 10)
    assert (kw["split_thr"], kw["keep_thr"]) == (0.01, 0.001)
    det = create("defakehop", params["models"]["defakehop"])
    assert det.params["channel_xgb"]["max_depth"] == 1 and det.params["final_xgb"]["max_depth"] == 6
    assert get("defakehop").inputs == ("saab",)
