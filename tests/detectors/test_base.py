import pytest

from dfdetect.detectors.base import create, get, registry


def test_registry_has_every_paper_detector():
    names = set(registry())
    assert {"resnet50", "efficientnet_b0", "efficientnet_b7", "defakehop", "hyperfake",
            "dada_mid", "dada_late"} <= names
    with pytest.raises(KeyError, match="unknown detector"):
        get("no_such_detector")


def test_params_merge_defaults_and_reject_typos():
    det = create("defakehop", {"channel_xgb": {"n_estimators": 7}, "n_folds": 3})
    assert det.params["n_folds"] == 3
    assert det.params["channel_xgb"]["n_estimators"] == 7
    assert det.params["channel_xgb"]["max_depth"] == 1          # nested default kept
    assert type(det).defaults["channel_xgb"]["n_estimators"] == 100  # defaults not mutated
    with pytest.raises(ValueError, match="models.resnet50.learning_rate = 0.1: unknown key"):
        create("resnet50", {"learning_rate": 0.1})
