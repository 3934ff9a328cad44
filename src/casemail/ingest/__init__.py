"""Ingest: raw RFC 5322 bytes to a case, one stage per module."""

from casemail.ingest.pipeline import IngestOptions, ingest_raw, pending_receipts, process_receipt
from casemail.ingest.types import IngestResult, Source

__all__ = [
    "IngestOptions",
    "IngestResult",
    "Source",
    "ingest_raw",
    "pending_receipts",
    "process_receipt",
]
