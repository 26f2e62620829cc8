"""Every system program and data file the code uses is installed by the project's own files.

The code is read, not trusted: every absolute system path among the string constants of
``src/`` and ``stages/`` and every program started with ``subprocess`` (or looked up with
``shutil.which``) must be declared in ``dfdetect.system``; each declared item's owning Debian
package (``dpkg -S``) must be the declared one; and the Makefile's ``APT_PACKAGES`` must be
exactly the declared packages. A fresh machine then gets everything from ``make``.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dfdetect import system

REPO = Path(__file__).resolve().parents[1]
SYSTEM_ROOTS = ("/usr/", "/etc/", "/opt/", "/var/", "/lib/", "/bin/", "/sbin/")
SUBPROCESS_CALLS = {"run", "Popen", "check_output", "check_call", "call"}


def _sources() -> list[Path]:
    return sorted([*(REPO / "src").rglob("*.py"), *(REPO / "stages").rglob("*.py")])


def code_paths() -> dict[str, str]:
    """Absolute system paths among the code's string constants -> where they stand."""
    found: dict[str, str] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text.startswith(SYSTEM_ROOTS) and "\n" not in text and " " not in text:
                    found.setdefault(text, f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def _first_word(node: ast.AST, assigned: dict[str, ast.AST]) -> str | None:
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        head = node.elts[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value
    return None


def code_programs() -> dict[str, str]:
    """Programs the code starts -> where."""
    found: dict[str, str] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Module))]:
            assigned = {t.id: n.value for n in ast.walk(func) if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
            for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
                f = call.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                prog = None
                if name in SUBPROCESS_CALLS and isinstance(f, ast.Attribute) and call.args:
                    prog = _first_word(call.args[0], assigned)
                elif name in ("which", "_need") and call.args and isinstance(call.args[0], ast.Constant):
                    prog = call.args[0].value
                if isinstance(prog, str) and "/" not in prog and " " not in prog:
                    found.setdefault(prog, f"{path.relative_to(REPO)}:{call.lineno}")
    return found


def makefile_packages(text: str) -> set[str]:
    m = re.search(r"^APT_PACKAGES\s*:?=\s*(.*)$", text, re.M)
    assert m, "the Makefile has no APT_PACKAGES line"
    return set(m.group(1).split())


def package_problems(makefile_text: str) -> list[str]:
    """What makes the Makefile's package list differ from what the code needs."""
    listed = makefile_packages(makefile_text)
    need = set(system.packages())
    return ([f"{p} is needed (dfdetect.system) but not in APT_PACKAGES" for p in sorted(need - listed)]
            + [f"{p} is in APT_PACKAGES but not declared in dfdetect.system" for p in sorted(listed - need)])


def _owners(path: str) -> set[str]:
    real = os.path.realpath(path)
    proc = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
    if proc.returncode != 0:
        return set()
    owners = set()
    for line in proc.stdout.splitlines():
        pkgs, _, owned = line.partition(": ")
        if owned.strip() == real:
            owners |= {p.strip().split(":")[0] for p in pkgs.split(",")}
    return owners


def test_makefile_installs_exactly_the_declared_packages():
    assert package_problems((REPO / "Makefile").read_text()) == []


def test_guard_catches_a_package_removed_from_the_makefile():
    text = (REPO / "Makefile").read_text()
    for pkg in system.packages():
        cut = re.sub(rf"(^APT_PACKAGES\s*:?=.*?)\s{re.escape(pkg)}(?=\s|$)", r"\1", text, count=1, flags=re.M)
        assert cut != text
        assert any(pkg in p for p in package_problems(cut)), pkg


def test_every_system_path_in_the_code_is_declared():
    declared = list(system.DATA)
    missing = {p: where for p, where in code_paths().items()
               if not any(p == d or d.startswith(p.rstrip("/") + "/") or p.startswith(d.rstrip("/") + "/")
                          for d in declared)}
    assert not missing, f"system paths used by the code but not in dfdetect.system.DATA: {missing}"


def test_every_program_the_code_runs_is_declared():
    missing = {p: where for p, where in code_programs().items() if p not in system.PROGRAMS}
    assert not missing, f"programs run by the code but not in dfdetect.system.PROGRAMS: {missing}"


def test_scanner_sees_the_known_uses():
    # the scanners themselves must work: these uses are in the code today
    assert {"ffmpeg", "ffprobe", "espeak-ng", "sox"} <= set(code_programs())
    assert "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz" in code_paths()


def test_fortune_files_of_the_text_corpus_are_declared():
    """The offline text corpus reads Debian's fortune files (the audio demo no longer does):
    its folder's files are declared data."""
    from dfdetect.text.corpus import FORTUNES_DIR

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["text_model"]["corpus"]["source"] == "fortunes"
    declared = [k for k in system.DATA if k.startswith(f"{FORTUNES_DIR}/")]
    assert {"fortunes", "wisdom"} <= {k.rsplit("/", 1)[-1] for k in declared}


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system (no dpkg)")
@pytest.mark.parametrize("item", [*system.DATA, *system.PROGRAMS])
def test_declared_package_owns_the_item(item):
    path = item if item.startswith("/") else shutil.which(item)
    assert path and os.path.exists(path), (
        f"{item} is missing on this machine: `make doctor` names its package "
        f"({system.DATA.get(item) or system.PROGRAMS.get(item)})")
    pkg = system.DATA.get(item) or system.PROGRAMS[item]
    assert pkg in _owners(path), f"{item} ({os.path.realpath(path)}) is owned by {_owners(path)}, not {pkg}"


def test_doctor_names_a_missing_item_and_its_package(monkeypatch, capsys):
    monkeypatch.setitem(system.DATA, "/nonexistent/dfdetect/data.txt", "some-package")
    assert system.main() == 1
    err = capsys.readouterr().err
    assert "/nonexistent/dfdetect/data.txt" in err and "apt-get install some-package" in err
