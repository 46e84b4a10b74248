"""How integration tests see a running native stack (built by the ``native_stack`` fixture)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NativeStack:
    """A running native stack, as tests see it."""

    url: str  # nginx, the only public entry
    mlflow_uri: str  # MLflow through nginx (http://127.0.0.1:PORT/mlflow)
    admin: tuple[str, str]
    reader: tuple[str, str]  # non-admin MLflow user, default permission READ
    serving_user: tuple[str, str]
    serving_enabled: bool
    env: dict[str, str]  # everything in the stack's stack.env
    state_dir: Path
    startup_s: float

    def access_log(self) -> list[dict[str, object]]:
        """nginx's JSON access log, complete lines only: nginx may be writing the last line while
        we read it (a fresh-clone CI run once read half a line)."""
        text = (self.state_dir / "logs" / "nginx-access.json.log").read_text()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def s3_client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.env["HEARTEYE_STACK_S3_ENDPOINT"],
            aws_access_key_id=self.env["HEARTEYE_STACK_S3_ACCESS_KEY"],
            aws_secret_access_key=self.env["HEARTEYE_STACK_S3_SECRET_KEY"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
