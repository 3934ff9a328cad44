"""Background work: reprocessing receipts left behind, purging old quarantine."""
