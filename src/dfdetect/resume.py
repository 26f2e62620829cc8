"""Resumable shards: an interrupted per-item shard stage reuses the items it had finished.

A per-item stage (sample_frames, align_faces, extract_audio, hyperspectral) keeps, while it runs,
a *resume folder* beside its output ``<dir>/<name>``::

    <dir>/.<name>.resume-<fingerprint[:16]>.tmp/
        fingerprint.json    what the records were made with (stage, params, inputs, code)
        lock                flock'ed by the run that owns the folder
        items/<hash>.rec    one record per finished item: sha256 + pickle of its result or error
        spill/              spill files of long videos (records point at them)

``fingerprint`` = sha256 of the stage name, its params (JSON, sorted keys), the identity of its
input files (path, size, mtime in ns) and the source of the ``dfdetect`` package. Each record is
named after the item's own key (e.g. a video's id, path, size and mtime), so a changed item is
recomputed even when the rest of the shard is reused. A record is trusted only if its sha256
matches (and those of the spill files it points at): a truncated or corrupt record is
recomputed. Results are yielded in input order whether reused or computed, so the shard is
written by the same calls and is byte-identical to an uninterrupted run's. The folder is
removed once the shard is in place; a resume folder of the same output with another
fingerprint (other params, inputs or code) is removed when a run starts.

The folder is not a pid-named temporary (``store.remove_stale_temporaries`` never touches it)
and it is not a DVC out: ``dvc repro`` deletes the stage's declared outs before running it, not
their siblings, so resuming works under ``dvc repro`` as well as by rerunning the stage.

Concurrency: the run owning a folder holds an exclusive ``flock`` on its ``lock`` file (released
by the kernel whatever kills the process). A second run of the same shard with the same
fingerprint on the same machine stops at once with :class:`ResumeBusy`; a run never deletes a
folder whose lock is held. Locks are per machine, like the pid-named temporaries: one shard must
not be written by two hosts at once.

Fault injection for the tests: ``DFDETECT_RESUME_KILL=saved:<n>`` makes the run SIGKILL itself
right after saving its n-th record of this attempt (``saved:0``: once the folder is set up, before
any item); ``DFDETECT_RESUME_KILL=assembled`` after the last item was handed to the writer, before
the shard is renamed into place. Unset, nothing happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .store import Spilled, _json_default, file_sha256

log = logging.getLogger("dfdetect")
FORMAT = "dfdetect-resume/1"
KILL_ENV = "DFDETECT_RESUME_KILL"
_PKG = Path(__file__).resolve().parent


class ResumeBusy(RuntimeError):
    """Another live run owns this shard's resume folder."""


def _resume_pattern(name: str) -> "re.Pattern[str]":
    return re.compile(rf"^\.{re.escape(name)}\.resume-([0-9a-f]+)\.tmp$")


def file_identity(path: str | Path) -> list:
    """``[path, size, mtime_ns]`` of a file, ``[path, None, None]`` when it does not exist."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return [str(p), None, None]
    return [str(p), int(st.st_size), int(st.st_mtime_ns)]


_CODE: str | None = None


def code_version() -> str:
    """sha256 of every ``.py`` file of the dfdetect package (a code change discards records)."""
    global _CODE
    if _CODE is None:
        h = hashlib.sha256()
        for f in sorted(_PKG.rglob("*.py")):
            h.update(str(f.relative_to(_PKG)).encode() + b"\0" + f.read_bytes() + b"\0")
        _CODE = h.hexdigest()
    return _CODE


def fingerprint(stage: str, params: Mapping[str, Any], inputs: Iterable[str | Path]) -> dict:
    return {"format": FORMAT, "stage": stage,
            "params": json.loads(json.dumps(dict(params), sort_keys=True, default=_json_default)),
            "inputs": [file_identity(p) for p in inputs], "code": code_version()}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()




def _spilled(obj: Any) -> list[Spilled]:
    if isinstance(obj, Spilled):
        return [obj]
    if isinstance(obj, Mapping):
        return [s for v in obj.values() for s in _spilled(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in _spilled(v)]
    return []


def _try_lock(path: Path):
    """An open file holding an exclusive flock on ``path``, or None when another holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _kill_point(spec: str) -> None:
    if os.environ.get(KILL_ENV) == spec:
        log.warning("resume: %s=%s: killing this process (SIGKILL)", KILL_ENV, spec)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


class ResumableShard:
    """The resume folder of one shard output, for one run (a context manager).

    >>> with ResumableShard(out, "sample_frames", params, inputs=[manifest]) as rs:
    ...     with ShardWriter(out, ...) as w:
    ...         for item, result, error in rs.imap(fn, items, key=..., executor=...):
    ...             w.add_video(...)

    On a clean exit (the shard is in place) the folder is removed; on any exception, a signal
    or a kill it stays for the next run. ``reused`` / ``computed``: items of this run taken
    from records / recomputed; ``discarded``: records that could not be trusted.
    """

    def __init__(self, out_path: str | Path, stage: str, params: Mapping[str, Any],
                 inputs: Iterable[str | Path] = ()):
        self.out_path = Path(out_path)
        self.stage = stage
        self.fingerprint = fingerprint(stage, params, inputs)
        self.digest = _digest(self.fingerprint)
        self.dir = self.out_path.parent / f".{self.out_path.name}.resume-{self.digest[:16]}.tmp"
        self.reused = 0
        self.computed = 0
        self.discarded = 0
        self._saved = 0
        self._lock: int | None = None

    # ------------------------------------------------------------------ folder lifetime
    @property
    def items_dir(self) -> Path:
        return self.dir / "items"

    @property
    def spill_dir(self) -> Path:
        return self.dir / "spill"

    def __enter__(self) -> "ResumableShard":
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.remove_other_fingerprints()
        for _attempt in range(3):   # a concurrent cleanup may remove the folder under us
            self.dir.mkdir(exist_ok=True)
            fd = _try_lock(self.dir / "lock")
            if fd is None and (self.dir / "lock").exists():
                raise ResumeBusy(f"{self.out_path}: another run is writing this shard with the same "
                                 f"params and inputs (it holds {self.dir / 'lock'}); not started")
            if fd is not None and self.dir.is_dir():
                break
            if fd is not None:
                os.close(fd)
        else:
            raise ResumeBusy(f"{self.out_path}: could not lock {self.dir}")
        self._lock = fd
        fp_file = self.dir / "fingerprint.json"
        try:
            same = json.loads(fp_file.read_text()) == self.fingerprint
        except (OSError, ValueError):
            same = False
        if not same:   # a new folder, or one whose record of what made it is damaged: start over
            if self.items_dir.exists() and any(self.items_dir.iterdir()):
                log.warning("resume: %s: fingerprint record missing or different; "
                            "discarding its items", self.dir)
            shutil.rmtree(self.items_dir, ignore_errors=True)
            shutil.rmtree(self.spill_dir, ignore_errors=True)
            _write_atomic(fp_file, json.dumps(self.fingerprint, indent=1, sort_keys=True).encode())
        self.items_dir.mkdir(exist_ok=True)
        self.spill_dir.mkdir(exist_ok=True)
        _kill_point("saved:0")
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:
                log.info("resume: %s kept (%d finished items) for the next run", self.dir,
                         self._count())
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None
        return False

    def _count(self) -> int:
        return sum(1 for _ in self.items_dir.glob("*.rec")) if self.items_dir.is_dir() else 0

    def remove_other_fingerprints(self) -> list[Path]:
        """Delete this output's resume folders of other fingerprints (unless a live run holds
        them); returns what was removed."""
        pattern = _resume_pattern(self.out_path.name)
        removed = []
        if not self.out_path.parent.is_dir():
            return removed
        for entry in sorted(self.out_path.parent.iterdir()):
            m = pattern.match(entry.name)
            if not m or entry == self.dir or not entry.is_dir():
                continue
            fd = _try_lock(entry / "lock")
            if fd is None and (entry / "lock").exists():
                log.info("resume: %s is held by a live run; kept", entry)
                continue
            try:
                shutil.rmtree(entry, ignore_errors=True)
            finally:
                if fd is not None:
                    os.close(fd)
            removed.append(entry)
            log.info("resume: removed %s (made with other params, inputs or code)", entry)
        return removed

    # ------------------------------------------------------------------ records
    def _record_path(self, key: Any) -> Path:
        return self.items_dir / f"{_digest([self.digest, key])[:32]}.rec"

    def load(self, key: Any) -> tuple[bool, Any]:
        """``(True, value)`` of a trusted record of ``key``, else ``(False, None)`` (a damaged
        record is deleted)."""
        path = self._record_path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False, None
        try:
            head, payload = data.split(b"\n", 1)
            if hashlib.sha256(payload).hexdigest().encode() != head:
                raise ValueError("checksum mismatch (truncated or corrupt)")
            rec = pickle.loads(payload)
            if rec.get("key") != json.loads(json.dumps(key, default=_json_default)):
                raise ValueError("record of another item")
            for sp, sha in zip(_spilled(rec["value"]), rec["spill_sha"]):
                if not os.path.isfile(sp.path) or file_sha256(sp.path) != sha:
                    raise ValueError(f"spill file {sp.path} missing or changed")
        except Exception as err:  # noqa: BLE001  (an untrusted record is recomputed)
            log.warning("resume: %s: record %s not trusted (%s); recomputing the item",
                        self.out_path, path.name, err)
            self.discarded += 1
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return False, None
        return True, rec["value"]

    def save(self, key: Any, value: Any) -> bool:
        """Record ``value`` (plain data: arrays, dicts, exceptions, Spilled/Encoded fields) for
        ``key``; a value that cannot be pickled is not recorded (recomputed next time)."""
        spills = _spilled(value)
        try:
            payload = pickle.dumps({"key": json.loads(json.dumps(key, default=_json_default)),
                                    "value": value, "spill_sha": [file_sha256(s.path) for s in spills]},
                                   protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001
            log.info("resume: %s: item %r not recorded (%s)", self.out_path, key, err)
            return False
        _write_atomic(self._record_path(key),
                      hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        self._saved += 1
        _kill_point(f"saved:{self._saved}")
        return True

    # ------------------------------------------------------------------ the map
    def imap(self, fn: Callable[[Any], Any], items: Sequence[Any], key: Callable[[Any], Any],
             **imap_kwargs) -> Iterator[tuple[Any, Any, BaseException | None]]:
        """:func:`dfdetect.parallel.imap` over the items without a trusted record; yields
        ``(item, result, error)`` for every item in input order, reused or computed (each
        computed one is recorded before it is yielded)."""
        from .parallel import imap  # noqa: PLC0415

        items = list(items)
        keys = [key(it) for it in items]
        # which records are trusted: checked one at a time and dropped (memory stays flat);
        # each is loaded again when its turn comes
        trusted = [self.load(k)[0] for k in keys]
        todo = [it for it, ok in zip(items, trusted) if not ok]
        n_reused = len(items) - len(todo)
        if n_reused or self.discarded:
            log.info("resume: %s: reusing %d of %d items from %s (%d untrusted records "
                     "discarded)", self.out_path, n_reused, len(items), self.dir, self.discarded)
        computed = imap(fn, todo, **imap_kwargs)
        try:
            for it, k, ok in zip(items, keys, trusted):
                value = self.load(k) if ok else (False, None)
                if value[0]:
                    self.reused += 1
                    res, err = value[1]
                elif ok:   # damaged since the check: computed here, in this process
                    res, err = _call(fn, it)
                    self.save(k, (res, err))
                    self.computed += 1
                else:
                    _item, res, err = next(computed)
                    self.save(k, (res, err))
                    self.computed += 1
                yield it, res, err
            _kill_point("assembled")
        finally:
            computed.close()
        log.info("resume: %s: %d items reused, %d computed", self.out_path, self.reused, self.computed)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[Any, BaseException | None]:
    try:
        return fn(item), None
    except Exception as err:  # noqa: BLE001  (recorded by the caller, as imap does)
        return None, err
