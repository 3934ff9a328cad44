"""Webhook signing secrets: made here, shown once, stored encrypted with the key ring."""

from __future__ import annotations

import secrets

from casemail.accounts.secrets import KeyRing
from casemail.db.models import Webhook

WEBHOOKS = "webhooks"  # binds the encrypted blob to this table (see KeyRing.encrypt)
PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def store_secret(hook: Webhook, secret: str, keys: KeyRing) -> None:
    hook.secrets = keys.encrypt(hook.id, {"secret": secret}, table=WEBHOOKS)
