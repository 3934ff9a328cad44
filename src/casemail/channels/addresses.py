"""Address normalisation for channel lookup and contact matching."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """An address that is not a usable mailbox; the message says why."""


def normalise_address(address: str) -> str:
    """Lower-case and check syntax only (no DNS): ``Support@Example.COM`` → ``support@example.com``.

    The local part is case-sensitive by RFC 5321 section 2.4, but no mailbox provider we
    serve treats it so, and users type addresses in any case.
    """
    try:
        checked = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{address!r} is not a valid email address: {exc}") from exc
    return checked.normalized.lower()


def base_address(address: str) -> str:
    """Strip plus-addressing: ``support+c1a2@example.com`` → ``support@example.com``."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()
