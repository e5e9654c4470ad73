"""A throwaway PostgreSQL server for tests and benchmarks: Debian's PostgreSQL binaries, a fresh
cluster in a temp directory, loopback TCP on a free port, trust authentication.

Owns: initdb, start, readiness, database creation and stop. Must not be used for anything but
tests and benchmarks (trust auth, fsync off).

PostgreSQL refuses to run as root; under root (CI) the cluster is owned by and run as the
``postgres`` system user that Debian's package creates (``runuser``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

READY_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (`make install` installs Debian's package)."""


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``postgres`` and ``initdb``.

    Raises:
        PostgresUnavailable: none installed.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if not found:
        raise PostgresUnavailable("PostgreSQL server binaries not found under /usr/lib/postgresql;"
                                  " run `make install` (installs Debian's postgresql package)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in `workdir`, listening on 127.0.0.1:`port`.

    Usage: ``pg = PostgresServer(tmp); pg.start(); url = pg.create_database("relayer");
    ...; pg.stop()``.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self._own_dir = False
        if os.geteuid() == 0 and not _traversable_by_others(Path(workdir)):
            # pytest's temp dirs are 0700 root: the postgres user could not reach them.
            workdir, self._own_dir = Path(tempfile.mkdtemp(prefix="ferry-pg-")), True
        self.workdir = Path(workdir)
        self.datadir = self.workdir / "data"
        self.logfile = self.workdir / "postgres.log"
        self.port = port or _free_port()
        self.bindir = find_bindir()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable("running as root and no 'postgres' user") from exc
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def start(self) -> None:
        """initdb (first time) and start the server; wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            shutil.chown(self.workdir, "postgres", "postgres")
            os.chmod(self.workdir, 0o700)
        if not (self.datadir / "PG_VERSION").exists():
            subprocess.run([*self._as_user, str(self.bindir / "initdb"), "-D", str(self.datadir),
                            "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                           check=True, capture_output=True)
        log = open(self.logfile, "ab")  # noqa: SIM115 - kept open for the server's lifetime
        if self._as_user:
            shutil.chown(self.logfile, "postgres", "postgres")
        self.proc = subprocess.Popen(
            [*self._as_user, str(self.bindir / "postgres"), "-D", str(self.datadir),
             "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.workdir),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=128MB"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(READY_TIMEOUT_S)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_tail()}")
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready in {timeout_s}s: {self.log_tail()}")
                time.sleep(0.1)

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of `database`."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create (or recreate, empty) database `name`; return its SQLAlchemy URL."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _traversable_by_others(path: Path) -> bool:
    """True if every existing ancestor of `path` lets other users through (o+x)."""
    for p in [path, *path.parents]:
        if p.exists() and not p.stat().st_mode & 0o001:
            return False
    return True
