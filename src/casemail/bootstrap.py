"""Builds the application context. Nothing happens at import time; everything starts here."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from casemail.accounts.hosts import use_nameservers
from casemail.accounts.secrets import KeyRing, load_keyring
from casemail.config import Settings
from casemail.db.engine import Database
from casemail.db.migrate import upgrade
from casemail.ingest import IngestOptions


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    db: Database
    keys: KeyRing

    @property
    def ingest_options(self) -> IngestOptions:
        return IngestOptions(
            max_attempts=self.settings.ingest_max_attempts,
            claim_seconds=self.settings.ingest_claim_seconds,
        )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def build_context(settings: Settings | None = None, *, migrate: bool = True) -> AppContext:
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    use_nameservers(settings.dns_nameservers)
    db = Database.from_url(settings.resolved_database_url)
    if migrate:
        upgrade(db)
    return AppContext(settings=settings, db=db, keys=load_keyring(settings))
