"""PostgreSQL for the identity tests: the machine's server for ordinary tests, and throwaway
instances (initdb into a temporary directory, run as the ``postgres`` OS user when we are root)
for tests that stop and start the server."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.settings import SuiteSettings

PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))
DEFAULT_ADMIN_URL: str = SuiteSettings.model_fields["postgres_url"].default


def pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL server binary (they are not on PATH on Debian)."""
    for directory in PG_BIN_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    return shutil.which(name)


def reachable(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayPostgres:
    """A private PostgreSQL server in a temporary directory, on a free port."""

    def __init__(self) -> None:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("initdb/pg_ctl not found: install the PostgreSQL server package")
        self._initdb, self._pg_ctl = initdb, pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="hearteye-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self.running = False

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_postgres:  # the server refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}\n{log}")

    def init(self) -> ThrowawayPostgres:
        self.socket_dir.mkdir()
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            self._initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        return self

    def start(self) -> None:
        # fsync=off: the guarantees under test are the audit writer's, and the OS never crashes
        # here; with fsync on, crash recovery's checkpoint takes seconds on a busy disk.
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=100 -c fsync=off"
        )
        self._run(
            self._pg_ctl,
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clean) or ``immediate`` (like a crash: no checkpoint, sessions cut)."""
        self._run(self._pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def cleanup(self) -> None:
        if self.running:
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        try:
            self.init().start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


@dataclass(frozen=True)
class PgDatabase:
    """A uniquely named database with its own owner and application roles."""

    admin_url: str
    name: str
    owner_role: str
    app_role: str
    password: str

    def url_for(self, role: str) -> str:
        base = make_url(self.admin_url)
        return base.set(username=role, password=self.password, database=self.name).render_as_string(
            hide_password=False
        )

    @property
    def owner_url(self) -> str:
        return self.url_for(self.owner_role)

    @property
    def app_url(self) -> str:
        return self.url_for(self.app_role)


def admin_execute(admin_url: str, *statements: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def create_database(admin_url: str, prefix: str = "hearteye_test") -> PgDatabase:
    suffix = uuid.uuid4().hex[:10]
    database = PgDatabase(
        admin_url=admin_url,
        name=f"{prefix}_{suffix}",
        owner_role=f"he_owner_{suffix}",
        app_role=f"he_app_{suffix}",
        password=uuid.uuid4().hex,
    )
    admin_execute(
        admin_url,
        f"CREATE ROLE {database.owner_role} LOGIN PASSWORD '{database.password}'",
        f"CREATE ROLE {database.app_role} LOGIN PASSWORD '{database.password}'",
        f"CREATE DATABASE {database.name} OWNER {database.owner_role}",
    )
    return database


def drop_database(database: PgDatabase) -> None:
    admin_execute(
        database.admin_url,
        f"DROP DATABASE IF EXISTS {database.name} WITH (FORCE)",
        f"DROP ROLE IF EXISTS {database.app_role}",
        f"DROP ROLE IF EXISTS {database.owner_role}",
    )
