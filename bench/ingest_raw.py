"""``ingest_raw`` over a generated mailbox, against stdlib parsing of the same bytes, same run.

The corpus (``bench.corpus``, seed 4711) mixes new messages and replies: replies threaded by
In-Reply-To/References, replies carrying the subject tag ``[Case #N]`` from the case
contact's domain, HTML, attachments, and a few messages without a sender (quarantined).
On those same bytes, one after the other:

- reference: stdlib ``email.message_from_bytes(raw, policy=policy.default)`` plus
  ``get_body(("plain", "html"))``. Every message has to be parsed at least once to become a
  case, and this is the parse a plain Python program would do: the ratio to it is the price
  of everything casemail adds (storing the raw bytes durably before anything else,
  threading, contacts, the case and message rows, the commits). The reference runs in the
  same process on the same bytes because the machine is shared: absolute rates move by up
  to 30% between runs, the ratios much less;
- casemail's own parse alone (``parse_message``, no database), to show how much of the gap
  is parsing;
- casemail ``ingest_raw``, one message at a time, as the SMTP listener and ``casemail
  inject`` call it: raw bytes committed, then claimed, then decided (three commits each),
  into a fresh SQLite file in a temporary directory (WAL, synchronous=FULL, as ``casemail
  serve`` opens it);
- casemail ``ingest_batch`` in batches of 500 messages (at most 32 MiB), as the mailbox sync
  stores what it fetched (two commits a batch);
- the same two on a scratch PostgreSQL database (``--pg ''`` skips it).

Each run starts from an empty database. After it the database is counted: cases (and those
no message is on), messages stored, quarantined; the run fails (exit status 1) unless
messages stored + quarantined equals the messages sent, so no figure can come from mail that
was lost. Cases or quarantine other than the corpus intends (its new messages, its messages
without sender) are printed as a NOTE: threading decided differently, mail not lost.

    .venv/bin/python -m bench.ingest_raw [--messages 20000] [--pg URL] [--batch 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from bench.corpus import Corpus, make_corpus
from bench.pgdb import scratch_database
from bench.reference import reference_parse
from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.migrate import upgrade
from casemail.db.models import Case, InboundReceipt, Message, QuarantineEntry
from casemail.ingest import Source, ingest_raw
from casemail.ingest.batch import ingest_batch
from casemail.ingest.parse import parse_message
from casemail.mailboxes.imap_sync import size_batches
from casemail.mailboxes.job import MailboxJob

# Runs a corpus into a database and its channel.
Ingest = Callable[[Database, int, list[bytes]], None]


@dataclass(frozen=True)
class Counts:
    cases: int
    empty_cases: int  # cases no message is on: a sign of a decision gone wrong
    messages: int
    quarantined: int
    receipts: int


def casemail_parse(corpus: list[bytes]) -> float:
    start = time.perf_counter()
    for raw in corpus:
        parse_message(raw)
    return time.perf_counter() - start


def one_by_one(db: Database, channel_id: int, corpus: list[bytes]) -> None:
    source = Source("cli")
    for raw in corpus:
        ingest_raw(db, channel_id, raw, source)


def batched(size: int) -> Ingest:
    """``ingest_batch`` over batches cut as the IMAP sync cuts them (count and bytes)."""

    def run(db: Database, channel_id: int, corpus: list[bytes]) -> None:
        sizes = {index: len(raw) for index, raw in enumerate(corpus)}
        source = Source("imap")
        for batch in size_batches(list(sizes), sizes, size, MailboxJob.batch_bytes):
            ingest_batch(db, channel_id, [(corpus[index], source) for index in batch])

    return run


def fresh_channel(url: str) -> tuple[Database, int]:
    """A migrated, empty database (default company) with one channel, as the tests set up."""
    db = Database.from_url(url)
    upgrade(db)
    with db.write() as session:
        channel_id = add_channel(session, address="support@example.com").id
    return db, channel_id


def count_rows(db: Database) -> Counts:
    on_case = select(Message.id).where(Message.case_id == Case.id).exists()
    queries = [
        select(func.count()).select_from(Case),
        select(func.count()).select_from(Case).where(~on_case),
        *(select(func.count()).select_from(m) for m in (Message, QuarantineEntry, InboundReceipt)),
    ]
    with db.read() as session:
        return Counts(*(session.scalar(query) or 0 for query in queries))


def check(counts: Counts, corpus: Corpus) -> None:
    """Print the counts; exit with status 1 if any message sent is neither stored nor held."""
    sent = len(corpus.messages)
    print(
        f"    cases {counts.cases} ({counts.empty_cases} without messages), messages stored "
        f"{counts.messages}, quarantined {counts.quarantined} (receipts {counts.receipts}, "
        f"sent {sent})",
        flush=True,
    )
    if counts.messages + counts.quarantined != sent:
        raise SystemExit(
            f"FAILED: messages stored ({counts.messages}) + quarantined ({counts.quarantined})"
            f" != messages sent ({sent}): mail was lost, the rate above means nothing"
        )
    opened, held = corpus.kinds["new"], corpus.kinds["no-sender"]
    if (counts.cases, counts.empty_cases, counts.quarantined) != (opened, 0, held):
        print(
            f"    NOTE: the corpus opens {opened} cases and has {held} messages without "
            "sender: cases were opened or mail held where the corpus does not expect it",
            flush=True,
        )


def report_line(name: str, count: int, seconds: float, parse_rate: float) -> None:
    rate = count / seconds
    print(f"{name:<34} {rate:9.0f} msg/s   {rate / parse_rate:6.2f} x parse-only", flush=True)


def measure(name: str, url: str, ingest: Ingest, corpus: Corpus, parse_rate: float) -> None:
    """One target from an empty database: the rate, then the counts that vouch for it."""
    db, channel_id = fresh_channel(url)
    try:
        start = time.perf_counter()
        ingest(db, channel_id, corpus.messages)
        elapsed = time.perf_counter() - start
        report_line(name, len(corpus.messages), elapsed, parse_rate)
        check(count_rows(db), corpus)
    finally:
        db.dispose()


def run_postgresql(admin_url: str, corpus: Corpus, parse_rate: float, batch: int) -> None:
    if not admin_url:
        print("PostgreSQL skipped: --pg ''", flush=True)
        return
    with scratch_database(admin_url) as url:  # prints why when it skips
        if url:
            measure("casemail ingest_raw, PostgreSQL", url, one_by_one, corpus, parse_rate)
    with scratch_database(admin_url) as url:
        if url:
            name = f"casemail ingest_batch {batch}, PG"
            measure(name, url, batched(batch), corpus, parse_rate)


def run_sqlite(corpus: Corpus, parse_rate: float, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/one.db"
        measure("casemail ingest_raw, SQLite", url, one_by_one, corpus, parse_rate)
        url = f"sqlite:///{tmp}/batch.db"
        name = f"casemail ingest_batch {batch}, SQLite"
        measure(name, url, batched(batch), corpus, parse_rate)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="'' skips PostgreSQL"
    )
    parser.add_argument("--batch", type=int, default=500, help="messages per ingest_batch call")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    corpus = make_corpus(args.messages)
    count = len(corpus.messages)
    print(corpus.summary(), flush=True)
    parse_s = reference_parse(corpus.messages)
    parse_rate = count / parse_s
    report_line("reference: email policy.default", count, parse_s, parse_rate)
    report_line(
        "casemail parse_message (no db)", count, casemail_parse(corpus.messages), parse_rate
    )
    run_sqlite(corpus, parse_rate, args.batch)
    run_postgresql(args.pg, corpus, parse_rate, args.batch)


if __name__ == "__main__":
    main()
