"""dfdetect.profiles: the full-size profile as dvc exp run -S flags over the demo params.yaml."""

from __future__ import annotations

import copy

import yaml

from dfdetect import config, profiles
from dfdetect.detectors.base import get

from .conftest import REPO


def _committed() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_full_profile_is_the_code_recipe_plus_the_papers_settings():
    demo = _committed()
    full = profiles.apply(copy.deepcopy(demo), profiles.full_overrides(demo))
    config.validate_params(full)                               # every stage would accept it
    for name in ("resnet50", "efficientnet_b0", "xception", "hyperfake"):
        defaults = get(name).defaults
        for key, value in full["models"][name].items():
            if key in profiles.KEEP:
                assert value == demo["models"][name][key], (name, key)
            elif isinstance(value, dict):
                assert all(v == defaults[key][k] for k, v in value.items()), (name, key)
            else:
                assert value == defaults[key], (name, key)
    eff = full["models"]["efficientnet_b0"]
    assert (eff["image_size"], eff["epochs"], eff["patience"], eff["max_train_frames"]) == (224, 40, 5, 0)
    tb = full["models"]["two_branch"]
    assert (tb["image_size"], tb["seq_len"], tb["real_oversample"]) == (224, 10, 2)
    assert full["sample_frames"]["num_frames"] == 32 and full["hyperspectral"]["size"] == 128
    assert full["models"]["triplet_sgd"]["per_class"] == 32
    # what the demo profile alone decides stays: the thread counts, the offline weights
    assert full["hyperspectral"]["threads"] == demo["hyperspectral"]["threads"]
    assert eff["standin"] == demo["models"]["efficientnet_b0"]["standin"]
    assert profiles.full_overrides(full) == {}                 # the full profile is a fixed point
    assert full["ingest"] == demo["ingest"] and full["seed"] == demo["seed"]


def test_flags_survive_word_splitting_and_round_trip(capsys):
    over = {"models.x.lr": 0.0003, "models.x.scale": [0.5, 1.0], "a.b": "uniform"}
    flags = profiles.dvc_flags(over)
    assert flags == ["-S", "models.x.lr=0.0003", "-S", "models.x.scale=[0.5,1.0]", "-S", "a.b=uniform"]
    assert all(" " not in f for f in flags)
    back = {k: yaml.safe_load(v) for k, v in (f.split("=", 1) for f in flags[1::2])}
    assert back == over
    assert profiles.main(["full", "--params", str(REPO / "params.yaml")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == "-S" and "models.efficientnet_b0.epochs=40" in printed


def test_missing_params_file_exits_2(tmp_path, capsys):
    assert profiles.main(["full", "--params", str(tmp_path / "nope.yaml")]) == 2
    assert "no such params file" in capsys.readouterr().err


def test_dvc_s_flags_give_the_profile(tmp_path):
    """The README's `dvc exp run $(python -m dfdetect.profiles full)`: DVC's own -S parser and
    params writer, on a copy of params.yaml, give exactly the profile."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    demo = _committed()
    flags = profiles.dvc_flags(profiles.full_overrides(demo))
    for file, overrides in to_path_overrides([f"{path}:{f}" for f in flags[1::2]]).items():
        apply_overrides(file, overrides)
    assert yaml.safe_load(path.read_text()) == profiles.apply(copy.deepcopy(demo), profiles.full_overrides(demo))


def test_console_script_front(capsys):
    from dfdetect.cli import main

    assert main(["profile", "full", "--params", str(REPO / "params.yaml")]) == 0
    assert "-S models.resnet50.image_size=224" in capsys.readouterr().out


def test_machine_choices_are_kept_where_they_differ_from_the_code():
    """defakehop's ``nthread`` (2 in params.yaml, 1 in the code) is the machine's choice: the full
    profile must not reset it; nor the offline weight stand-ins."""
    demo = _committed()
    assert demo["models"]["defakehop"]["nthread"] != get("defakehop").defaults["nthread"]
    over = profiles.full_overrides(demo)
    assert not [k for k in over if k.rsplit(".", 1)[-1] in profiles.KEEP], over
    assert "models.defakehop.nthread" not in over
