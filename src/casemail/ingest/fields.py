"""Structured fields: named values that machine-generated mail sets on a case.

A monitoring system that mails "Customer-Number: 4711" should not need a human to copy the
number into the case. A channel names up to four such fields; their values are read from an
``X-Casemail-<Field>`` header field or, failing that, a ``Field: value`` line near the top of
the text body. Because anyone can write either, values are only taken from senders the
channel trusts (``sender_trusted``, plus a DKIM pass where the channel requires one).

Everything here is pure and linear in its input: no regular expressions, bounded scans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MAX_FIELDS = 4
MAX_NAME_LENGTH = 40
MAX_VALUE_LENGTH = 500
# Only the top of the body is searched: the fields belong in the generated preamble.
MAX_BODY_LINES = 200
HEADER_PREFIX = "x-casemail-"

_ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_CHARS = frozenset(_ASCII_LETTERS + "0123456789 -_")
_ALNUM = frozenset(_ASCII_LETTERS + "0123456789")
# A body label may carry a little extra spacing ("Customer Number :"); no need to look further.
_LABEL_SCAN = 2 * MAX_NAME_LENGTH
# RFC 3676 section 4.3: the signature separator is "-- "; many clients drop the space.
_SIGNATURE_SEPARATORS = frozenset({"-- ", "--"})


def _control_map() -> dict[int, str | None]:
    """C0, DEL and C1 controls (and U+2028/U+2029) become a space if whitespace, else go;
    lone surrogates (undecodable bytes) go too, as they cannot be stored as UTF-8."""
    table: dict[int, str | None] = {}
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]:
        table[code] = " " if chr(code).isspace() else None
    table.update(dict.fromkeys(range(0xD800, 0xE000)))
    return table


_CONTROLS = _control_map()


def validate_field_names(names: Sequence[str]) -> list[str]:
    """Check a channel's structured field names; return them stripped.

    Raises ``ValueError`` saying what is wrong: more than ``MAX_FIELDS``, an empty or over-long
    name, a character other than an ASCII letter, digit, space, hyphen or underscore, or two
    names that are the same field (case and space/hyphen/underscore do not matter).
    """
    if isinstance(names, str):
        raise TypeError("names must be a sequence of field names, not a str")
    if len(names) > MAX_FIELDS:
        raise ValueError(f"at most {MAX_FIELDS} structured fields are allowed, got {len(names)}")
    seen: dict[str, str] = {}
    for raw in names:
        name = raw.strip()
        _check_name(name)
        key = _field_key(name)
        if key in seen:
            raise ValueError(
                f"structured field {name!r} is the same field as {seen[key]!r} (case, spaces, "
                "hyphens and underscores do not distinguish field names)"
            )
        seen[key] = name
    return list(seen.values())


def header_name_for(field: str) -> str:
    """The header field carrying ``field``: "Customer Number" -> "x-casemail-customer-number".

    Raises ``ValueError`` for a name ``validate_field_names`` would refuse on its own.
    """
    _check_name(field.strip())
    return HEADER_PREFIX + _field_key(field)


def extract_fields(
    names: Sequence[str], *, header_fields: Mapping[str, str], text_body: str | None
) -> dict[str, str]:
    """Values of the configured fields: ``{configured name: value}``; missing fields are absent.

    ``header_fields`` maps lower-case header names to decoded values (at least every
    ``X-Casemail-*`` field). A header field wins over a body line; a value that is empty once
    cleaned counts as missing.
    """
    keys = {_field_key(name) for name in names} - {""}
    from_headers = _header_values(header_fields, keys)
    from_body = _body_values(text_body or "", keys)
    found: dict[str, str] = {}
    for name in names:
        key = _field_key(name)
        for raw in (from_headers.get(key), from_body.get(key)):
            value = _clean_value(raw or "")
            if value:
                found[name] = value
                break
    return found


def sender_trusted(sender: str | None, allow_list: Sequence[str]) -> bool:
    """Whether ``sender`` (a bare address) is on the channel's allow-list.

    Entries: a full address (case-insensitive), "@example.com" or "example.com" for that
    domain only, "*.example.com" for its subdomains at any depth (not example.com itself).
    """
    if isinstance(allow_list, str):
        raise TypeError("allow_list must be a sequence of entries, not a str")
    address = _normalise_address(sender or "")
    if not address:
        return False
    domain = address.rpartition("@")[2]
    return any(_entry_matches(entry, address, domain) for entry in allow_list)


def _check_name(name: str) -> None:
    if not name:
        raise ValueError("a structured field name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"structured field name {name!r} is longer than {MAX_NAME_LENGTH} characters"
        )
    bad = sorted(set(name) - _NAME_CHARS)
    if bad:
        raise ValueError(
            f"structured field name {name!r} contains {', '.join(map(repr, bad))}: only ASCII "
            "letters, digits, spaces, hyphens and underscores are allowed"
        )
    if not _ALNUM.intersection(name):
        raise ValueError(f"structured field name {name!r} needs a letter or digit")


def _field_key(name: str) -> str:
    """Comparison key: lower case, runs of spaces/hyphens/underscores as one hyphen."""
    return "-".join(name.lower().replace("_", " ").replace("-", " ").split())


def _header_values(header_fields: Mapping[str, str], keys: set[str]) -> dict[str, str]:
    """Raw values by field key. "X-Casemail-Customer_Number" serves too, but the exact
    ``header_name_for`` spelling wins if both are present."""
    values: dict[str, str] = {}
    for header, value in header_fields.items():
        header = header.lower()
        if not header.startswith(HEADER_PREFIX):
            continue
        key = _field_key(header[len(HEADER_PREFIX) :])
        if key in keys and (key not in values or header == HEADER_PREFIX + key):
            values[key] = value
    return values


def _body_values(text_body: str, keys: set[str]) -> dict[str, str]:
    """Raw values by field key from "Field: value" lines at the top of the body: first
    occurrence only, none after a signature separator or the first quoted line."""
    values: dict[str, str] = {}
    for line in text_body.split("\n", MAX_BODY_LINES)[:MAX_BODY_LINES]:
        line = line.removesuffix("\r")
        if line in _SIGNATURE_SEPARATORS or line.startswith(">"):
            break
        colon = line.find(":", 0, _LABEL_SCAN)
        label = line[:colon].rstrip(" \t")
        # The name starts at column 0; name characters only, so no Unicode case folding or
        # exotic whitespace makes another label equal to it.
        if colon <= 0 or not label or label[0] not in _ALNUM or not _NAME_CHARS.issuperset(label):
            continue
        key = _field_key(label)
        if key in keys and key not in values:
            values[key] = line[colon + 1 :]
            if len(values) == len(keys):
                break
    return values


def _clean_value(raw: str) -> str:
    value = raw.translate(_CONTROLS).strip()
    return value[:MAX_VALUE_LENGTH].rstrip()


def _normalise_address(address: str) -> str:
    """Lower-cased bare address with any trailing root dot dropped; "" if it is not one."""
    local, at, domain = address.strip().lower().rpartition("@")
    domain = domain.rstrip(".")
    if not (local and at and domain) or any(char in "<>, \t\r\n" for char in local + domain):
        return ""
    return f"{local}@{domain}"


def _entry_matches(entry: str, address: str, domain: str) -> bool:
    entry = entry.strip().lower().rstrip(".")
    if entry.startswith("*."):
        suffix = entry[1:]
        return len(suffix) > 1 and domain.endswith(suffix)
    if entry.startswith("@"):
        return domain == entry[1:]
    if "@" in entry:
        return address == _normalise_address(entry)
    return bool(entry) and domain == entry
