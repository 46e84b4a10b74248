"""How integration tests see a running native stack (built by the ``native_stack`` fixture)."""

from __future__ import annotations

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
