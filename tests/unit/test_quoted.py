"""Reply text apart from quoted history: the common clients' quoting styles."""

from __future__ import annotations

import pytest

from casemail.web.quoted import split_quoted

GMAIL = """Thanks, that fixed it.

On Mon, 1 Dec 2026 at 10:00, Support <support@example.com> wrote:
> Please restart the printer.
>
> Support
"""
FOLDED = """Still broken.

On Mon, 1 Dec 2026 at 10:00, Support Team of Example Corp <support@example.com>
wrote:
> Please restart the printer.
"""
OUTLOOK = """Yes, tomorrow works.

From: Support <support@example.com>
Sent: Monday, December 1, 2026 10:00 AM
To: Ann <ann@customer.example>
Subject: RE: [Case #12] Printer

Can we come by tomorrow?
"""
ORIGINAL = """See below.

-----Original Message-----
From: Support
Can we come by?
"""
GERMAN = """Danke!

Am 01.12.2026 um 10:00 schrieb Support <support@example.com>:
> Bitte neu starten.
"""


@pytest.mark.parametrize(
    ("text", "reply", "quote_starts"),
    [
        (GMAIL, "Thanks, that fixed it.\n", "On Mon"),
        (FOLDED, "Still broken.\n", "On Mon"),
        (OUTLOOK, "Yes, tomorrow works.\n", "From: Support"),
        (ORIGINAL, "See below.\n", "-----Original"),
        (GERMAN, "Danke!\n", "Am 01.12"),
    ],
    ids=["gmail", "folded-attribution", "outlook", "original-message", "german"],
)
def test_the_reply_is_split_from_the_quote(text: str, reply: str, quote_starts: str) -> None:
    got_reply, quoted = split_quoted(text)
    assert got_reply == reply
    assert quoted.startswith(quote_starts)
    assert text.startswith(got_reply)
    assert text.rstrip("\n").endswith(quoted.rstrip("\n"))


def test_inline_answers_between_quotes_are_not_hidden() -> None:
    text = "> Can you come at 10?\nYes.\n> And bring the manual?\nNo, I lost it.\n"
    assert split_quoted(text) == (text, "")


def test_a_forward_with_nothing_above_is_shown_whole() -> None:
    text = "-----Original Message-----\nFrom: Bob\nHello\n"
    assert split_quoted(text) == (text, "")


def test_plain_text_without_quotes_is_untouched() -> None:
    text = "On Monday I wrote to the vendor, who said:\nit is under warranty.\nThanks\n"
    assert split_quoted(text) == (text, "")
