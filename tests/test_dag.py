"""dvc.yaml against the code: complete dependencies and one shard naming.

- Every project module a stage's script imports (transitively, function-level imports
  included) is covered by one of the stage's ``deps``, so editing code always reruns the stages
  that run it (a missing dep leaves stale results that DVC calls up to date).
- Shard files are named by ``dfdetect.store.shard_name`` in the code and ``shard-${item}`` in
  dvc.yaml; the two agree for any number of shards (a DAG of 12 shards runs shard 10).
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dfdetect.store import shard_name
from dfdetect.servers import copy_project

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def _dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imports(path: Path) -> set[Path]:
    """Project files imported by ``path`` (any depth of the file, not transitively)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = None
    if path.is_relative_to(SRC):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        pkg = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        if path.name == "__init__.py":
            pkg = parts[:-1]
    out: set[Path] = set()

    def add(modname: str) -> None:
        parts = modname.split(".")
        for i in range(1, len(parts) + 1):  # parent packages' __init__ run first
            f = _module_file(".".join(parts[:i]))
            if f is not None:
                out.add(f)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dfdetect":
                    add(alias.name)
                elif alias.name == "common" and path.parent.name == "stages":
                    out.add(path.parent / "common.py")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert pkg is not None, f"relative import outside the package in {path}"
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "dfdetect":
                continue
            add(mod)
            for alias in node.names:  # `from pkg import submodule`
                if _module_file(f"{mod}.{alias.name}") is not None:
                    add(f"{mod}.{alias.name}")
    return out


def project_files(script: Path) -> set[Path]:
    """``script`` and every project file it imports, transitively."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(_imports(f) - seen)
    return seen


def _inert(path: Path) -> bool:
    """An __init__.py with nothing but a docstring, imports and constants: its imports are
    followed, the file itself has no behaviour to depend on."""
    if path.name != "__init__.py":
        return False
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.List, ast.Tuple)):
            continue
        return False
    return True


def _stages(dvc: dict) -> dict[str, dict]:
    out = {}
    for name, st in dvc["stages"].items():
        out[name] = st["do"] if "do" in st else st
    return out


def uncovered(dvc: dict) -> dict[str, list[str]]:
    """stage -> project files its script imports that none of its deps covers."""
    problems: dict[str, list[str]] = {}
    for name, st in _stages(dvc).items():
        m = re.search(r"python\s+(stages/\S+\.py)", st["cmd"])
        assert m, f"{name}: cmd does not run a stages/ script: {st['cmd']}"
        script = REPO / m.group(1)
        deps = [str(d) for d in st.get("deps", []) if "${" not in str(d)]
        assert m.group(1) in deps, f"{name}: its own script {m.group(1)} is not a dep"
        missing = []
        for f in sorted(project_files(script)):
            rel = f.relative_to(REPO).as_posix()
            if _inert(f):
                continue
            if not any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps):
                missing.append(rel)
        if missing:
            problems[name] = missing
    return problems


def test_every_stage_depends_on_the_code_it_runs():
    assert uncovered(_dvc_yaml()) == {}


def test_dep_guard_catches_a_removed_dep():
    dvc = _dvc_yaml()
    for stage, dep in (("transcribe", "src/dfdetect/audio/whisper_engine.py"),
                       ("sample_frames", "stages/common.py")):
        broken = copy.deepcopy(dvc)
        st = broken["stages"][stage]
        st = st.get("do", st)
        assert dep in st["deps"], (stage, dep)
        st["deps"].remove(dep)
        assert dep in uncovered(broken).get(stage, []), (stage, dep)


def test_import_scanner_follows_function_level_and_relative_imports():
    files = {f.relative_to(REPO).as_posix() for f in project_files(REPO / "stages" / "train.py")}
    # the registry imports the built-in detectors lazily, inside a function
    assert "src/dfdetect/detectors/_builtin.py" in files
    assert "src/dfdetect/detectors/defakehop.py" in files
    assert "stages/common.py" in files


# ----------------------------------------------------------------------------- shard names
def _shard_templates(dvc: dict) -> list[str]:
    out = []
    for st in _stages(dvc).values():
        for entry in [*st.get("deps", []), *st.get("outs", [])]:
            path = entry if isinstance(entry, str) else next(iter(entry))
            if "shard-" in path:
                out.append(path)
    return out


def test_dvc_yaml_shard_paths_are_shard_name():
    templates = _shard_templates(_dvc_yaml())
    assert len(templates) >= 10
    for t in templates:
        stem = re.search(r"shard-(\$\{[^}]*\}|[^/.]*)", t).group(0)
        assert stem in ("shard-${item}", "shard-${item.shard}"), t
        var = stem[len("shard-"):]
        for n in (0, 9, 10, 63, 100):
            assert t.replace(var, str(n)).endswith(shard_name(n) + Path(t).suffix)


def _env(dst: Path) -> dict:
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=str(dst / "src"), DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    env.pop("DFDETECT_MEDIA", None)
    return env


def _run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.pipeline
def test_twelve_shards_run_shard_ten(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    dst = tmp_path / "proj"
    copy_project(REPO, dst)
    # a tiny generic dataset: one real clip copied under 40 names
    clip = tmp_path / "clip.mp4"
    _run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10:duration=0.5",
          "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(clip)], tmp_path, os.environ)
    root = dst / "data" / "bench"
    for i in range(40):
        d = root / ("real" if i % 2 == 0 else "fake") / f"id{i:02d}"
        d.mkdir(parents=True)
        shutil.copy(clip, d / "v.mp4")
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["sharding"] = {"num_shards": 12, "shards": list(range(12))}
    params["ingest"].update(layout="generic", root="data/bench", csv="", probe=False)
    params["sample_frames"]["num_frames"] = 2
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env(dst)
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], dst, env)
    _run(dvc + ["init", "-q"], dst, env)
    _run(["git", "add", "-A"], dst, env)
    _run(["git", "commit", "-qm", "init"], dst, env)
    names = _run(dvc + ["stage", "list", "--name-only"], dst, env).stdout.split()
    assert {"sample_frames@10", "sample_frames@11", "align_faces@11"} <= set(names)
    _run(dvc + ["repro", "-s", "ingest"], dst, env)
    manifests = sorted(p.name for p in (dst / "data" / "manifest").iterdir())
    assert manifests == sorted(f"{shard_name(i)}.csv" for i in range(12))
    _run(dvc + ["repro", "-s", "sample_frames@10"], dst, env)
    assert (dst / "data" / "frames" / f"{shard_name(10)}.h5").exists()


def test_set_detectors_are_the_video_detectors():
    from dfdetect.detectors.base import get

    v = yaml.safe_load((REPO / "dvc.yaml").read_text())["vars"]
    merged = {k: val for d in v for k, val in d.items()}
    video = {n for n in merged["train_inputs"] if get(n).manifest == "video"}
    assert set(merged["set_detectors"]) == video


def test_dvc_parses_yaml_with_the_c_parser():
    """DVC reads params.yaml once per stage for every status/repro (61 stages on the demo): with
    ruamel.yaml's pure-Python parser that was most of `dvc status`'s 9.4 s (4.1 s with the C one).
    ruamel.yaml.clib must stay installed (requirements/base.txt)."""
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__module__.startswith("ruamel.yaml.clib") or \
        "CParser" in YAML(typ="safe").Parser.__name__
