import pytest
import yaml

from dfdetect.config import StageCLI, flatten, num_shards, unflatten


def _params(tmp_path, data):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_flags_from_section_and_overrides(tmp_path):
    p = _params(tmp_path, {"seed": 7, "sharding": {"num_shards": 2, "shards": [0, 1]},
                           "ingest": {"layout": "generic", "root": "data/demo",
                                      "split_fractions": [0.6, 0.2, 0.2]},
                           "sample_frames": {"num_frames": 8,
                                             "compression": {"codec": "gzip", "level": 4, "shuffle": False}}})
    cli = StageCLI("ingest", "doc", params_path=p)
    cli.add("--out", required=True)
    cfg, args = cli.parse(["--out", "m.csv", "--layout", "ffpp", "--split_fractions", "[0.8, 0.1, 0.1]"])
    assert args.out == "m.csv"
    assert cfg["layout"] == "ffpp" and cfg["root"] == "data/demo"
    assert cfg["split_fractions"] == [0.8, 0.1, 0.1]
    assert cfg["seed"] == 7 and cfg["sharding"]["num_shards"] == 2
    cfg, _ = StageCLI("sample_frames", "doc", params_path=p).parse(
        ["--compression.level", "1", "--compression.shuffle", "true"])
    assert cfg["compression"] == {"codec": "gzip", "level": 1, "shuffle": True}   # nested, typed


def test_help_lists_every_param(tmp_path, capsys):
    p = _params(tmp_path, {"ingest": {"layout": "generic", "probe": True}})
    cli = StageCLI("ingest", "Build the manifest.", params_path=p)
    with pytest.raises(SystemExit):
        cli.parse(["--help"])
    out = capsys.readouterr().out
    assert "--layout" in out and "--probe" in out and "Build the manifest." in out


def test_alternate_params_file(tmp_path):
    p = _params(tmp_path, {"ingest": {"root": "a"}})
    q = tmp_path / "other.yaml"
    q.write_text(yaml.safe_dump({"ingest": {"root": "b"}}))
    cfg, _ = StageCLI("ingest", "", params_path=p).parse(["--params", str(q)])
    assert cfg["root"] == "b"


def test_flatten_roundtrip():
    d = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}
    assert unflatten(flatten(d)) == d


def test_num_shards_validation():
    assert num_shards({"sharding": {"num_shards": 3, "shards": [0, 1, 2]}}) == 3
    with pytest.raises(ValueError, match="must be"):
        num_shards({"num_shards": 3, "shards": [0, 1]})
