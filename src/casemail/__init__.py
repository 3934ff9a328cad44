"""casemail: a self-hosted email channel service for case management."""

__version__ = "0.1.0"
