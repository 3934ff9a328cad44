"""Reading Authentication-Results header fields (RFC 8601).

A channel may require that machine-generated mail carrying structured fields passed DKIM.
Casemail does not verify signatures itself: the border MTA does, and records the outcome
in an Authentication-Results field. Any sender can add such a field as well (RFC 8601
section 5), so only fields whose authserv-id names one of our own MTAs count; the border MTA
must remove or rename incoming fields that claim its authserv-id (RFC 8601 section 5).

The parser is a hand-written, linear scanner with no regular expressions, so a hostile value
cannot make it backtrack; it never raises and gives up (``None``) on what it cannot read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

# Longer values (in characters) are not read at all: real fields are a few hundred bytes.
MAX_VALUE_LENGTH = 8192
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_WSP = " \t\r\n"
# Characters that end a word: whitespace, the separators and the CFWS/quoting openers.
_WORD_END = frozenset(_WSP + ';=()"')
_KEYWORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class MethodResult:
    """One resinfo: ``dkim=pass header.d=example.com`` (RFC 8601 section 2.2)."""

    method: str
    result: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class AuthResults:
    """One Authentication-Results field: who wrote it and what it found."""

    authserv_id: str
    results: tuple[MethodResult, ...]


class _Token(NamedTuple):
    kind: str  # "word", "quoted", ";" or "="
    text: str
    spaced: bool  # preceded by CFWS (whitespace or a comment)


def parse_authentication_results(value: str) -> AuthResults | None:
    """Parse one field value; ``None`` when it is unreadable or longer than 8 KB."""
    tokens = _tokenize(value) if len(value) <= MAX_VALUE_LENGTH else None
    if tokens is None:
        return None
    groups = _split_groups(tokens)
    head = groups[0]
    if len(head) >= 2 and head[0].kind == "word" and head[1].kind == "=":
        # Microsoft 365 writes no authserv-id at all ("spf=pass ...; dkim=pass ...").
        # Such a field can never be trusted; it is read with an empty authserv-id.
        authserv_id, resinfos = "", groups
    else:
        authserv_id, resinfos = _authserv_id(head), groups[1:]
        if not authserv_id or not resinfos:
            return None
    results: list[MethodResult] = []
    for group in resinfos:
        if _is_no_result(group):
            continue
        result = _method_result(group)
        if result is None:
            # All or nothing: a mangled resinfo may be an echoed value that injects another.
            return None
        results.append(result)
    return AuthResults(authserv_id, tuple(results))


def dkim_pass_domains(
    values: Iterable[str], trusted_authserv_ids: Collection[str]
) -> frozenset[str]:
    """Signing domains (``header.d``, lower case) with ``dkim=pass`` in trusted fields.

    ``values`` are the message's Authentication-Results field values. Fields from any other
    authserv-id are ignored (RFC 8601 section 5); so are fields without one.
    """
    if isinstance(trusted_authserv_ids, str):
        raise TypeError("trusted_authserv_ids must be a collection of authserv-ids, not a str")
    trusted = {_lower(authserv_id.strip()) for authserv_id in trusted_authserv_ids} - {""}
    domains: set[str] = set()
    for value in values:
        parsed = parse_authentication_results(value)
        if parsed is None or parsed.authserv_id not in trusted:
            continue
        for result in parsed.results:
            domain = _signing_domain(result)
            if result.method == "dkim" and result.result == "pass" and domain:
                domains.add(domain)
    return frozenset(domains)


def _signing_domain(result: MethodResult) -> str:
    """``header.d``; else the domain of ``header.i``, which RFC 6376 section 3.5 requires to
    be ``d=`` or a subdomain of it (Gmail records only ``header.i``)."""
    domain = result.properties.get("header.d")
    if domain is None:
        identity = result.properties.get("header.i", "")
        domain = identity.rpartition("@")[2] if "@" in identity else ""
    return _lower(domain.strip().rstrip("."))


def _lower(text: str) -> str:
    # ASCII-only, as MTAs compare authserv-ids: str.lower() would turn a forged "mx.\u212a..."
    # (KELVIN SIGN), which the border MTA does not recognise as its own, into a trusted "mx.k...".
    return text.translate(_ASCII_LOWER)


def _tokenize(value: str) -> list[_Token] | None:
    """Words, quoted-strings (unescaped, RFC 5322 section 3.2.4), ";" and "=". CFWS (section
    3.2.2; comments nest) only sets ``spaced``. ``None`` if a comment or quote is unbalanced."""
    tokens: list[_Token] = []
    index, spaced = 0, True
    while index < len(value):
        char = value[index]
        if char in _WSP or char == "(":
            index = index + 1 if char in _WSP else _skip_comment(value, index)
            if index < 0:
                return None
            spaced = True
            continue
        if char == ")":
            return None
        if char == '"':
            quoted = _read_quoted(value, index)
            if quoted is None:
                return None
            text, index = quoted
            tokens.append(_Token("quoted", text, spaced))
        elif char in ";=":
            tokens.append(_Token(char, char, spaced))
            index += 1
        else:
            end = index
            while end < len(value) and value[end] not in _WORD_END:
                end += 1
            tokens.append(_Token("word", value[index:end], spaced))
            index = end
        spaced = False
    return tokens


def _skip_comment(value: str, index: int) -> int:
    """Index after the comment opening at ``index``; -1 when it never closes."""
    depth = 0
    while index < len(value):
        char = value[index]
        if char == "\\":
            index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return -1


def _read_quoted(value: str, index: int) -> tuple[str, int] | None:
    """Content and end of the quoted-string opening at ``index``; ``None`` if unterminated."""
    chars: list[str] = []
    index += 1
    while index < len(value):
        char = value[index]
        if char == '"':
            return "".join(chars), index + 1
        if char == "\\":
            index += 1
            if index == len(value):
                return None
            char = value[index]
        chars.append(char)
        index += 1
    return None


def _split_groups(tokens: list[_Token]) -> list[list[_Token]]:
    """Split at ";" (RFC 8601 section 2.2): first the authserv-id and its optional version,
    then one group per resinfo (or the no-result "none")."""
    groups: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == ";":
            groups.append([])
        else:
            groups[-1].append(token)
    return groups


def _authserv_id(head: list[_Token]) -> str:
    """The authserv-id, or "" unless the group is it and an optional authres-version.

    RFC 8601 section 2.2 allows a quoted-string too, but no MTA writes one, and a border MTA
    stripping forged fields would hardly recognise its own id in quotes: refused.
    """
    if not head or head[0].kind != "word":
        return ""
    if len(head) > 2 or (len(head) == 2 and not _is_keyword(head[1].text, "0123456789")):
        return ""
    return _lower(head[0].text.strip())


def _is_no_result(group: list[_Token]) -> bool:
    """An empty group (stray ";") or the no-result "none" (RFC 8601 section 2.2)."""
    return not group or (len(group) == 1 and _lower(group[0].text) == "none")


def _method_result(group: list[_Token]) -> MethodResult | None:
    """methodspec [reasonspec] *propspec; ``None`` when the group is not one."""
    if len(group) < 3 or group[0].kind != "word" or group[1].kind != "=":
        return None
    # method = Keyword [ "/" method-version ]: the version is not needed here.
    method = _lower(group[0].text).partition("/")[0]
    result = _lower(group[2].text)
    if not (_is_keyword(method) and group[2].kind == "word" and _is_keyword(result)):
        return None
    properties: dict[str, str] = {}
    index = 3
    while index < len(group):
        read = _property(group, index)
        if read is None:
            return None
        key, value, index = read
        properties.setdefault(key, value)
    return MethodResult(method, result, MappingProxyType(properties))


def _property(group: list[_Token], index: int) -> tuple[str, str, int] | None:
    """``reason=value``, ``ptype.property=pvalue`` or, as Microsoft 365 writes,
    ``keyword=value`` (``action=none``) at ``index``; key, value and the index after."""
    if index + 2 >= len(group) or group[index].kind != "word" or group[index + 1].kind != "=":
        return None
    key = _lower(group[index].text)
    ptype, dot, name = key.partition(".")
    if not _is_keyword(ptype) or (dot and not _is_keyword(name)):
        return None
    value_token = group[index + 2]
    if value_token.kind not in ("word", "quoted"):
        return None
    # A value runs on while no CFWS intervenes: "header.b=Ab+/cd==" is one value.
    parts, index = [value_token.text], index + 3
    while index < len(group) and not group[index].spaced:
        parts.append(group[index].text)
        index += 1
    return key, "".join(parts), index


def _is_keyword(text: str, chars: Collection[str] = _KEYWORD_CHARS) -> bool:
    return bool(text) and all(char in chars for char in text)
