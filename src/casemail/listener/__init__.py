"""The SMTP listener: mail for channel addresses, committed before it is acknowledged."""
