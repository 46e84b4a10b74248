"""The prediction audit trail: records, a non-blocking writer with a durable spool, queries."""

from hearteye_platform.audit.record import (
    AuditQueryError,
    AuditRecord,
    new_request_id,
    query_audit,
    signal_sha256,
)
from hearteye_platform.audit.writer import AuditWriter, AuditWriterStats

__all__ = [
    "AuditQueryError",
    "AuditRecord",
    "AuditWriter",
    "AuditWriterStats",
    "new_request_id",
    "query_audit",
    "signal_sha256",
]
