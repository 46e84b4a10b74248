"""What the native stack needs before it starts anything, and the one command that provides each.

``up`` runs ``check`` first: a missing nginx, a PostgreSQL that does not answer or a taken port
stops it before any database is created or any process started, with the fix named.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack_config import StackSettings, port_is_free
from stack_process import StackError
from stack_services import find_tool

from hearteye.errors import first_line

INSTALL = "make install"
SYSTEM = "make system"


@dataclass(frozen=True)
class Missing:
    """One prerequisite that is not there, and the command that provides it."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what}: run `{self.fix}`"


def missing_prerequisites(settings: StackSettings) -> list[Missing]:
    """Every prerequisite of ``up`` that is not met (empty when the stack can start)."""
    missing = []
    tools = {"weed": INSTALL, "nginx": SYSTEM}
    if settings.serving_enabled:
        tools["gunicorn"] = INSTALL
    for name, fix in tools.items():
        if find_tool(name) is None:
            missing.append(Missing(f"{name} not found (virtualenv, PATH, /usr/sbin)", fix))
    problem = postgres_problem(settings.pg_admin_url)
    if problem is not None:
        missing.append(
            Missing(f"PostgreSQL: {problem}", f"{SYSTEM} (or set HEARTEYE_STACK_PG_ADMIN_URL)")
        )
    if not port_is_free(settings.http_port):
        missing.append(
            Missing(
                f"port {settings.http_port} (nginx's) is in use on 127.0.0.1",
                "HEARTEYE_HTTP_PORT=<a free port> make stack-up",
            )
        )
    return missing


def check(settings: StackSettings) -> None:
    """Raise a StackError naming every unmet prerequisite and its fix."""
    missing = missing_prerequisites(settings)
    if missing:
        lines = "\n".join(f"  - {m}" for m in missing)
        raise StackError(f"the native stack cannot start; nothing was started:\n{lines}")


def postgres_problem(admin_url: str) -> str | None:
    """Why the admin URL does not work (None: it connects and may create roles and databases)."""
    import psycopg2

    try:
        conn = psycopg2.connect(admin_url, connect_timeout=5)
    except psycopg2.Error as exc:
        return f"cannot connect with HEARTEYE_STACK_PG_ADMIN_URL ({first_line(exc)})"
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper OR (rolcreaterole AND rolcreatedb) FROM pg_roles "
                        "WHERE rolname = current_user")  # fmt: skip
            row = cur.fetchone()
    finally:
        conn.close()
    if not row or not row[0]:
        return "the admin role may not create roles and databases"
    return None
