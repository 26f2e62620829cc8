"""System programs and data files the pipeline needs, and the Debian package of each.

This is the project's one list of what ``pip`` cannot install. The Makefile's ``APT_PACKAGES``
installs these packages; ``make doctor`` (run by ``make demo`` and ``make test`` before any
long work) runs this file and names every missing item with the package that provides it;
``tests/test_system_deps.py`` finds every absolute path and every program the library and the
stages use, and fails unless each is listed here and its package is in ``APT_PACKAGES``.

Standard library only: ``python3 src/dfdetect/system.py`` works before the venv exists.
"""

from __future__ import annotations

import os
import shutil
import sys

# programs run with subprocess (openai-whisper also runs ffmpeg to read audio)
PROGRAMS: dict[str, str] = {
    "ffmpeg": "ffmpeg",
    "ffprobe": "ffmpeg",
    "espeak-ng": "espeak-ng",
    "sox": "sox",
    "chromium": "chromium",   # headless check of predict's HTML page (tests/test_predict.py)
    "ssh-keygen": "openssh-client",  # keys of the test/benchmark SSH remote (dfdetect.servers)
}

# data files, folders and absolute program paths read from the system (audio/text demos, sshd)
DATA: dict[str, str] = {
    "/usr/share/asterisk/sounds/en": "asterisk-core-sounds-en-wav",         # real speech (prompts)
    "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz": "asterisk-core-sounds-en",  # their transcripts
    "/usr/share/pocketsphinx/test/data": "pocketsphinx-testdata",           # LibriVox utterances
    "/usr/share/games/fortunes/fortunes": "fortunes-min",                   # attributed quotations
    "/usr/share/games/fortunes/wisdom": "fortunes",
    "/usr/sbin/sshd": "openssh-server",   # the test/benchmark DVC remote (dfdetect.servers; not on a user's PATH)
}


def packages() -> list[str]:
    """Every Debian package the project needs, sorted."""
    return sorted(set(PROGRAMS.values()) | set(DATA.values()))


def missing() -> list[tuple[str, str]]:
    """``(what, package)`` for every program or data file that is not on this machine."""
    out = [(f"program {name}", pkg) for name, pkg in PROGRAMS.items() if shutil.which(name) is None]
    out += [(f"file {path}", pkg) for path, pkg in DATA.items() if not os.path.exists(path)]
    return out


def python_problems() -> list[str]:
    """What the interpreter running this lacks to build the venv (version, ensurepip)."""
    problems = []
    if sys.version_info < (3, 10):
        problems.append(f"Python >= 3.10 is needed, this is {sys.version.split()[0]} ({sys.executable})")
    try:
        import ensurepip  # noqa: F401,PLC0415
    except ImportError:
        problems.append(f"{sys.executable} has no ensurepip/venv support: apt-get install python3-venv")
    return problems


def main() -> int:
    gaps = missing()
    problems = python_problems()
    for what, pkg in gaps:
        print(f"doctor: missing {what}: apt-get install {pkg}", file=sys.stderr)
    for line in problems:
        print(f"doctor: {line}", file=sys.stderr)
    if gaps or problems:
        pkgs = " ".join(sorted({pkg for _, pkg in gaps}))
        if pkgs:
            print(f"doctor: install them with: sudo apt-get install --no-install-recommends {pkgs}",
                  file=sys.stderr)
        return 1
    print(f"doctor: all {len(PROGRAMS)} programs and {len(DATA)} data files present "
          f"({', '.join(packages())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
