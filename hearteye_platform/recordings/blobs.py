"""Where raw uploads and analysis results live: an S3 bucket, or a folder when no bucket is set.

Keys are content-addressed by the callers (``recordings/<sha256>``), so writing a key that exists
is a no-op and two uploads of one file are one object.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol


class BlobStore(Protocol):
    """The operations the recordings feature needs."""

    def put_file(self, key: str, path: Path) -> None: ...
    def get_file(self, key: str, dest: Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def describe(self) -> str: ...


class LocalBlobStore:
    """Objects as files under ``root`` (written atomically: temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.root)


def s3_client(
    endpoint_url: str | None, access_key: str | None = None, secret_key: str | None = None
) -> Any:
    """HeartEye's boto3 S3 client: path-style addressing (MinIO and SeaweedFS on a bare host name
    or address), three attempts. Without a key pair, credentials are boto3's own
    (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, its config files)."""
    import boto3.session
    from botocore.config import Config

    keys = (
        {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
        if access_key and secret_key
        else {}
    )
    # A session of its own: boto3's default session keeps the first credentials it resolved for
    # the whole process, so a later change of AWS_* (another stack, a rotated key) went unseen.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        **keys,
    )


class S3BlobStore:
    """Objects in an S3 bucket (MinIO, SeaweedFS, AWS); credentials as boto3 finds them
    (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``)."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, client: Any = None) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.client = client if client is not None else s3_client(endpoint_url)

    def put_file(self, key: str, path: Path) -> None:
        if self.exists(key):
            return
        self.client.upload_file(str(path), self.bucket, key)

    def get_file(self, key: str, dest: Path) -> None:
        self.client.download_file(self.bucket, key, str(dest))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint_url or 'AWS'}"
