"""Uploaded recordings and their analyses: the blob store and the database rows (the work queue)."""

from hearteye_platform.recordings.blobs import BlobStore, LocalBlobStore, S3BlobStore
from hearteye_platform.recordings.store import (
    AnalysisNotFoundError,
    RecordingNotFoundError,
    RecordingStore,
)

__all__ = [
    "AnalysisNotFoundError",
    "BlobStore",
    "LocalBlobStore",
    "RecordingNotFoundError",
    "RecordingStore",
    "S3BlobStore",
]
