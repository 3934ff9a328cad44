"""HTML made safe to show: for inbound bodies (ingest) and agents' mail (outbound) alike."""
