"""The S3 side of a backup: every object of a bucket, stored by content (``objects/ab/<sha256>``)
with an index of keys (``objects.jsonl``), and put back key by key."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hearteye.errors import first_line
from hearteye_platform.backup.errors import BackupError

INDEX = "objects.jsonl"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectEntry:
    """One object: where it lived and what it held."""

    bucket: str
    key: str
    size: int
    sha256: str

    @property
    def path(self) -> str:
        """Its file inside the backup, relative to the backup's root."""
        return f"objects/{self.sha256[:2]}/{self.sha256}"


@contextmanager
def _s3_errors(doing: str) -> Iterator[None]:
    """botocore's failures (unreachable, refused, no such bucket) as one-line ``BackupError``s."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise BackupError(f"{doing}: {error.get('Code')}: {error.get('Message')}") from exc
    except BotoCoreError as exc:
        raise BackupError(f"{doing}: {first_line(exc)}") from exc


def _keys(client: Any, bucket: str) -> Iterator[str]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def object_count(client: Any, bucket: str) -> int:
    """How many objects ``bucket`` holds (0 also when it does not exist yet)."""
    from botocore.exceptions import ClientError

    try:
        with _s3_errors(f"listing bucket {bucket}"):
            return sum(1 for _ in _keys(client, bucket))
    except BackupError as exc:
        if isinstance(exc.__cause__, ClientError) and "NoSuchBucket" in str(exc):
            return 0
        raise


def copy_bucket(client: Any, bucket: str, root: Path) -> list[ObjectEntry]:
    """Download every object of ``bucket`` under ``root`` (by content); their index entries."""
    entries = []
    with _s3_errors(f"copying bucket {bucket}"):
        for key in _keys(client, bucket):
            fd, tmp = tempfile.mkstemp(dir=root, prefix=".object-")
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
                for chunk in body.iter_chunks(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            entry = ObjectEntry(bucket, key, size, digest.hexdigest())
            target = root / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)  # the same content twice is one file
            entries.append(entry)
    return entries


def write_index(entries: list[ObjectEntry], path: Path) -> None:
    with path.open("w") as out:
        for entry in entries:
            out.write(json.dumps(asdict(entry), sort_keys=True) + "\n")


def read_index(path: Path) -> list[ObjectEntry]:
    try:
        return [ObjectEntry(**json.loads(line)) for line in path.read_text().splitlines() if line]
    except (TypeError, ValueError) as exc:
        raise BackupError(f"{path.name} is not an object index: {first_line(exc)}") from exc


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create ``bucket`` when it does not exist (a wiped or new S3 server)."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise BackupError(f"bucket {bucket}: {first_line(exc)}") from exc
    with _s3_errors(f"creating bucket {bucket}"):
        client.create_bucket(Bucket=bucket)


def empty_bucket(client: Any, bucket: str) -> int:
    """Delete every object of ``bucket``; how many there were."""
    deleted = 0
    with _s3_errors(f"emptying bucket {bucket}"):
        keys = list(_keys(client, bucket))
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    return deleted


def put_objects(
    client: Any, root: Path, entries: list[ObjectEntry], progress: Callable[[int], None]
) -> None:
    """Upload every indexed object from the backup at ``root`` under its key."""
    for done, entry in enumerate(entries, 1):
        with _s3_errors(f"restoring s3://{entry.bucket}/{entry.key}"):
            client.upload_file(str(root / entry.path), entry.bucket, entry.key)
        progress(done)
