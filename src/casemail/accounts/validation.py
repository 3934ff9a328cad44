"""Field checks shared by the account schemas: clear messages for bad input."""

from __future__ import annotations

import ipaddress
import re

import email_validator
from email_validator import EmailNotValidError, validate_email

# Self-hosted mail often lives under internal names (RFC 6762 ".local" for an office
# Exchange, RFC 2606 ".test" in labs). email-validator refuses these special-use names by
# default and documents editing this list as the way to allow them.
email_validator.SPECIAL_USE_DOMAIN_NAMES = [
    name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES if name not in ("local", "test")
]

# RFC 1123 section 2.1 host names; labels of letters, digits and hyphens, 63 octets each.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_hostname(value: str) -> str:
    host = value.strip().rstrip(".").lower()
    if not host:
        raise ValueError("a host name is required")
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host.strip("[]")
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{value!r} is not a valid host name") from exc
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in ascii_host.split(".")):
        raise ValueError(
            f"{value!r} is not a valid host name (letters, digits, hyphens and dots only; "
            "no scheme, port or path)"
        )
    return ascii_host


def check_address(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from exc


def check_folder(value: str) -> str:
    folder = value.strip()
    if not folder or any(c in folder for c in "\r\n\0"):
        raise ValueError(f"{value!r} is not a valid folder name")
    return folder


def address_domain(address: str) -> str:
    return address.rsplit("@", 1)[1].lower()
