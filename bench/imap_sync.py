"""Initial IMAP sync of a large mailbox into cases, against two references from the same run.

A local Dovecot (the test fixture's) gets a generated mailbox (fixed seed) written straight
into its Maildir. Then, on the same mailbox:

- reference A: raw imaplib, ``UID FETCH 1:* (BODY.PEEK[])``, bodies kept in memory;
- reference B: stdlib ``email`` with ``policy.default`` parsing those same bytes;
- casemail: ``sync_imap`` from an empty database, every message stored raw and turned into
  a case (or a message on one), committed before anything else.

    .venv/bin/python -m bench.imap_sync [--messages 20000] [--pg URL]
"""

from __future__ import annotations

import argparse
import grp
import imaplib
import os
import pwd
import random
import tempfile
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

from tests.mailservers import Dovecot, MailUser, TestPKI, TokenIssuer

from bench.corpus import TOPIC_WORDS
from bench.pgdb import scratch_database
from bench.reference import reference_parse
from casemail.accounts.endpoint import Endpoint
from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.migrate import upgrade
from casemail.ingest import IngestOptions
from casemail.mailboxes.imap_sync import sync_imap
from casemail.mailboxes.job import MailboxJob


def make_corpus(count: int, seed: int = 4711) -> list[bytes]:
    rng = random.Random(seed)
    corpus: list[bytes] = []
    threads: list[str] = []
    for n in range(count):
        message = EmailMessage()
        sender = f"customer{rng.randrange(2000)}@client{rng.randrange(300)}.example"
        message["From"] = f"Customer {n} <{sender}>"
        message["To"] = "support@example.com"
        message["Subject"] = " ".join(rng.choices(TOPIC_WORDS, k=rng.randint(3, 8)))
        message["Message-ID"] = f"<bench-{n}-{seed}@client.example>"
        message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
        if threads and rng.random() < 0.3:
            message["In-Reply-To"] = rng.choice(threads)
        threads.append(message["Message-ID"])
        paragraphs = rng.randint(2, 20)
        message.set_content(
            "\n\n".join(" ".join(rng.choices(TOPIC_WORDS, k=40)) for _ in range(paragraphs))
        )
        corpus.append(message.as_bytes(policy=policy.SMTP))
    return corpus


def fill_maildir(dovecot: Dovecot, user: MailUser, corpus: list[bytes]) -> None:
    """Write the messages straight into the user's Maildir (RFC-free, Dovecot's format)."""
    maildir = dovecot.root / "home" / user.address / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(corpus):
        (maildir / "new" / f"{1_700_000_000 + n}.M{n}P1.bench").write_bytes(raw)
    uid, gid = pwd.getpwnam("dovecot").pw_uid, grp.getgrnam("dovecot").gr_gid
    for path in [maildir.parent, maildir, *maildir.rglob("*")]:
        os.chown(path, uid, gid)


def reference_fetch(dovecot: Dovecot, user: MailUser) -> tuple[float, list[bytes]]:
    start = time.perf_counter()
    client = imaplib.IMAP4("127.0.0.1", dovecot.ports.imap)
    client.login(user.address, user.password)
    client.select("INBOX", readonly=True)
    _, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
    bodies = [part[1] for part in data if isinstance(part, tuple)]
    client.logout()
    return time.perf_counter() - start, bodies


def casemail_sync(
    dovecot: Dovecot, user: MailUser, url: str, batch_size: int = 500
) -> tuple[float, int]:
    db = Database.from_url(url)
    upgrade(db)
    with db.write() as session:
        channel_id = add_channel(session, address="support@example.com").id
    endpoint = Endpoint(
        protocol="imap",
        host="127.0.0.1",
        port=dovecot.ports.imap,
        security="none",
        username=user.address,
        secret=user.password,
        read_timeout=600,
    )
    job = MailboxJob(
        db=db,
        account_id=1,
        channel_id=channel_id,
        endpoint=endpoint,
        options=IngestOptions(),
        batch_size=batch_size,
    )
    _make_account(db)
    start = time.perf_counter()
    report = sync_imap(job)
    elapsed = time.perf_counter() - start
    db.dispose()
    return elapsed, report.stored


def _make_account(db: Database) -> None:
    from casemail.db.models import Account

    with db.write() as session:
        session.add(Account(company_id=1, role="global", name="bench", email="b@example.com"))


def report_line(name: str, count: int, seconds: float, parse_rate: float) -> None:
    rate = count / seconds
    print(f"{name:<34} {rate:9.0f} msg/s   {rate / parse_rate:6.2f} x parse-only", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="'' skips PostgreSQL"
    )
    parser.add_argument("--batch", type=int, default=500, help="messages per fetch batch")
    args = parser.parse_args()
    corpus = make_corpus(args.messages)
    size = sum(len(m) for m in corpus)
    print(f"{len(corpus)} messages, {size / 1e6:.1f} MB, seed 4711")
    with tempfile.TemporaryDirectory() as tmp:
        tokens = TokenIssuer()
        dovecot = Dovecot(TestPKI(Path(tmp) / "pki"), tokens)
        dovecot.start()
        try:
            user = dovecot.add_user()
            fill_maildir(dovecot, user, corpus)
            fetch_s, bodies = reference_fetch(dovecot, user)
            assert len(bodies) == len(corpus), (len(bodies), len(corpus))
            parse_s = reference_parse(bodies)
            parse_rate = len(bodies) / parse_s
            report_line("reference A: imaplib UID FETCH", len(bodies), fetch_s, parse_rate)
            report_line("reference B: email policy.default", len(bodies), parse_s, parse_rate)
            sqlite_s, stored = casemail_sync(dovecot, user, f"sqlite:///{tmp}/bench.db", args.batch)
            assert stored == len(corpus), stored
            report_line("casemail sync, SQLite", stored, sqlite_s, parse_rate)
            with scratch_database(args.pg) as url:
                if url:
                    pg_s, stored = casemail_sync(dovecot, user, url, args.batch)
                    report_line("casemail sync, PostgreSQL", stored, pg_s, parse_rate)
        finally:
            dovecot.stop()
            tokens.stop()


if __name__ == "__main__":
    main()
