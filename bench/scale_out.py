"""Scale-out on PostgreSQL with real ``casemail worker`` processes and a local Dovecot.

1. Idle IDLE mailboxes: one worker watches N mailboxes (IMAP IDLE, TLS); its resident
   memory (VmRSS) once every mailbox is watched, against the same worker watching none
   (the reference, measured in this run).
2. Arrival-to-case latency with IDLE: messages delivered one at a time by LMTP to the
   watched mailboxes; seconds from the start of the LMTP delivery until the message is on
   a case in the database (p50, p99), against the LMTP delivery alone (the reference).
3. Ingest throughput with 1, 2 and 4 worker processes: M mailboxes each holding K
   messages (written into the Maildirs), from the workers' start until every message is
   on a case; ratios against one worker.

4. Send throughput with 1, 2 and 4 worker processes: mails queued on one account, sent to
   an aiosmtpd peer; from the workers' start until the peer has them all.

    .venv/bin/python -m bench.scale_out [--idle 1000] [--boxes 40 --per-box 100] [--send 1000]
"""

from __future__ import annotations

import argparse
import functools
import os
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import func, select
from tests.imapsupport import mailbox_account_doc
from tests.mailservers import Dovecot, MailUser, TestPKI, TokenIssuer
from tests.mailservers.smtppeer import SmtpPeer
from tests.support import sample_message, wire_bytes

from bench.imap_sync import fill_maildir, make_corpus
from bench.pgdb import scratch_database
from casemail.accounts import service as accounts
from casemail.accounts.schemas import AccountCreate
from casemail.bootstrap import build_context
from casemail.channels.service import add_channel
from casemail.config import Settings
from casemail.db import Database
from casemail.db.models import Account, Message
from casemail.ingest import Source, ingest_raw
from casemail.outbound.service import CaseMail, send_from_case

CASEMAIL = str(Path(sys.executable).parent / "casemail")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used (proc(5): fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, seconds: float = 20.0) -> float:
    """The share of one CPU the process uses over ``seconds`` with nothing to do."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


class Installation:
    def __init__(self, url: str, dovecot: Dovecot, home: Path) -> None:
        self.url, self.dovecot, self.home = url, dovecot, home
        self.settings = Settings(home=home, database_url=url, tls_ca_file=dovecot.ca_file)
        self.ctx = build_context(self.settings)
        self.db: Database = self.ctx.db
        self.env = {
            **os.environ,
            "CASEMAIL_HOME": str(home),
            "CASEMAIL_DATABASE_URL": url,
            "CASEMAIL_TLS_CA_FILE": str(dovecot.ca_file),
            "CASEMAIL_WORKER_INTERVAL_SECONDS": "1",
        }
        self.workers: list[subprocess.Popen[bytes]] = []

    def add_mailboxes(self, users: list[MailUser], **incoming: object) -> None:
        with self.db.write() as session:
            for user in users:
                doc = mailbox_account_doc(user, port=self.dovecot.ports.imaps, **incoming)
                account, _ = accounts.create_account(
                    session,
                    AccountCreate.model_validate(doc),
                    keys=self.ctx.keys,
                    allow_private=True,
                )
                address = f"support-{account.id}@example.com"
                add_channel(session, address=address, account_id=account.id)

    def start_workers(self, count: int) -> None:
        for _ in range(count):
            self.workers.append(
                subprocess.Popen(
                    [CASEMAIL, "worker"],
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait(timeout=60)
        self.workers.clear()

    def synced(self) -> int:
        with self.db.read() as session:
            query = select(func.count()).where(Account.last_sync_ok_at.is_not(None))
            return int(session.scalar(query) or 0)

    def cases_made(self) -> int:
        with self.db.read() as session:
            query = select(func.count()).select_from(Message).where(Message.direction == "inbound")
            return int(session.scalar(query) or 0)

    def has_message(self, message_id: str) -> bool:
        with self.db.read() as session:
            query = select(Message.id).where(Message.message_id == message_id)
            return session.scalar(query) is not None


def wait(what: str, check: Callable[[], bool], seconds: float, every: float = 0.2) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise SystemExit(f"not within {seconds} s: {what}")
        time.sleep(every)
    return time.monotonic() - start


def idle_memory(dovecot: Dovecot, url: str, count: int) -> list[MailUser]:
    cm = Installation(url, dovecot, Path(tempfile.mkdtemp()) / "home")
    cm.start_workers(1)
    time.sleep(5)
    (worker,) = cm.workers
    baseline = rss_mib(worker.pid)
    baseline_cpu = idle_cpu(worker.pid)
    users = [dovecot.add_user(f"idle{n:04d}") for n in range(count)]
    cm.add_mailboxes(users, poll_interval_seconds=300)
    took = wait(f"{count} mailboxes watched", lambda: cm.synced() == count, 600, every=1.0)
    time.sleep(10)  # settled
    watched = rss_mib(worker.pid)
    watching_cpu = idle_cpu(worker.pid)
    print(f"\n1. {count} idle IDLE mailboxes in one worker (all watched after {took:.0f} s)")
    print(f"   worker RSS watching none (reference):   {baseline:7.1f} MiB")
    print(f"   worker RSS watching {count:5d}:            {watched:7.1f} MiB")
    print(
        f"   per mailbox: {(watched - baseline) * 1024 / count:.0f} KiB; "
        f"threads: {threads(worker.pid)}"
    )
    print(f"   ratio to the reference: {watched / baseline:.2f}")
    print(f"   CPU while idle: {baseline_cpu:.1%} watching none, {watching_cpu:.1%} watching all")
    # The server's own notification delay, with the watchers connected.
    bare = bare_idle(dovecot, dovecot.add_user("bare-idle"))
    latency(cm, dovecot, users, bare)
    cm.stop_workers()
    cm.db.dispose()
    return users


LATENCY_SAMPLES = 100


def bare_idle(dovecot: Dovecot, user: MailUser, rounds: int = 20) -> list[float]:
    """Reference: seconds from an LMTP delivery until a bare imapclient IDLE session on the
    same Dovecot hears of it (EXISTS): what the server itself takes to tell."""
    seen: list[float] = []
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with IMAPClient("127.0.0.1", port=dovecot.ports.imaps, ssl_context=context) as client:
        client.login(user.address, user.password)
        client.select_folder("INBOX", readonly=True)
        for n in range(rounds):
            client.idle()
            start = time.monotonic()
            with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=30) as lmtp:
                message = sample_message(subject=f"Bare {n}")
                lmtp.sendmail("sender@customer.example", [user.address], message.as_bytes())
            heard = False
            while not heard and time.monotonic() - start < 30:
                heard = any(b"EXISTS" in response for response in client.idle_check(timeout=5))
            if not heard:
                raise SystemExit("the bare IDLE client heard nothing within 30 s")
            seen.append(time.monotonic() - start)
            client.idle_done()
    return seen


def latency(cm: Installation, dovecot: Dovecot, users: list[MailUser], bare: list[float]) -> None:
    samples: list[float] = []
    lmtp_alone: list[float] = []
    for n in range(LATENCY_SAMPLES):
        user = users[(n * 7919) % len(users)]
        message = sample_message(subject=f"Latency {n}")
        message_id = message["Message-ID"].strip("<>")
        start = time.monotonic()
        with smtplib.LMTP(dovecot.host, dovecot.ports.lmtp, timeout=30) as lmtp:
            lmtp.sendmail("sender@customer.example", [user.address], message.as_bytes())
        lmtp_alone.append(time.monotonic() - start)
        wait("a case", functools.partial(cm.has_message, message_id), 60, every=0.005)
        samples.append(time.monotonic() - start)
    print(f"\n2. arrival-to-case latency with IDLE, {LATENCY_SAMPLES} messages, one at a time")
    print(f"   LMTP delivery alone (reference): p50 {pct(lmtp_alone, 50):.3f} s")
    print(f"   bare IDLE client hears of it:    p50 {pct(bare, 50):.3f} s (reference)")
    print(
        f"   delivery to case:                p50 {pct(samples, 50):.3f} s   "
        f"p99 {pct(samples, 99):.3f} s"
    )


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def all_made(cm: Installation, total: int) -> bool:
    return cm.cases_made() >= total


def ingest_throughput(dovecot: Dovecot, admin: str, boxes: int, per_box: int) -> None:
    corpus = make_corpus(boxes * per_box)
    total = boxes * per_box
    print(f"\n3. ingest: {boxes} mailboxes x {per_box} messages = {total}, PostgreSQL")
    first: float | None = None
    for workers in (1, 2, 4):
        with scratch_database(admin) as url:
            assert url is not None
            cm = Installation(url, dovecot, Path(tempfile.mkdtemp()) / "home")
            users = [dovecot.add_user(f"w{workers}b{n:03d}") for n in range(boxes)]
            for n, user in enumerate(users):
                fill_maildir(dovecot, user, corpus[n * per_box : (n + 1) * per_box])
            cm.add_mailboxes(users, poll_interval_seconds=300)
            made = functools.partial(all_made, cm, total)
            seconds = timed_run(cm, workers, "all cases", made, every=0.5)
        first = report(workers, seconds, total, "msg/s", first)


def timed_run(
    cm: Installation, workers: int, what: str, done: Callable[[], bool], every: float
) -> float:
    """Seconds from starting ``workers`` worker processes until ``done`` (asked every
    ``every`` seconds); then they stop."""
    start = time.monotonic()
    cm.start_workers(workers)
    wait(what, done, 1800, every=every)
    seconds = time.monotonic() - start
    cm.stop_workers()
    cm.db.dispose()
    return seconds


def report(workers: int, seconds: float, count: int, unit: str, first: float | None) -> float:
    """Print one row; returns the one-worker rate the ratios are taken against."""
    rate = count / seconds
    first = first or rate
    print(f"   {workers} worker(s): {seconds:6.1f} s  {rate:7.0f} {unit}  ratio {rate / first:.2f}")
    return first


def send_throughput(dovecot: Dovecot, admin: str, tokens: TokenIssuer, count: int) -> None:
    """``count`` mails queued on one case and one global account (plain SMTP to an aiosmtpd
    peer in this process), then the workers started; until the peer has them all."""
    peer = SmtpPeer(TestPKI(Path(tempfile.mkdtemp())), tokens, mode="plain")
    peer.start()
    print(f"\n4. send: {count} queued mails, one account, aiosmtpd peer, PostgreSQL")
    first: float | None = None
    try:
        for workers in (1, 2, 4):
            before = len(peer.received)
            with scratch_database(admin) as url:
                assert url is not None
                cm = Installation(url, dovecot, Path(tempfile.mkdtemp()) / "home")
                queue_mail(cm, peer, count)
                done = functools.partial(peer_has, peer, before + count)
                seconds = timed_run(cm, workers, "all sent", done, every=0.2)
            first = report(workers, seconds, count, "mail/s", first)
    finally:
        peer.stop()


def peer_has(peer: SmtpPeer, total: int) -> bool:
    return len(peer.received) >= total


def queue_mail(cm: Installation, peer: SmtpPeer, count: int) -> None:
    peer.add_login("office@example.com", "bench-password")
    doc = {
        "role": "global",
        "is_default": True,
        "name": "Office",
        "email": "office@example.com",
        "outgoing": {
            "host": peer.host,
            "port": peer.port,
            "security": "none",
            "same_credentials": False,
            "password": "bench-password",
        },
    }
    with cm.db.write() as session:
        accounts.create_account(
            session, AccountCreate.model_validate(doc), keys=cm.ctx.keys, allow_private=True
        )
        channel = add_channel(session, address="support@example.com").id
    raw = wire_bytes(sample_message(subject="Printer broken"))
    case_id = ingest_raw(cm.db, channel, raw, Source("api")).case_id
    assert case_id is not None
    with cm.db.write() as session:
        for n in range(count):
            mail = CaseMail(to=("ann@customer.example",), text=f"Update {n}.")
            send_from_case(session, case_id, mail, give_up_after=timedelta(days=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--boxes", type=int, default=40)
    parser.add_argument("--per-box", type=int, default=100)
    parser.add_argument("--send", type=int, default=1000)
    parser.add_argument(
        "--pg",
        default=os.environ.get("CASEMAIL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    tokens = TokenIssuer()
    tokens.start()
    dovecot = Dovecot(TestPKI(Path(tempfile.mkdtemp())), tokens)
    dovecot.start()
    try:
        print(f"machine: {os.cpu_count()} CPUs; PostgreSQL at {args.pg}")
        with scratch_database(args.pg) as url:
            if url is None:
                return
            if args.idle:
                idle_memory(dovecot, url, args.idle)
        if args.boxes:
            ingest_throughput(dovecot, args.pg, args.boxes, args.per_box)
        send_throughput(dovecot, args.pg, tokens, args.send)
    finally:
        dovecot.stop()
        tokens.stop()


if __name__ == "__main__":
    main()
