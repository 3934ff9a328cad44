"""Reply text apart from the quoted history, for display only (the full body is kept).

Mail clients mark quotes in a few ways; the first one found ends the reply:
- an attribution line, "On Mon, 1 Dec 2026, Ann <ann@example.com> wrote:" (Gmail, Apple
  Mail, Thunderbird; may be folded over two lines) followed by quoted lines;
- Outlook's "-----Original Message-----", or its header block "From: …" followed by
  "Sent: …" or "Date: …";
- a run of lines starting with ">" (RFC 3676 section 4.5 quote marks) to the end.
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^(On|Am|Le|El|Op)\s.{0,300}\b(wrote|schrieb|a écrit|escribió|schreef)\b.{0,300}:\s*$"
)
_ORIGINAL = re.compile(r"^-{2,}\s*(Original Message|Ursprüngliche Nachricht)\s*-{2,}\s*$", re.I)
_OUTLOOK_FROM = re.compile(r"^\*?From:\*?\s")
_OUTLOOK_NEXT = re.compile(r"^\*?(Sent|Date|Gesendet):\*?\s")


def split_quoted(text: str) -> tuple[str, str]:
    """(reply, quoted); quoted is "" when nothing looks quoted."""
    lines = text.splitlines()
    cut = _quote_start(lines)
    if cut is None or not "\n".join(lines[:cut]).strip():
        return text, ""  # all quote (a forward): show it all, collapse nothing
    return "\n".join(lines[:cut]).rstrip() + "\n", "\n".join(lines[cut:])


def _quote_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        stripped = line.strip()
        joined = stripped + " " + (lines[index + 1].strip() if index + 1 < len(lines) else "")
        if _ATTRIBUTION.match(stripped) and _quote_follows(lines, index + 1):
            return index
        if _ATTRIBUTION.match(joined) and _quote_follows(lines, index + 2):
            return index
        if _ORIGINAL.match(stripped):
            return index
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if _OUTLOOK_FROM.match(stripped) and _OUTLOOK_NEXT.match(following):
            return index
        if stripped.startswith(">") and _rest_is_quoted(lines[index:]):
            return index
    return None


def _quote_follows(lines: list[str], start: int) -> bool:
    """An attribution line is one only if quoted lines follow it."""
    rest = [line.strip() for line in lines[start:] if line.strip()]
    return bool(rest) and rest[0].startswith(">")


def _rest_is_quoted(lines: list[str]) -> bool:
    """Everything from here on is quoted (or blank): an answer written between quotes
    is part of the reply and must not be hidden."""
    return all(line.lstrip().startswith(">") for line in lines if line.strip())
