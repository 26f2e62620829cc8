"""dfdetect repro: DVC's stages side by side, the same lock and outputs as dvc repro."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dfdetect import repro
from dfdetect.cli import main as cli_main

# a diamond a -> (b, c) -> d and an independent e; each stage records when it ran
STAGE = textwrap.dedent("""
    import json, sys, time
    name, seconds = sys.argv[1], float(sys.argv[2])
    start = time.time()
    if name == open("fail.txt").read().strip():
        sys.exit("stage " + name + " fails on purpose")
    time.sleep(seconds)
    ins = [open(p).read() for p in sys.argv[3:]]
    open("out_" + name, "w").write(name + "(" + ",".join(ins) + ")")
    with open("times.jsonl", "a") as fh:
        fh.write(json.dumps({"stage": name, "start": start, "end": time.time()}) + "\\n")
""")
DEPS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}


def _project(root: Path, seconds: float = 1.5) -> Path:
    root.mkdir()
    (root / "stage.py").write_text(STAGE)
    (root / "fail.txt").write_text("")
    stages = {}
    for name, deps in DEPS.items():
        ins = [f"out_{d}" for d in deps]
        stages[name] = {"cmd": f"{sys.executable} stage.py {name} {seconds} {' '.join(ins)}",
                        "deps": ["stage.py", "fail.txt"] + ins, "outs": [f"out_{name}"]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True)
    return root


def _times(root: Path) -> dict[str, dict]:
    path = root / "times.jsonl"
    if not path.exists():
        return {}
    return {r["stage"]: r for r in map(json.loads, path.read_text().splitlines())}


def _dvc_status(root: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_select_runs_changed_stages_and_everything_below_them():
    p = repro.select(DEPS, changed={"c"})
    assert p.deps == {"c": set(), "d": {"c"}}
    assert p.unchanged == ["a", "b", "e"]
    p = repro.select(DEPS, changed={"a"})
    assert p.deps == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
    # targets: only they and what they depend on
    p = repro.select(DEPS, changed={"a", "e"}, targets=["b"])
    assert p.deps == {"a": set(), "b": {"a"}}
    assert p.unchanged == []
    assert repro.select(DEPS, changed=()).deps == {}
    with pytest.raises(ValueError, match="unknown stage.*zz"):
        repro.select(DEPS, changed=(), targets=["zz"])


def test_order_key_starts_the_longest_chain_first():
    graph = {"short": [], "long1": [], "long2": ["long1"], "long3": ["long2"]}
    key = repro.select(graph, changed=set(graph)).order_key()
    assert sorted(["short", "long1"], key=key) == ["long1", "short"]


def test_repro_runs_independent_stages_side_by_side_and_records_them_as_dvc_does(tmp_path, capsys):
    root = _project(tmp_path / "p")
    assert cli_main(["repro", "--cwd", str(root), "--jobs", "2"]) == 0
    t = _times(root)
    assert set(t) == set(DEPS)
    # the dependency order holds ...
    assert t["a"]["end"] <= min(t["b"]["start"], t["c"]["start"])
    assert max(t["b"]["end"], t["c"]["end"]) <= t["d"]["start"]
    # ... and two stages ran at once somewhere (b with c, or a with e)
    def overlap(x, y):
        return min(t[x]["end"], t[y]["end"]) > max(t[x]["start"], t[y]["start"])
    assert overlap("b", "c") or overlap("a", "e") or overlap("b", "e") or overlap("c", "e")
    assert (root / "out_d").read_text() == "d(b(a()),c(a()))"
    # every stage is in dvc.lock: plain dvc sees the pipeline up to date
    assert _dvc_status(root) == {}
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(DEPS)
    out = capsys.readouterr().out
    assert "5 stage(s) run, 0 unchanged, 2 at a time" in out
    assert (root / ".dvc" / "tmp" / "repro-logs" / "d.log").is_file()

    # nothing changed: nothing is started
    assert cli_main(["repro", "--cwd", str(root)]) == 0
    assert "every stage is up to date" in capsys.readouterr().out
    assert len((root / "times.jsonl").read_text().splitlines()) == 5


def test_repro_stops_at_a_failed_stage_and_names_it(tmp_path, capsys):
    root = _project(tmp_path / "p", seconds=0.2)
    (root / "fail.txt").write_text("c\n")
    assert cli_main(["repro", "--cwd", str(root), "--jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAILED   c" in out and "stage c fails on purpose" in out
    assert "1 stage(s) failed (c)" in out
    t = _times(root)
    assert "c" not in t and "d" not in t      # d waits for c: never started
    # what finished before the failure is recorded and kept
    status = _dvc_status(root)
    assert "c" in status and "a" not in status
    # fixed: the rerun runs what is left (c and d), not the finished stages
    (root / "fail.txt").write_text("")
    before = set(t)
    assert cli_main(["repro", "--cwd", str(root), "--jobs", "2"]) == 0
    # fail.txt is a dep of every stage: all rerun, but only c and d had no record before
    assert {"c", "d"} <= set(_times(root)) and {"c", "d"}.isdisjoint(before)
    assert _dvc_status(root) == {}


def test_repro_bad_arguments_exit_2(tmp_path, capsys):
    root = _project(tmp_path / "p")
    assert cli_main(["repro", "--cwd", str(root), "nosuchstage"]) == 2
    assert "unknown stage(s): nosuchstage" in capsys.readouterr().err
    assert cli_main(["repro", "--cwd", str(root), "--jobs", "-1"]) == 2
    assert cli_main(["repro", "--cwd", str(root), "--jobs", "0"]) == 2     # not "the default"
    assert not (root / "times.jsonl").exists()
    capsys.readouterr()
    assert cli_main(["repro", "--cwd", str(tmp_path)]) == 2     # no DVC project there
    err = capsys.readouterr().err
    assert err.startswith(f"dfdetect repro: {tmp_path}: ") and len(err.strip().splitlines()) == 1
