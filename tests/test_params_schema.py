"""Params are validated once, up front, against declared schemas (issues #8 and #9).

A bad value, an unknown key or an unknown section stops a stage with exit code 2 and one line
naming the key, the value and what is allowed, before any work; a shard where too many items
fail exits non-zero with its failures table written.
"""

from __future__ import annotations

import importlib.util
import sys

import pandas as pd
import pytest
import yaml

from dfdetect import config
from dfdetect.config import ParamError, StageCLI, num_shards
from dfdetect.failures import Failures, ratio_error

from .conftest import REPO

STAGES = ["sample_frames", "align_faces", "ingest", "ingest_audio", "make_demo", "make_demo_audio",
          "extract_audio", "transcribe", "saab_features", "train_mst", "hyperspectral", "hyperfake_plots",
          "train_text_model", "train_audio_model", "evaluate", "report", "train"]


def _stage(name: str):
    spec = importlib.util.spec_from_file_location(f"_schema_stage_{name}", REPO / "stages" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def stage():
    cache: dict = {}

    def get(name):
        if name not in cache:
            cache[name] = _stage(name)
        return cache[name]
    return get


def _committed() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _params(tmp_path, data=None, **changes) -> str:
    """A copy of the committed params.yaml with ``section.key`` values changed."""
    data = _committed() if data is None else data
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _exit2(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------------------ the cases
@pytest.mark.parametrize("flag, value, key, allowed", [
    ("num_frames", "0", "sample_frames.num_frames = 0", "integer >= 1"),
    ("num_frames", "-3", "sample_frames.num_frames = -3", "integer >= 1"),
    ("num_frames", "abc", "sample_frames.num_frames = 'abc'", "integer >= 1"),
    ("strategy", "bogus", "sample_frames.strategy = 'bogus'", "one of uniform, every_k, uniform_every_k, fps, all"),
    ("every_k", "0", "sample_frames.every_k = 0", "integer >= 1"),
    ("fps", "0", "sample_frames.fps = 0", "number > 0"),
    ("fps", ".nan", "sample_frames.fps = nan", "number > 0"),
    ("fps", "nan", "sample_frames.fps = 'nan'", "number > 0"),
    ("decoder", "bogus", "sample_frames.decoder = 'bogus'", "one of pyav, opencv"),
    ("compression.level", "99", "sample_frames.compression.level = 99", "in [0, 9] for codec gzip"),
    ("max_side", "-5", "sample_frames.max_side = -5", "integer >= 0"),
])
def test_sample_frames_bad_values_exit_2_before_work(stage, tmp_path, capsys, flag, value, key, allowed):
    missing = tmp_path / "no-such-dir"           # would fail loudly if the stage started working
    line = _exit2(stage("sample_frames").main,
                  ["--params", _params(tmp_path), "--shard", "0", "--manifest-dir", str(missing),
                   "--out-dir", str(tmp_path / "out"), f"--{flag}", value], capsys)
    assert line.startswith(f"stages/sample_frames.py: {key}: must be ")
    assert allowed in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value, key", [
    ("face_size", "0", "align_faces.face_size = 0"),
    ("margin", "-1", "align_faces.margin = -1"),
    ("detector", "hogg", "align_faces.detector = 'hogg'"),
])
def test_align_faces_bad_values_exit_2(stage, tmp_path, capsys, flag, value, key):
    line = _exit2(stage("align_faces").main,
                  ["--params", _params(tmp_path), "--shard", "0", "--frames-dir", str(tmp_path / "none"),
                   f"--{flag}", value], capsys)
    assert line.startswith(f"stages/align_faces.py: {key}: must be ")


def test_bad_value_in_params_file_is_caught_too(stage, tmp_path, capsys):
    line = _exit2(stage("sample_frames").main,
                  ["--params", _params(tmp_path, sample_frames__num_frames=0), "--shard", "0"], capsys)
    assert "sample_frames.num_frames = 0: must be an integer >= 1" in line


def test_unknown_key_did_you_mean(stage, tmp_path, capsys):
    data = _committed()
    data["sample_frames"]["num_frame"] = 3
    line = _exit2(stage("sample_frames").main, ["--params", _params(tmp_path, data), "--shard", "0"], capsys)
    assert "sample_frames.num_frame = 3: unknown key; did you mean 'num_frames'?" in line


def test_unknown_section_did_you_mean_in_every_stage(stage, tmp_path, capsys):
    data = _committed()
    data["sample_frame"] = {"num_frames": 3}
    path = _params(tmp_path, data)
    for name in ("sample_frames", "report", "evaluate"):
        argv = ["--params", path] + (["--shard", "0"] if name == "sample_frames" else [])
        argv += ["--detector", "resnet50"] if name == "evaluate" else []
        line = _exit2(stage(name).main, argv, capsys)
        assert "sample_frame: unknown section; did you mean 'sample_frames'?" in line, line


def test_detector_params_same_mechanism(stage, tmp_path, capsys):
    data = _committed()
    data["models"]["resnet50"]["lrr"] = 0.1
    line = _exit2(stage("train").main, ["--params", _params(tmp_path, data), "--detector", "resnet50"], capsys)
    assert "models.resnet50.lrr = 0.1: unknown key; did you mean 'lr'?" in line
    line = _exit2(stage("train").main, ["--params", _params(tmp_path), "--detector", "resnet50",
                                        "--optimizer", "sgd"], capsys)
    assert "models.resnet50.optimizer = 'sgd': must be one of adam, adamw" in line
    line = _exit2(stage("train").main, ["--params", _params(tmp_path), "--detector", "defakehop",
                                        "--final_xgb.subsample", "0"], capsys)
    assert "models.defakehop.final_xgb.subsample = 0: must be a number in (0, 1]" in line
    # the library raises the same error when a detector is built directly
    from dfdetect.detectors.base import create  # noqa: PLC0415

    with pytest.raises(ParamError, match=r"models.resnet50.epoch = 2: unknown key; did you mean 'epochs'\?"):
        create("resnet50", {"epoch": 2})


def test_unknown_detector_section(tmp_path):
    with pytest.raises(ParamError, match="models.resnet5: unknown detector; did you mean 'resnet50'"):
        config.validate("models", {"resnet5": {}})


# ------------------------------------------------------------------------------ the committed file
def test_committed_params_validate_and_every_section_has_a_schema():
    params = _committed()
    config.validate_params(params)                       # raises on the first problem
    assert set(params) <= set(config.SECTIONS)
    for name in params:
        assert isinstance(config.schema(name), config.Node)
    for name, detector in params["models"].items():       # every detector's section is declared
        assert isinstance(config.schema(f"models.{name}"), config.Section)


def test_every_stage_validates_every_section_it_reads():
    """Each stage's StageCLI sections resolve to a schema (none reads an undeclared section)."""
    import re  # noqa: PLC0415

    for name in STAGES:
        if name == "train":    # models.<detector>: test_detector_params_same_mechanism
            continue
        text = (REPO / "stages" / f"{name}.py").read_text()
        m = re.search(r"StageCLI\(\"(\w+)\", __doc__(?:, sections=\[([^\]]*)\])?", text)
        assert m, name
        sections = re.findall(r"\"([\w.]+)\"", m.group(2)) if m.group(2) is not None else [m.group(1)]
        for sec in sections:
            if "{" not in sec:
                assert isinstance(config.schema(sec), config.Node), (name, sec)


@pytest.mark.parametrize("section, value, message", [
    ("make_demo", {"size": 255}, "make_demo.size = 255: must be even"),
    ("ingest", {"layout": "ffpq"}, "did you mean 'ffpp'"),
    ("ingest", {"split_fractions": [0.5, 0.5]}, "ingest.split_fractions = [0.5, 0.5]: must be a list of 3"),
    ("extract_audio", {"compression": "zip"}, "extract_audio.compression = 'zip': must be one of none"),
    ("transcribe", {"temperature": 0.2}, "transcribe.temperature = 0.2"),
    ("saab", {"regions": ["nose"]}, "saab.regions[0] = 'nose': must be one of left_eye, right_eye, mouth"),
    ("hyperspectral", {"codec": {"codec": "zstd", "level": 30}}, "in [1, 22] for codec zstd"),
    ("train_mst", {"scenes": {"trian": 3}}, "train_mst.scenes.trian = 3: unknown key; did you mean 'train'?"),
    ("executor", {"workers": -1}, "executor.workers = -1: must be an integer >= 0 or null"),
    ("text_model", {"corpus": {"source": "wiki"}}, "text_model.corpus.source = 'wiki'"),
    ("audio_model", {"backbone": "hubert"}, "audio_model.backbone = 'hubert'"),
    ("evaluate", {"aggregate": "avg"}, "evaluate.aggregate = 'avg'"),
    ("hyperfake_plots", {"bands": [0]}, "hyperfake_plots.bands[0] = 0: must be an integer in [1, 31]"),
    ("make_demo_audio", {"min_seconds": 6.0}, "make_demo_audio.min_seconds = 6.0: must be <= "),
    ("seed", -1, "seed = -1"),
])
def test_section_schemas(section, value, message):
    with pytest.raises(ParamError) as exc:
        config.validate(section, value)
    assert message in str(exc.value)


# ------------------------------------------------------------------------------ num_shards (#9)
def test_num_shards_alone_derives_the_shard_list(tmp_path):
    p = _params(tmp_path)
    cfg, _ = StageCLI("sample_frames", "", params_path=p).parse(["--sharding.num_shards", "1"])
    assert cfg["sharding"] == {"num_shards": 1, "shards": [0]}
    assert num_shards(cfg) == 1
    cfg, _ = StageCLI("sample_frames", "", params_path=p).parse(["--sharding.num_shards=3"])
    assert cfg["sharding"]["shards"] == [0, 1, 2]


def test_num_shards_disagreeing_with_shards_is_exit_2(tmp_path, capsys):
    p = _params(tmp_path, sharding__num_shards=3)           # shards stays [0, 1]
    with pytest.raises(SystemExit) as exc:
        StageCLI("ingest", "", sections=["ingest", "executor"], params_path=p).parse([])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"stages/ingest.py: sharding.shards = [0, 1]: must be [0..2] (= range of "
                   f"sharding.num_shards = 3); give --sharding.num_shards alone on a command line to derive it"]
    with pytest.raises(SystemExit):   # both given on the command line and disagreeing: also an error
        StageCLI("ingest", "", params_path=_params(tmp_path)).parse(
            ["--sharding.num_shards", "2", "--sharding.shards", "[0]"])


# ------------------------------------------------------------------------------ failure ratio
def test_ratio_error_counts_failed_items_not_rows():
    f = Failures("align_faces", items=4)
    f.add("a", "no face found by hog", frame_index=3, warn=False)        # a frame: not a failed item
    f.add("b", "partial: truncated", warn=False)                         # kept with a note
    f.add("c", "corrupt video: cannot decode frame 0", warn=False)
    assert ratio_error(f, 0.5) is None                                   # 1 of 4
    f.add("d", "corrupt video: cannot decode frame 0", warn=False)
    assert ratio_error(f, 0.5) is None                                   # 2 of 4 = 50 %: not above
    f.add("b", "missing file", warn=False)
    msg = ratio_error(f, 0.5, where="t.csv")
    assert msg.startswith("align_faces: 3 of 4 items failed (75% > max_failure_ratio 0.5)")
    assert "2 x corrupt video: cannot decode frame 0; 1 x missing file" in msg and msg.endswith("table: t.csv")
    assert ratio_error(f, 1.0) is None
    assert ratio_error(Failures("x", items=0), 0.0) is None


def _missing_manifest(tmp_path, n: int):
    rows = [{"video_id": f"v{i}.mp4", "path": str(tmp_path / f"v{i}.mp4"), "label": "real", "split": "train"}
            for i in range(n)]
    d = tmp_path / "manifest"
    d.mkdir()
    pd.DataFrame(rows).to_csv(d / "shard-0.csv", index=False)
    return d


def test_failure_ratio_over_threshold_fails_the_stage(stage, tmp_path, capsys):
    manifest = _missing_manifest(tmp_path, 3)
    argv = ["--params", _params(tmp_path), "--shard", "0", "--manifest-dir", str(manifest),
            "--out-dir", str(tmp_path / "frames"), "--failures-dir", str(tmp_path / "failures"),
            "--backend", "serial"]
    rc = stage("sample_frames").main(argv)
    assert rc == 1
    table = pd.read_csv(tmp_path / "failures" / "shard-0.csv", keep_default_na=False)
    assert sorted(table["video_id"]) == ["v0.mp4", "v1.mp4", "v2.mp4"]   # the user sees why
    err = capsys.readouterr().err
    assert "sample_frames: 3 of 3 items failed (100% > max_failure_ratio 0.5); commonest reasons: 3 x " in err
    # under the threshold (here: a guard turned off) the same shard exits 0
    assert stage("sample_frames").main(argv + ["--max_failure_ratio", "1"]) == 0


def test_failure_ratio_is_validated(stage, tmp_path, capsys):
    line = _exit2(stage("ingest").main, ["--params", _params(tmp_path), "--max_failure_ratio", "1.5"], capsys)
    assert "max_failure_ratio = 1.5: must be a number in [0, 1]" in line


def test_light_schema_modules_match_the_code_they_describe():
    """Schemas of torch-heavy sections live in light modules; their constants match the code."""
    from dfdetect.audio import model as audio_model  # noqa: PLC0415
    from dfdetect.nn import losses  # noqa: PLC0415
    from dfdetect.spectral import mst  # noqa: PLC0415
    from dfdetect.spectral import params as spectral_params  # noqa: PLC0415
    from dfdetect.text import model as text_model  # noqa: PLC0415
    from dfdetect.text import params as text_params  # noqa: PLC0415

    from dfdetect.text import encoder  # noqa: PLC0415

    assert text_params.DISTANCES == losses.DISTANCES and text_params.MINING == losses.MINING
    assert text_params.PACKAGED == encoder.PACKAGED
    assert spectral_params.BANDS == len(mst.WAVELENGTHS_NM)
    assert text_model.PARAMS is config.schema("text_model")
    assert audio_model.PARAMS is config.schema("audio_model")
    with pytest.raises(ParamError, match="text_model.epoch = 2: unknown key; did you mean 'epochs'"):
        text_model.TextAuthorModel(epoch=2)


def test_validation_imports_no_torch():
    import subprocess  # noqa: PLC0415

    code = ("import sys; from dfdetect import config; "
            "[config.schema(s) for s in config.SECTIONS if s != 'models']; "
            "config.validate('models', {'resnet50': {'lr': 0.1}}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def test_section_that_is_not_a_mapping(stage, tmp_path, capsys):
    data = _committed()
    data["sample_frames"] = 8
    line = _exit2(stage("sample_frames").main, ["--params", _params(tmp_path, data), "--shard", "0"], capsys)
    assert line.startswith("stages/sample_frames.py: sample_frames = 8: must be a mapping of strategy, ")


def test_unknown_detector_name_on_the_command_line(stage, tmp_path, capsys):
    for name in ("train", "evaluate"):
        line = _exit2(stage(name).main, ["--params", _params(tmp_path), "--detector", "resnet5"], capsys)
        assert f"stages/{name}.py: models.resnet5: unknown detector; did you mean 'resnet50'?" in line


# ------------------------------------------------------------------------------ names and paths
# A param that names a file, a folder, a model or an executor is checked when the stage parses
# its params: a typo ends in one line and exit 2, not in a traceback once the stage has started.
@pytest.mark.parametrize("section, value, message", [
    ("make_demo", {"source": "no/such/folder"}, "make_demo.source = 'no/such/folder': must be an existing folder"),
    ("train_mst", {"arad_root": "no-arad"}, "train_mst.arad_root = 'no-arad': must be an existing folder"),
    ("hyperspectral", {"checkpoint": "mst.pth"}, "hyperspectral.checkpoint = 'mst.pth': must be an existing file or folder"),
    ("executor", {"backend": "procss"}, "executor.backend = 'procss': must be one of serial, process, dask, loky"),
    ("saab", {"executor": {"backend": "ray"}}, "saab.executor.backend = 'ray'"),
    ("transcribe", {"model": "tiny.enn"}, "transcribe.model = 'tiny.enn': must be 'packaged', a name openai-whisper"),
    ("transcribe", {"engine": "faster-whisper", "model": "distil-tiny"}, "a Hugging Face repo id or an existing"),
    ("transcribe", {"language": "de"}, "transcribe.language = 'de': must be en or null: transcribe.model 'tiny.en' is English-only"),
    ("transcribe", {"model": "base.en", "language": "fr"}, "'base.en' is English-only"),
    ("audio_model", {"whisper_model": "smal"}, "audio_model.whisper_model = 'smal'"),
    ("text_model", {"corpus": {"source": "jsonl"}}, "text_model.corpus.path = '': must be an existing JSONL file"),
    ("text_model", {"corpus": {"path": "no-fortunes"}}, "text_model.corpus.path = 'no-fortunes': must be ''"),
    ("text_model", {"backbone": "not a model id"}, "text_model.backbone = 'not a model id': must be 'packaged', a local"),
])
def test_names_and_paths_are_checked(section, value, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamError) as exc:
        config.validate(section, value)
    assert message in str(exc.value)


def test_names_and_paths_that_exist_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "mst.pth").write_bytes(b"")
    (tmp_path / "quotes.jsonl").write_text("")
    (tmp_path / "whisper.pt").write_bytes(b"")
    for section, value in [
            ("make_demo", {"source": "src"}), ("make_demo", {"source": ""}),
            ("train_mst", {"arad_root": str(tmp_path / "src")}), ("train_mst", {"arad_root": None}),
            ("hyperspectral", {"checkpoint": "mst.pth"}), ("hyperspectral", {"checkpoint": "src"}),
            ("executor", {"backend": "serial"}), ("executor", {"backend": "process"}),
            ("executor", {"backend": "dask"}), ("executor", {"backend": "threading"}),
            ("transcribe", {"model": "tiny.en"}), ("transcribe", {"model": "whisper.pt", "language": "de"}),
            ("transcribe", {"model": "small", "language": "de"}), ("transcribe", {"model": "packaged"}),
            ("transcribe", {"engine": "faster-whisper", "model": "distil-small.en"}),
            ("audio_model", {"whisper_model": "whisper.pt"}),
            ("audio_model", {"backbone": "lfcc", "whisper_model": "unused"}),   # only the backbone in use
            ("text_model", {"corpus": {"source": "jsonl", "path": "quotes.jsonl"}}),
            ("text_model", {"corpus": {"path": "src"}}), ("text_model", {"backbone": "packaged"}),
            ("text_model", {"backbone": "src"})]:
        config.validate(section, value)


def test_hub_models_offline_must_be_cached(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))          # an empty Hugging Face cache
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as hc  # noqa: PLC0415

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ParamError, match="HF_HUB_OFFLINE is set and it is not cached"):
        config.validate("text_model", {"backbone": "microsoft/deberta-v3-base"})
    with pytest.raises(ParamError, match="audio_model.wav2vec2_model = 'facebook/wav2vec2-base'"):
        config.validate("audio_model", {"backbone": "wav2vec2"})
    snap = tmp_path / "hf" / "hub" / "models--microsoft--deberta-v3-base" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    refs = snap.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc")
    config.validate("text_model", {"backbone": "microsoft/deberta-v3-base"})   # cached: offline is fine
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    config.validate("text_model", {"backbone": "roberta-base"})                # online: any id


@pytest.mark.parametrize("name, argv", [
    ("sample_frames", ["--shard", "7"]), ("extract_audio", ["--shard", "2"]),
    ("align_faces", ["--shard", "-1"]), ("hyperspectral", ["--shard", "2", "--sharding.num_shards", "2"])])
def test_shard_outside_sharding_is_exit_2(stage, tmp_path, capsys, name, argv):
    line = _exit2(stage(name).main, ["--params", _params(tmp_path), *argv], capsys)
    assert f"stages/{name}.py: --shard = {argv[1]}: must be one of sharding.shards [0, 1]" == line


def test_bad_names_stop_the_stage_before_work(stage, tmp_path, capsys):
    out = tmp_path / "demo"
    line = _exit2(stage("make_demo").main, ["--params", _params(tmp_path), "--out", str(out),
                                            "--source", str(tmp_path / "nowhere")], capsys)
    assert line.startswith("stages/make_demo.py: make_demo.source = ") and not out.exists()
    line = _exit2(stage("transcribe").main, ["--params", _params(tmp_path), "--model", "tiny.enn",
                                             "--out", str(tmp_path / "t.jsonl")], capsys)
    assert line.startswith("stages/transcribe.py: transcribe.model = 'tiny.enn'")
    line = _exit2(stage("sample_frames").main, ["--params", _params(tmp_path), "--shard", "0",
                                                "--backend", "bogus"], capsys)
    assert line.startswith("stages/sample_frames.py: executor.backend = 'bogus': must be one of")
