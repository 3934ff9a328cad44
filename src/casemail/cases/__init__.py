"""Cases, contacts and each case's email history."""
