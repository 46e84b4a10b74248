"""What a native stack is: its settings (from flags and environment), and its resolved plan.

The plan (ports, database names, credentials, the processes started) is written to
``<state dir>/stack.json`` as soon as it exists, so ``down`` can always undo a partial ``up``;
``stack.env`` is the same information as environment variables for people, tests and clients.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shlex
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hearteye_platform.deployment import DeploymentSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAN_FILE = "stack.json"
ENV_FILE = "stack.env"
SERVING_CONFIG = REPO_ROOT / "serving" / "gunicorn.conf.py"


class NativeStackSettings(BaseSettings):
    """The native stack's own variables (``HEARTEYE_STACK_*``, the environment only). Those it
    shares with compose (``HEARTEYE_HTTP_PORT``, ``HEARTEYE_PUBLIC_HOST``, ``HEARTEYE_S3_BUCKET``,
    MLflow's admin and Flask key) are ``DeploymentSettings``' fields."""

    model_config = SettingsConfigDict(env_prefix="HEARTEYE_STACK_", extra="ignore", frozen=True)

    dir: Path = Field(
        default=Path(".stack"),
        description="State, logs, data and stack.env of the stack (one stack per directory).",
    )
    serving: Literal["on", "off", "auto"] = Field(
        default="auto",
        description="The serving tier: on, off, or auto (on when serving/gunicorn.conf.py exists).",
    )
    serving_instances: int = Field(
        default=2, ge=1, le=16, description="Serving instances (Gunicorn masters), own ports."
    )
    pg_admin_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="A PostgreSQL superuser's URL: the stack creates its roles and databases "
        "with it and drops them at `down`.",
    )
    timeout_s: float = Field(
        default=90.0,
        gt=0.0,
        description="How long each service may take to become healthy (a loaded machine needs "
        "more).",
    )


class StackEnvironment(BaseSettings):
    """What ``stack.env`` (``StackPlan.environment``) tells people, tests and clients about a
    running stack, besides the variables they read under their own names (``MLFLOW_TRACKING_*``,
    ``HEARTEYE_DATABASE_URL``, ``HEARTEYE_DATABASE_OWNER_URL``, ``HEARTEYE_JWT_SECRET``,
    ``HEARTEYE_HTTP_PORT``); ``StackEnvironment()`` reads them back from a shell that sourced it."""

    model_config = SettingsConfigDict(
        env_prefix="HEARTEYE_STACK_", extra="ignore", frozen=True, populate_by_name=True
    )

    url: str = Field(
        default="http://127.0.0.1:8080",
        validation_alias="HEARTEYE_URL",
        description="The stack's public entry (nginx).",
    )
    name: str = Field(default="", description="The stack's name (its databases' prefix).")
    mlflow_direct_uri: str = Field(default="", description="mlflow server, bypassing nginx.")
    reader_username: str = Field(default="reader", description="MLflow's read-only user.")
    reader_password: str = Field(default="", description="Its password.")
    serving_username: str = Field(default="serving", description="The serving tier's user.")
    serving_password: str = Field(default="", description="Its password.")
    serving_urls: str = Field(
        default="", description="Each serving instance's own URL, comma-separated."
    )
    mlflow_database_url: str = Field(default="", description="MLflow's store (owner role).")
    auth_database_url: str = Field(default="", description="MLflow's auth database.")
    s3_endpoint: str = Field(default="", description="The S3 server (SeaweedFS).")
    s3_bucket: str = Field(default="mlflow", description="MLflow's artifact bucket.")
    s3_access_key: str = Field(default="", description="The S3 admin identity's key.")
    s3_secret_key: str = Field(default="", description="Its secret.")
    prometheus_url: str = Field(
        default="", description="The stack's Prometheus (when Debian's prometheus is installed)."
    )


@dataclass(frozen=True)
class StackSettings:
    """Inputs of ``up``; each has a flag and an environment variable (see ``hearteye_stack.py``)."""

    state_dir: Path
    http_port: int = 8080
    public_host: str = "localhost"
    serving: str = "auto"  # "on", "off", or "auto" (on when serving/gunicorn.conf.py exists)
    serving_instances: int = 2
    pg_admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    bucket: str = "mlflow"
    admin_username: str = "admin"
    admin_password: str | None = None
    flask_secret_key: str | None = None
    timeout_s: float = 90.0  # per service; HEARTEYE_STACK_TIMEOUT_S (a loaded machine needs more)

    @property
    def serving_enabled(self) -> bool:
        if self.serving == "auto":
            return SERVING_CONFIG.is_file()
        return self.serving == "on"


@dataclass
class ProcessRecord:
    """One process group that ``up`` started; ``start_time`` guards against pid reuse."""

    name: str
    pid: int
    start_time: int
    log: str
    command: list[str]
    #: What the supervisor restarts it with (stack.json is 0600: the env holds credentials).
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    #: Restarted by the supervisor (``restart: unless-stopped``), not a one-shot step.
    supervised: bool = True
    restarts: int = 0
    last_restart: str | None = None


@dataclass
class StackPlan:
    """Everything ``up`` decided; persisted as stack.json (mode 0600: it holds credentials)."""

    name: str
    state_dir: str
    http_port: int
    public_host: str
    pg_admin_url: str
    pg_role: str
    pg_password: str
    databases: dict[str, str]
    ports: dict[str, int]
    bucket: str
    s3_admin_key: str
    s3_admin_secret: str
    s3_mlflow_key: str
    s3_mlflow_secret: str
    admin_username: str
    admin_password: str
    reader_username: str
    reader_password: str
    serving_username: str
    serving_password: str
    flask_secret_key: str
    jwt_secret: str
    serving_ports: list[int]
    databases_created: list[str] = field(default_factory=list)
    role_created: bool = False
    # The platform database's application role (runtime): INSERT/SELECT on the audit trail only.
    # ``pg_role`` owns the databases and runs the migrations (HEARTEYE_DATABASE_OWNER_URL).
    app_role: str = ""
    app_password: str = ""
    app_role_created: bool = False
    # Registry webhooks: serving's HMAC secret, and the key MLflow encrypts stored secrets with
    # (a Fernet key: without a stable one, a restarted server could not read its webhooks).
    webhook_secret: str = ""
    webhook_encryption_key: str = ""
    #: Prometheus's port when the stack runs one (Debian's binary installed), else None.
    prometheus_port: int | None = None
    processes: list[ProcessRecord] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return Path(self.state_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def mlflow_direct_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}/mlflow"

    @property
    def webhook_url(self) -> str:
        """Where the MLflow server delivers registry webhooks: serving, through nginx."""
        return f"{self.url}/api/v1/hooks/mlflow-registry"

    @property
    def wake_dir(self) -> Path:
        """The webhook wake directory every serving instance shares (all wake together)."""
        return self.state / "run" / "registry-wake"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def database_url(self, key: str, driver: str = "postgresql+psycopg2") -> str:
        """The owner role's URL of database ``key`` (mlflow, auth, platform)."""
        host = self.pg_host_port
        return f"{driver}://{self.pg_role}:{self.pg_password}@{host}/{self.databases[key]}"

    @property
    def platform_app_url(self) -> str:
        """The platform database as the application role (what serving uses at runtime)."""
        host = self.pg_host_port
        return (
            f"postgresql+psycopg2://{self.app_role}:{self.app_password}@{host}"
            f"/{self.databases['platform']}"
        )

    @property
    def pg_host_port(self) -> str:
        rest = self.pg_admin_url.split("://", 1)[1].split("/", 1)[0]
        return rest.rsplit("@", 1)[-1]

    def save(self) -> None:
        path = self.state / PLAN_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: Path) -> StackPlan | None:
        path = state_dir / PLAN_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
        return cls(**data)

    def environment(self) -> dict[str, str]:
        """The stack as environment variables (written to stack.env)."""
        return {
            "HEARTEYE_STACK_NAME": self.name,
            "HEARTEYE_URL": self.url,
            "HEARTEYE_HTTP_PORT": str(self.http_port),
            # Clients go through nginx, as in production.
            "MLFLOW_TRACKING_URI": f"{self.url}/mlflow",
            "MLFLOW_TRACKING_USERNAME": self.admin_username,
            "MLFLOW_TRACKING_PASSWORD": self.admin_password,
            "HEARTEYE_STACK_MLFLOW_DIRECT_URI": self.mlflow_direct_uri,
            "HEARTEYE_STACK_READER_USERNAME": self.reader_username,
            "HEARTEYE_STACK_READER_PASSWORD": self.reader_password,
            "HEARTEYE_STACK_SERVING_USERNAME": self.serving_username,
            "HEARTEYE_STACK_SERVING_PASSWORD": self.serving_password,
            "HEARTEYE_STACK_SERVING_URLS": ",".join(
                f"http://127.0.0.1:{p}" for p in self.serving_ports
            ),
            # Runtime (application role) and migrations (schema owner), as serving gets them.
            "HEARTEYE_DATABASE_URL": self.platform_app_url,
            "HEARTEYE_DATABASE_OWNER_URL": self.database_url("platform"),
            "HEARTEYE_STACK_MLFLOW_DATABASE_URL": self.database_url("mlflow"),
            "HEARTEYE_STACK_AUTH_DATABASE_URL": self.database_url("auth"),
            "HEARTEYE_JWT_SECRET": self.jwt_secret,
            "HEARTEYE_WEBHOOK_SECRET": self.webhook_secret,
            "HEARTEYE_STACK_S3_ENDPOINT": self.s3_endpoint,
            "HEARTEYE_STACK_S3_BUCKET": self.bucket,
            "HEARTEYE_STACK_S3_ACCESS_KEY": self.s3_admin_key,
            "HEARTEYE_STACK_S3_SECRET_KEY": self.s3_admin_secret,
            **(
                {"HEARTEYE_STACK_PROMETHEUS_URL": f"http://127.0.0.1:{self.prometheus_port}"}
                if self.prometheus_port
                else {}
            ),
        }

    def write_env(self) -> Path:
        path = self.state / ENV_FILE
        lines = ["# HeartEye native stack: `set -a; . ./stack.env; set +a` to use it from a shell."]
        lines += [f"{k}={shlex.quote(v)}" for k, v in self.environment().items()]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path


def stack_name(state_dir: Path) -> str:
    """A name unique to the state dir, so stacks in different dirs never share databases."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"hearteye_{digest}"


def free_port(avoid: set[int], grpc_offset: int | None = None) -> int:
    """A free 127.0.0.1 port (and, with ``grpc_offset``, free at port + offset too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port in avoid or (
            grpc_offset and (port + grpc_offset > 65535 or not port_is_free(port + grpc_offset))
        ):
            continue
        return port
    raise RuntimeError("no free port found on 127.0.0.1")


def port_is_free(port: int) -> bool:
    """Whether a server (with SO_REUSEADDR, as nginx and Go servers set it) may listen on port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


SEAWEED_PORTS = (
    "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc",
)  # fmt: skip


def make_plan(settings: StackSettings) -> StackPlan:
    """Resolve ports, names and credentials for a new stack (nothing is started)."""
    name = stack_name(settings.state_dir)
    used = {settings.http_port}
    ports: dict[str, int] = {}
    for key in (*SEAWEED_PORTS, "mlflow", "mlflow_metrics"):
        ports[key] = free_port(used)
        used.add(ports[key])
    # SeaweedFS's plugin worker dials the admin server at its HTTP port + 10000, whatever
    # -admin.port.grpc says: keep that pair free and consistent.
    ports["seaweed_admin"] = free_port(used, grpc_offset=10000)
    ports["seaweed_admin_grpc"] = ports["seaweed_admin"] + 10000
    used |= {ports["seaweed_admin"], ports["seaweed_admin_grpc"]}
    serving_ports = []
    for _ in range(settings.serving_instances if settings.serving_enabled else 0):
        serving_ports.append(free_port(used))
        used.add(serving_ports[-1])

    def token(n: int = 24) -> str:
        return secrets.token_urlsafe(n)

    return StackPlan(
        name=name,
        state_dir=str(settings.state_dir.resolve()),
        http_port=settings.http_port,
        public_host=settings.public_host,
        pg_admin_url=settings.pg_admin_url,
        pg_role=name,
        pg_password=token(),
        databases={k: f"{name}_{k}" for k in ("mlflow", "auth", "platform")},
        ports=ports,
        bucket=settings.bucket,
        s3_admin_key=f"admin{secrets.token_hex(6)}",
        s3_admin_secret=token(),
        s3_mlflow_key=f"mlflow{secrets.token_hex(6)}",
        s3_mlflow_secret=token(),
        admin_username=settings.admin_username,
        admin_password=settings.admin_password or token(),
        reader_username="reader",
        reader_password=token(),
        serving_username="serving",
        serving_password=token(),
        flask_secret_key=settings.flask_secret_key or token(32),
        jwt_secret=token(32),
        serving_ports=serving_ports,
        app_role=f"{name}_app",
        app_password=token(),
        webhook_secret=token(32),
        webhook_encryption_key=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    )


def settings_from_env(**overrides: object) -> StackSettings:
    """Settings from the environment, with explicit values (flags) taking precedence.

    The native stack is a development stack: the shared deployment settings are read from the
    environment only (not compose's .env) and never in production mode.
    """
    native = NativeStackSettings()
    shared = DeploymentSettings(_env_file=None, env="development")  # type: ignore[call-arg]
    admin_password = shared.mlflow_admin_password
    flask_secret_key = shared.mlflow_flask_secret_key
    values: dict[str, object] = {
        "state_dir": native.dir,
        "http_port": shared.http_port,
        "public_host": shared.public_host,
        "serving": native.serving,
        "serving_instances": native.serving_instances,
        "pg_admin_url": native.pg_admin_url,
        "timeout_s": native.timeout_s,
        "bucket": shared.s3_bucket,
        "admin_username": shared.mlflow_admin_username or "admin",
        "admin_password": admin_password.get_secret_value() if admin_password else None,
        "flask_secret_key": flask_secret_key.get_secret_value() if flask_secret_key else None,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return StackSettings(**values)  # type: ignore[arg-type]
