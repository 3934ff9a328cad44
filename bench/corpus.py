"""A generated support mailbox for the ingest benchmarks: new cases and replies mixed.

Deterministic for a seed. Roughly what a support address receives, in this order:

- about 61% new messages, each opening a case;
- about 30% replies by In-Reply-To/References to an earlier message (mostly a recent one),
  quoting it, from its sender or a colleague at the same domain;
- about 8% replies to our own outgoing mail (an In-Reply-To we do not hold) carrying the
  subject tag ``[Case #N]``, from the domain of the case's contact, so only the tag threads
  them. The case is one opened at least ``TAG_MIN_AGE`` messages earlier: the tag comes
  from our answer, which takes a while, so its case is stored long before (and never in
  the same batch of a mailbox sync, where a case just opened has no number yet). These
  start after the first ``TAG_MIN_AGE`` messages;
- about 0.5% with no usable From (``undisclosed-recipients:;``): these go to quarantine.

Of all of them, about 25% are HTML (multipart/alternative, a fifth of those HTML only),
10% carry one to three attachments (PDF, PNG, JPEG, CSV; 2 KB to 200 KB, log-uniform), 10%
have non-ASCII names and subjects, and every message has the Received, Authentication-
Results and (mostly) DKIM-Signature fields a real one brings.

The case numbers in the tags assume an empty database whose cases are numbered 1, 2, ... in
the order the corpus opens them: what ingesting the corpus in order into it does.
"""

from __future__ import annotations

import base64
import bisect
import html
import math
import random
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

# The words of bench.imap_sync's corpus (kept as they are: its recorded figures are for it).
TOPIC_WORDS = [
    "invoice",
    "order",
    "delivery",
    "printer",
    "broken",
    "urgent",
    "please",
    "help",
    "account",
    "password",
    "refund",
    "contract",
    "meeting",
    "schedule",
    "update",
    "question",
    "thanks",
    "regards",
    "customer",
    "support",
    "ticket",
]
WORDS = [
    *TOPIC_WORDS,
    "the",
    "a",
    "to",
    "of",
    "and",
    "for",
    "in",
    "is",
    "it",
    "not",
    "we",
    "you",
    "our",
    "your",
    "this",
    "that",
    "with",
    "on",
    "have",
    "be",
    "can",
    "since",
    "yesterday",
    "again",
    "still",
    "error",
    "message",
    "screen",
    "login",
    "server",
    "report",
    "monthly",
    "price",
]
NON_ASCII_NAMES = ["Jürgen Müller", "Zoë Ångström", "François Lefèvre", "Łukasz Żółw", "José Núñez"]
NON_ASCII_WORDS = ["Rückfrage", "Lieferverzögerung", "facture impayée", "Größe", "naïve"]
ATTACHMENT_TYPES = [
    ("application", "pdf", "pdf"),
    ("image", "png", "png"),
    ("image", "jpeg", "jpg"),
    ("text", "csv", "csv"),
]
CSS = "p { margin: 0 0 1em 0; font-family: Calibri, Arial, sans-serif; font-size: 11pt; }\n"
TAG_MIN_AGE = 1000  # messages between a case's first message and a reply by its tag
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class _Earlier:
    """A message a later one can answer."""

    message_id: str
    references: tuple[str, ...]
    subject: str  # without "Re: "
    address: str
    case: int  # the number of the case it is on
    quote: str


@dataclass
class Corpus:
    seed: int
    messages: list[bytes] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def size(self) -> int:
        return sum(len(raw) for raw in self.messages)

    def summary(self) -> str:
        k = self.kinds
        return (
            f"{len(self.messages)} messages, {self.size / 1e6:.1f} MB, seed {self.seed}: "
            f"{k['new']} new, {k['threaded']} replies by In-Reply-To/References, "
            f"{k['tagged']} by subject tag, {k['no-sender']} without sender; "
            f"{k['html']} HTML, {k['attachments']} with attachments"
        )


def make_corpus(count: int, seed: int = 4711) -> Corpus:
    generator = _Generator(seed)
    for n in range(count):
        generator.add(n)
    return generator.corpus


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.corpus = Corpus(seed)
        self.earlier: list[_Earlier] = []
        self.openers: list[_Earlier] = []  # the first message of each case, by case number
        self.opened_at: list[int] = []  # the position of each of them in the corpus

    def add(self, n: int) -> None:
        draw = self.rng.random()
        taggable = bisect.bisect_right(self.opened_at, n - TAG_MIN_AGE)
        if draw < 0.005:
            kind, message = "no-sender", self._no_sender(n)
        elif draw < 0.305 and self.earlier:
            kind, message = "threaded", self._threaded(n, self._recent(self.earlier))
        elif draw < 0.385 and taggable:
            kind, message = "tagged", self._tagged(n, self._recent(self.openers, taggable))
        else:
            kind, message = "new", self._new(n)
        self.corpus.kinds[kind] += 1
        self._finish(n, message)
        multiparts = (part for part in message.walk() if part.is_multipart())
        for index, part in enumerate(multiparts):
            # Fixed boundaries: the stdlib draws them from the global random generator.
            part.set_boundary(f"=_bench_{n}_{index}")
        self.corpus.messages.append(message.as_bytes(policy=policy.SMTP))

    def _recent(self, items: list[_Earlier], end: int | None = None) -> _Earlier:
        """One of ``items[:end]``, mostly of the last few hundred: conversations are short."""
        end = len(items) if end is None else end
        back = int(self.rng.expovariate(1 / 200))
        return items[end - 1 - min(back, end - 1)]

    def _words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high)))

    def _domain_person(self, domain: str | None = None) -> tuple[str, str]:
        """A display name and an address, at ``domain`` or a random client's."""
        rng = self.rng
        domain = domain or f"client{rng.randrange(300)}.example"
        local = f"customer{rng.randrange(2000)}"
        name = rng.choice(NON_ASCII_NAMES) if rng.random() < 0.1 else f"Customer {local[8:]}"
        return name, f"{local}@{domain}"

    def _base(self, n: int, sender: tuple[str, str], subject: str) -> EmailMessage:
        message = EmailMessage()
        domain = sender[1].rpartition("@")[2]
        self._trace_fields(message, domain)
        message["From"] = f"{sender[0]} <{sender[1]}>"
        message["To"] = "Support <support@example.com>"
        message["Subject"] = subject
        message["Date"] = format_datetime(START + timedelta(seconds=37 * n))
        message["Message-ID"] = f"<bench-{n}-{self.corpus.seed}@{domain}>"
        return message

    def _trace_fields(self, message: EmailMessage, domain: str) -> None:
        rng = self.rng
        for hop in range(rng.randint(2, 5)):
            message["Received"] = (
                f"from relay{hop}.{domain} (relay{hop}.{domain} [192.0.2.{rng.randrange(256)}]) "
                f"by mx{hop}.example.com (Postfix) with ESMTPS id {rng.getrandbits(40):X}; "
                "Mon, 23 Nov 2026 10:00:00 +0000"
            )
        message["Authentication-Results"] = (
            f"mx.example.com; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={domain}"
        )
        if rng.random() < 0.8:
            body_hash = base64.b64encode(rng.randbytes(32)).decode()
            signature = base64.b64encode(rng.randbytes(256)).decode()
            folded = " ".join(signature[i : i + 64] for i in range(0, len(signature), 64))
            message["DKIM-Signature"] = (
                f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=mail; "
                f"h=from:to:subject:date:message-id; bh={body_hash}; b={folded}"
            )

    def _subject(self) -> str:
        words = self._words(3, 8)
        if self.rng.random() < 0.1:
            return f"{self.rng.choice(NON_ASCII_WORDS)}: {words}"
        return words

    def _new(self, n: int) -> EmailMessage:
        message = self._base(n, self._domain_person(), self._subject())
        self._text(message, quote=None)
        self.openers.append(self._remember(message, case=len(self.openers) + 1))
        self.opened_at.append(n)
        return message

    def _threaded(self, n: int, parent: _Earlier) -> EmailMessage:
        domain = parent.address.rpartition("@")[2]
        sender = self._domain_person(domain)
        if self.rng.random() < 0.8:
            sender = (sender[0], parent.address)
        message = self._base(n, sender, f"Re: {parent.subject}")
        message["In-Reply-To"] = parent.message_id
        message["References"] = " ".join([*parent.references, parent.message_id][-10:])
        self._text(message, quote=parent)
        self._remember(
            message, case=parent.case, references=(*parent.references, parent.message_id)
        )
        return message

    def _tagged(self, n: int, opener: _Earlier) -> EmailMessage:
        sender = self._domain_person(opener.address.rpartition("@")[2])
        message = self._base(n, sender, f"Re: [Case #{opener.case}] {opener.subject}")
        message["In-Reply-To"] = f"<agent-{n}@support.example.com>"  # ours, sent elsewhere
        self._text(message, quote=opener)
        self._remember(message, case=opener.case, references=(str(message["In-Reply-To"]),))
        return message

    def _no_sender(self, n: int) -> EmailMessage:
        message = self._base(n, ("", "mailer@relay.example"), self._subject())
        message.replace_header("From", "undisclosed-recipients:;")
        self._text(message, quote=None)
        return message

    def _remember(
        self, message: EmailMessage, *, case: int, references: tuple[str, ...] = ()
    ) -> _Earlier:
        body = message.get_body(("plain", "html"))
        text = body.get_content() if body is not None else ""
        earlier = _Earlier(
            message_id=str(message["Message-ID"]),
            references=references[-10:],
            subject=str(message["Subject"]).removeprefix("Re: "),
            address=message["From"].addresses[0].addr_spec,
            case=case,
            quote=" ".join(text.split("\n\n", 1)[0].split())[:400],
        )
        self.earlier.append(earlier)
        return earlier

    def _paragraphs(self) -> list[str]:
        return [self._words(20, 60) for _ in range(self.rng.randint(1, 12))]

    def _text(self, message: EmailMessage, quote: _Earlier | None) -> None:
        paragraphs = self._paragraphs()
        draw = self.rng.random()
        if draw >= 0.25:  # plain text only, wrapped as a mail client does
            paragraphs = [textwrap.fill(p, 72) for p in paragraphs]
        if quote is not None:
            quoted = textwrap.indent(textwrap.fill(quote.quote, 70), "> ")
            paragraphs.append(f"On Mon, 23 Nov 2026, {quote.address} wrote:\n{quoted}")
        paragraphs.append(f"Kind regards\n{message['From']}")
        if draw < 0.25:
            self.corpus.kinds["html"] += 1
            self._html(message, paragraphs, html_only=draw < 0.05)
        else:
            message.set_content("\n\n".join(paragraphs))

    def _html(self, message: EmailMessage, paragraphs: list[str], *, html_only: bool) -> None:
        """As mail programs write it: a style sheet, long lines, often beside a plain part."""
        body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs)
        document = f"<html><head><style>{CSS * 8}</style></head><body>{body}</body></html>"
        if html_only:
            message.set_content(document, subtype="html")
        else:
            message.set_content("\n\n".join(paragraphs))
            message.add_alternative(document, subtype="html")

    def _finish(self, n: int, message: EmailMessage) -> None:
        """Attachments on one message in ten."""
        rng = self.rng
        if rng.random() >= 0.1:
            return
        self.corpus.kinds["attachments"] += 1
        for index in range(rng.choice([1, 1, 1, 2, 3])):
            maintype, subtype, ext = rng.choice(ATTACHMENT_TYPES)
            size = int(math.exp(rng.uniform(math.log(2_000), math.log(200_000))))
            name = f"document-{n}-{index}.{ext}"
            if maintype == "text":
                rows = "\n".join(self._words(5, 5).replace(" ", ",") for _ in range(size // 40))
                message.add_attachment(rows, subtype=subtype, filename=name)
            else:
                data = rng.randbytes(size)
                message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
