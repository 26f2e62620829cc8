"""``dfdetect repro``: ``dvc repro`` with independent stages run side by side.

``dvc repro`` runs one stage at a time. DVC itself supports running independent arms of a
pipeline from separate ``dvc repro`` processes (https://dvc.org/doc/command-reference/repro,
"Parallel stage execution"): each process releases the repository lock while its command runs
and takes read locks on its deps and write locks on its outs, and ``dvc.lock`` is merged, never
overwritten, when a stage is recorded. This module is only the scheduler DVC leaves to the user:

1. one ``dvc status`` names the changed stages; they and every stage downstream of them are
   the work (a downstream stage whose deps turn out unchanged is skipped by DVC in about a
   second);
2. stages run as ``dvc --wait-for-lock repro --single-item <stage>`` subprocesses, at most
   ``jobs`` at a time, each started as soon as every stage it depends on has finished, longest
   remaining path first (:class:`graphlib.TopologicalSorter` holds the order);
3. each stage's output goes to ``<logs>/<stage>.log``; a failed stage stops new starts, the
   running ones finish, its log's tail is printed and the exit status is 1.

The cached outputs are the ones ``dvc repro`` writes: each stage's bytes depend on its deps and
params only (the thread counts of the expensive caches are params, README "Determinism"), never
on what runs beside it. The stage graph is DVC's own (``Repo.index.graph``).
"""

from __future__ import annotations

import contextlib
import graphlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

__all__ = ["Plan", "plan", "run", "main"]

LOG_TAIL_LINES = 30


@dataclass
class Plan:
    """The stages to run (``deps[stage]``: the stages among them it waits for) and those skipped."""

    deps: dict[str, set[str]]
    unchanged: list[str] = field(default_factory=list)

    def order_key(self) -> Callable[[str], int]:
        """Longest chain of waiting stages below each stage (more = start sooner)."""
        users: dict[str, set[str]] = {s: set() for s in self.deps}
        for s, ds in self.deps.items():
            for d in ds:
                users[d].add(s)
        depth: dict[str, int] = {}

        def below(s: str) -> int:
            if s not in depth:
                depth[s] = 1 + max((below(u) for u in users[s]), default=0)
            return depth[s]

        return lambda s: -below(s)


def select(graph: Mapping[str, Iterable[str]], changed: Iterable[str],
           targets: Iterable[str] | None = None) -> Plan:
    """The plan from a stage graph (``graph[stage]``: the stages it depends on) and the changed stages.

    With ``targets``, only they and their upstream stages are considered (as ``dvc repro T``).
    """
    graph = {s: set(ds) for s, ds in graph.items()}
    for s, ds in graph.items():
        unknown = ds - graph.keys()
        if unknown:
            raise ValueError(f"stage {s} depends on unknown stage(s) {sorted(unknown)}")
    scope = set(graph)
    if targets:
        targets = list(targets)
        missing = [t for t in targets if t not in graph]
        if missing:
            raise ValueError(f"unknown stage(s): {', '.join(missing)}; stages: {', '.join(sorted(graph))}")
        scope = set()
        todo = list(targets)
        while todo:
            s = todo.pop()
            if s not in scope:
                scope.add(s)
                todo.extend(graph[s])
    # a stage runs when it changed or any stage it depends on runs
    runs: dict[str, bool] = {}
    changed = set(changed)

    def must_run(s: str) -> bool:
        if s not in runs:
            runs[s] = s in changed or any(must_run(d) for d in graph[s])
        return runs[s]

    work = {s for s in scope if must_run(s)}
    return Plan(deps={s: graph[s] & work for s in sorted(work)},
                unchanged=sorted(scope - work))


def plan(root: Path, targets: Iterable[str] | None = None) -> Plan:
    """The plan of the DVC project at ``root`` (DVC's stage graph and ``dvc status``)."""
    from dvc.repo import Repo  # noqa: PLC0415  (heavy; only here)

    with contextlib.chdir(root):   # stage addresses are relative to the working directory
        return _plan(Repo(str(root)), targets)


def _plan(repo, targets: Iterable[str] | None) -> Plan:
    try:
        graph = {s.addressing: [d.addressing for d in repo.index.graph.successors(s)]
                 for s in repo.index.graph.nodes if not s.is_data_source}
        # only pipeline stages take part; .dvc-tracked data is checked by DVC in each stage
        graph = {s: [d for d in ds if d in graph] for s, ds in graph.items()}
        targets = list(targets) if targets else None
        select(graph, (), targets)   # unknown targets: ValueError before any status work
        changed = set(repo.status(targets=targets, with_deps=bool(targets)))
    finally:
        repo.close()
    return select(graph, changed, targets)


def _tail(path: Path, n: int = LOG_TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        return f"(log {path} unreadable: {err})"
    return "\n".join(lines[-n:])


def _log_path(logs: Path, stage: str) -> Path:
    return logs / (stage.replace("/", "_") + ".log")


def _stage_command(stage: str) -> list[str]:
    return [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", stage]


def run(the_plan: Plan, *, root: Path, jobs: int, logs: Path,
        command: Callable[[str], list[str]] = _stage_command,
        echo: Callable[[str], None] = print) -> int:
    """Run the plan's stages, at most ``jobs`` at a time; 0 when every stage succeeded, else 1."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    logs.mkdir(parents=True, exist_ok=True)
    sorter = graphlib.TopologicalSorter(the_plan.deps)
    sorter.prepare()
    key = the_plan.order_key()
    total = len(the_plan.deps)
    ready: list[str] = []
    running: dict[str, tuple[subprocess.Popen, float, object]] = {}
    failed: list[str] = []
    done = 0
    t0 = time.monotonic()
    try:
        while True:
            if not failed:
                ready.extend(sorter.get_ready())
                ready.sort(key=key)
                while ready and len(running) < jobs:
                    stage = ready.pop(0)
                    fh = open(_log_path(logs, stage), "wb")  # noqa: SIM115  (closed when the stage ends)
                    proc = subprocess.Popen(command(stage), cwd=root, stdout=fh,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                    running[stage] = (proc, time.monotonic(), fh)
                    echo(f"[{done}/{total}] started  {stage}")
            if not running:
                break
            time.sleep(0.05)
            for stage, (proc, start, fh) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                fh.close()
                del running[stage]
                done += 1
                took = time.monotonic() - start
                if rc == 0:
                    sorter.done(stage)
                    echo(f"[{done}/{total}] finished {stage} in {took:.1f} s")
                else:
                    failed.append(stage)
                    log_file = _log_path(logs, stage)
                    echo(f"[{done}/{total}] FAILED   {stage} (exit {rc}) after {took:.1f} s; "
                         f"log {log_file}, last lines:\n{_tail(log_file)}")
    finally:
        for proc, _, fh in running.values():   # interrupted: let DVC stop its stage cleanly
            proc.wait()
            fh.close()
    wall = time.monotonic() - t0
    if failed:
        left = total - done
        echo(f"dfdetect repro: {len(failed)} stage(s) failed ({', '.join(failed)}); "
             f"{left} not run; {wall:.0f} s")
        return 1
    echo(f"dfdetect repro: {total} stage(s) run, {len(the_plan.unchanged)} unchanged, "
         f"{jobs} at a time, {wall:.0f} s")
    return 0


def main(args) -> int:
    root = Path(args.cwd).resolve()
    jobs = args.jobs if args.jobs is not None else min(4, os.cpu_count() or 1)
    if jobs < 1:
        print(f"dfdetect repro: --jobs must be >= 1, got {jobs}", file=sys.stderr)
        return 2
    from dvc.exceptions import DvcException  # noqa: PLC0415

    try:
        the_plan = plan(root, args.targets or None)
    except (ValueError, DvcException) as err:   # unknown stage, not a DVC project, bad dvc.yaml
        print(f"dfdetect repro: {root}: {err}", file=sys.stderr)
        return 2
    if not the_plan.deps:
        print("dfdetect repro: every stage is up to date")
        return 0
    logs = Path(args.logs) if args.logs else root / ".dvc" / "tmp" / "repro-logs"
    try:
        return run(the_plan, root=root, jobs=jobs, logs=logs)
    except KeyboardInterrupt:   # the running stages got the signal too; DVC stopped them
        print("dfdetect repro: interrupted; finished stages are recorded in dvc.lock, "
              "the rest runs on the next call", file=sys.stderr)
        return 130
