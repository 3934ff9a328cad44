"""Why a recipient failed, in plain words: a DSN's codes and MTA jargon trimmed for a UI.

A Diagnostic-Code (RFC 3464 section 2.3.6) is ``diagnostic-type ";" text``; for smtp the
text is the remote server's reply (RFC 5321 section 4.2): a three-digit code, usually an
RFC 3463 enhanced status code, and the server's words, repeated per line of a multi-line
reply. The person reading the case wants the words; the codes are shown once.
"""

from __future__ import annotations

import re

from casemail.ingest.headers import one_line

MAX_WORDS = 200  # characters of one recipient's explanation

_DIAG_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,30}")
_LEADING_REPLY = re.compile(r"([245]\d\d)(?:[ -]+[245]\.\d{1,3}\.\d{1,3})?[ -]*")
_LEADING_STATUS = re.compile(r"#?[245]\.\d{1,3}\.\d{1,3}\s*")
# The code repeated on each line of a multi-line reply: "550-5.1.1", "550 5.1.1".
_INNER_REPLY = re.compile(
    r"\s[245]\d\d(?:-(?:[245]\.\d{1,3}\.\d{1,3})?|\s+[245]\.\d{1,3}\.\d{1,3})\s"
)
_QMAIL_STATUS = re.compile(r"\s*\(#[245]\.\d{1,3}\.\d{1,3}\)")
_GMAIL_TRAILER = re.compile(r"\s+\S+\s+-\s+gsmtp$")
# "<bob@example.org>:" (Postfix) or "<bob@example.org>..." (Sendmail) before the words.
_LEADING_ADDRESS = re.compile(r"<[^<>]{0,320}>(?::|\.\.\.)?\s*")

# RFC 3463 section 3 (subject.detail), for a report with a status but no diagnostic.
STATUS_WORDS = {
    "1.1": "bad destination mailbox address",
    "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax",
    "1.6": "destination mailbox has moved",
    "2.1": "mailbox disabled, not accepting messages",
    "2.2": "mailbox full",
    "2.3": "message length exceeds administrative limit",
    "3.4": "message too big for system",
    "4.1": "no answer from host",
    "4.4": "unable to route",
    "4.7": "delivery time expired",
    "7.1": "delivery not authorized, message refused",
}
# RFC 3463 section 3.1: the class.
CLASS_WORDS = {"2": "success", "4": "temporary failure", "5": "permanent failure"}


def diagnostic_words(diagnostic: str) -> tuple[str, str | None]:
    """The words of a Diagnostic-Code without its type and reply codes, and the SMTP code."""
    text = one_line(diagnostic)
    kind, sep, rest = text.partition(";")
    if sep and _DIAG_TYPE.fullmatch(kind.strip()):
        text = rest.strip()
    code = None
    if reply := _LEADING_REPLY.match(text):
        code, text = reply.group(1), text[reply.end() :]
    elif status := _LEADING_STATUS.match(text):
        text = text[status.end() :]
    text = _INNER_REPLY.sub(" ", text)
    text = _GMAIL_TRAILER.sub("", _QMAIL_STATUS.sub("", text))
    text = _LEADING_ADDRESS.sub("", text, count=1) if text.startswith("<") else text
    return one_line(text), code


def explain(address: str, action: str, status: str | None, diagnostic: str | None) -> str:
    """``bob@example.org: 5.1.1 User unknown (550)``; "(delayed)" after the address when
    the action is not a failure."""
    words, code = diagnostic_words(diagnostic or "")
    if not words and status:
        words = STATUS_WORDS.get(status.split(".", 1)[1], CLASS_WORDS.get(status[0], ""))
    if len(words) > MAX_WORDS:
        words = words[: MAX_WORDS - 1] + "…"
    label = address if action == "failed" else f"{address} ({action})"
    words = words or ("delivery failed" if action == "failed" else action)
    pieces = (f"{label}:", status or "", words, f"({code})" if code else "")
    return " ".join(p for p in pieces if p)
