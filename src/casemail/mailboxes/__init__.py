"""Inbound mailboxes: IMAP and POP3 fetching with exactly-once bookkeeping."""
