"""Mail accounts: server settings and credentials of real mailboxes, presets, autodetection,
connection tests and secrets."""
