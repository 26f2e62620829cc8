"""Real servers on 127.0.0.1 for the sharing and scale-out tests and benchmarks.

- :class:`SSHServer`: an unprivileged-port OpenSSH daemon (Debian ``openssh-server``) with its
  own config file, a temporary host key and one authorized key, used as a DVC ``ssh://`` remote
  (``dvc-ssh``). It runs as the current user; only that user can log in, with the key.
- :class:`DaskCluster`: a ``dask scheduler`` and N ``dask worker`` processes (no nanny, so a
  worker's PID is the process that runs the tasks), for ``executor.backend: dask`` with
  ``executor.address`` set.

Both are context managers that stop their processes (by PID) and say why when they cannot start.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class ServerError(RuntimeError):
    """A server could not be started (the message says which program and why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_ed25519
AuthorizedKeysFile {dir}/authorized_keys
PidFile {dir}/sshd.pid
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowUsers {user}
Subsystem sftp internal-sftp
LogLevel ERROR
"""


class SSHServer:
    """``sshd -D -e -f <config>`` on 127.0.0.1:<port>, everything it needs in ``directory``.

    ``keyfile`` is the client's private key, ``url(path)`` the ``ssh://user@127.0.0.1:port/path``
    a DVC remote uses."""

    def __init__(self, directory: str | Path, port: int | None = None, start_timeout: float = 20.0):
        self.dir = Path(directory).resolve()
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.keyfile = self.dir / "client_ed25519"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    def url(self, path: str | Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}/{str(path).lstrip('/')}"

    def _keygen(self, path: Path) -> None:
        keygen = shutil.which("ssh-keygen")
        if keygen is None:
            raise ServerError("ssh-keygen not found: apt-get install openssh-client")
        proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dfdetect-test",
                               "-f", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ServerError(f"ssh-keygen failed for {path}: {proc.stderr.strip()}")

    def start(self) -> "SSHServer":
        sshd = SSHD        # absolute: sshd re-executes itself by its path
        if not os.access(sshd, os.X_OK):
            raise ServerError(f"{sshd} not found: apt-get install openssh-server")
        self.dir.mkdir(parents=True, exist_ok=True)
        for key in (self.dir / "host_ed25519", self.keyfile):
            if not key.exists():
                self._keygen(key)
        shutil.copyfile(self.keyfile.with_suffix(".pub"), self.dir / "authorized_keys")
        os.chmod(self.dir / "authorized_keys", 0o600)
        config = self.dir / "sshd_config"
        config.write_text(SSHD_CONFIG.format(port=self.port, dir=self.dir, user=self.user))
        if os.geteuid() == 0:       # privilege separation directory (systemd makes it at boot)
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise ServerError(f"sshd rejects {config}: {check.stderr.strip()}")
        log = open(self.dir / "sshd.log", "w")  # noqa: SIM115  (closed with the process)
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"sshd exited ({self.proc.returncode}): "
                                  f"{(self.dir / 'sshd.log').read_text().strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"sshd did not answer on 127.0.0.1:{self.port} within {self.start_timeout} s")

    def stop(self) -> None:
        _stop(self.proc)

    def __enter__(self) -> "SSHServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class DaskCluster:
    """A Dask scheduler and ``n_workers`` single-threaded workers on 127.0.0.1.

    ``address`` is the scheduler's ``tcp://127.0.0.1:<port>``; ``workers`` maps each worker's
    name (``w0``, ``w1``, ...) to its process. ``env`` is the workers' environment (they import
    the tasks' code, so ``PYTHONPATH`` must reach it)."""

    def __init__(self, directory: str | Path, n_workers: int = 2, env: dict | None = None,
                 start_timeout: float = 60.0):
        self.dir = Path(directory).resolve()
        self.n_workers = n_workers
        self.env = dict(os.environ if env is None else env)
        self.start_timeout = start_timeout
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.address = ""

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=self.env, cwd=self.dir)
        log.close()
        return proc

    def _check(self, name: str, proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            raise ServerError(f"dask {name} exited ({proc.returncode}): "
                              f"{(self.dir / f'{name}.log').read_text()[-2000:]}")

    def start(self) -> "DaskCluster":
        self.dir.mkdir(parents=True, exist_ok=True)
        sched_file = self.dir / "scheduler.json"
        sched_file.unlink(missing_ok=True)
        self.scheduler = self._spawn("scheduler", [
            "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
            "--no-dashboard", "--scheduler-file", str(sched_file)])
        deadline = time.monotonic() + self.start_timeout
        while not sched_file.exists() or not sched_file.read_text().strip():
            self._check("scheduler", self.scheduler)
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"dask scheduler wrote no {sched_file} in {self.start_timeout} s")
            time.sleep(0.05)
        self.address = json.loads(sched_file.read_text())["address"]
        for i in range(self.n_workers):
            name = f"w{i}"
            self.workers[name] = self._spawn(name, [
                "distributed.cli.dask_worker", self.address, "--name", name, "--nthreads", "1",
                "--no-nanny", "--no-dashboard", "--local-directory", str(self.dir / name)])
        from dask.distributed import Client  # noqa: PLC0415

        try:
            with Client(self.address, timeout=self.start_timeout) as client:
                while len(client.scheduler_info()["workers"]) < self.n_workers:
                    for name, proc in self.workers.items():
                        self._check(name, proc)
                    if time.monotonic() > deadline:
                        raise ServerError(f"{self.n_workers} dask workers did not join {self.address}")
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.workers.values():
            _stop(proc)
        _stop(self.scheduler)

    def __enter__(self) -> "DaskCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# what a working copy of the project needs to run its DAG (tests and benchmarks copy it to tmp)
PROJECT_FILES = ("src", "stages", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore",
                 "data/demo_source",   # make_demo's default source (a dep: README only)
                 "data/arad", "data/mst_checkpoint")   # train_mst / hyperspectral deps (README only)


def copy_project(repo: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy the files of :data:`PROJECT_FILES` of ``repo`` into ``dst`` (no caches, no data).
    Into an earlier copy (a resumed benchmark) each of those folders is replaced, so the copy
    holds what ``repo`` holds now and nothing else; everything else in ``dst`` is kept."""
    from pathlib import Path  # noqa: PLC0415

    repo, dst = Path(repo), Path(dst)
    for name in PROJECT_FILES:
        src = repo / name
        if src.is_dir():
            if (dst / name).is_dir():
                shutil.rmtree(dst / name)
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
