"""Sending from a case through the outbox to a real SMTP server (aiosmtpd peer on
127.0.0.1): STARTTLS, implicit TLS, AUTH; 451 then 250; 550; a server that stalls after
DATA; claims, reset, retry, cancel, suspend. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import email
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from email import policy
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from casemail.accounts import service as accounts
from casemail.accounts.schemas import AccountCreate
from casemail.bootstrap import AppContext, build_context
from casemail.channels.service import add_channel
from casemail.config import Settings
from casemail.db.models import Message, OutboxEntry
from casemail.db.types import utcnow
from casemail.identity import load_identity
from casemail.ingest import Source, ingest_raw
from casemail.outbound import service as outbox
from casemail.outbound.compose import OutgoingAttachment
from casemail.outbound.sender import send_due
from casemail.outbound.service import CaseMail, OutboundError
from casemail.users.service import create_user
from tests.conftest import free_port
from tests.imapsupport import mailbox_account_doc
from tests.mailservers.dovecot import Dovecot, MailUser
from tests.mailservers.pki import TestPKI
from tests.mailservers.smtppeer import REFUSED_DOMAIN, SmtpPeer
from tests.support import sample_message, wire_bytes

PeerFactory = Callable[..., SmtpPeer]
TWO_DAYS = timedelta(days=2)
PASSWORD = "outbound-canary-secret"  # the canary watch fails the run if it is ever logged


@pytest.fixture
def ctx(db_url: str, tmp_path: Path, mail_pki: TestPKI) -> AppContext:
    settings = Settings(
        home=tmp_path / "home",
        database_url=db_url,
        tls_ca_file=mail_pki.ca_file,
        outbox_data_timeout_seconds=2.0,
    )
    return build_context(settings)


def global_account(
    ctx: AppContext,
    peer: SmtpPeer,
    *,
    security: str,
    email: str = "office@example.com",
    role: str = "global",
    user: str | None = None,
) -> int:
    peer.add_login(email, PASSWORD)
    doc: dict[str, Any] = {
        "role": role,
        "is_default": True,
        "name": "Office",
        "email": email,
        "outgoing": {
            "host": peer.host,
            "port": peer.port,
            "security": security,
            "same_credentials": False,
            "password": PASSWORD,
            "from_name": "Example Office",
        },
    }
    if user is not None:
        doc["user"] = user
    with ctx.db.write() as session:
        account, _ = accounts.create_account(
            session, AccountCreate.model_validate(doc), keys=ctx.keys, allow_private=True
        )
        return account.id


def a_case(ctx: AppContext) -> int:
    with ctx.db.write() as session:
        channel = add_channel(session, address="support@example.com").id
    first = sample_message(sender="Ann <ann@customer.example>", subject="Printer broken")
    result = ingest_raw(ctx.db, channel, wire_bytes(first), Source("api"))
    assert result.case_id is not None
    return result.case_id


def send(ctx: AppContext, case_id: int, **kw: Any) -> int:
    mail = CaseMail(to=kw.pop("to", ("ann@customer.example",)), text="It works again.", **kw)
    with ctx.db.write() as session:
        return outbox.send_from_case(session, case_id, mail, give_up_after=TWO_DAYS).id


def run(ctx: AppContext, *, later: timedelta = timedelta(0)) -> int:
    return asyncio.run(send_due(ctx.db, ctx.settings, ctx.keys, now=utcnow() + later))


def entry(ctx: AppContext, outbox_id: int) -> OutboxEntry:
    with ctx.db.read() as session:
        return session.get_one(OutboxEntry, outbox_id)


@pytest.mark.parametrize(("security", "mode"), [("starttls", "starttls"), ("tls", "tls")])
def test_sends_with_tls_and_auth_threaded_onto_the_case(
    ctx: AppContext, smtp_peer_factory: PeerFactory, security: str, mode: str
) -> None:
    peer = smtp_peer_factory(mode)
    global_account(ctx, peer, security=security)
    case_id = a_case(ctx)
    outbox_id = send(
        ctx,
        case_id,
        cc=("boss@customer.example",),
        bcc=("audit@example.com",),
        html="<p>It works <b>again</b>.</p>",
        attachments=(OutgoingAttachment("report.pdf", "application/pdf", b"%PDF-1.4 x"),),
    )

    assert run(ctx) == 1

    sent = entry(ctx, outbox_id)
    assert sent.state == "sent"
    assert sent.last_code == 250
    [received] = peer.received
    assert received.login == "office@example.com"
    assert set(received.rcpt_tos) == {
        "ann@customer.example",
        "boss@customer.example",
        "audit@example.com",
    }
    message = email.message_from_bytes(received.data, policy=policy.default)
    with ctx.db.read() as session:
        identity = load_identity(session)
        first = session.scalars(select(Message).where(Message.direction == "inbound")).one()
        history = session.scalars(select(Message).where(Message.direction == "outbound")).one()
    assert message["Message-ID"].strip("<>") == sent.message_id
    assert message["In-Reply-To"] == f"<{first.message_id}>"
    assert message["Subject"] == f"[Case #{case_id}] Re: Printer broken"
    assert message["Reply-To"] == identity.reply_address("support@example.com", case_id)
    assert message["From"] == "Example Office <office@example.com>"
    assert message["Bcc"] is None  # RFC 5322 3.6.3: never shown to the other recipients
    assert message["Cc"] == "boss@customer.example"
    assert identity.marker(case_id) in received.data.decode()
    assert [p.get_filename() for p in message.iter_attachments()] == ["report.pdf"]
    assert history.case_id == case_id
    assert history.sent_at is not None


def test_a_reply_to_our_mail_threads_back_onto_the_case(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    peer = smtp_peer_factory("starttls")
    global_account(ctx, peer, security="starttls")
    case_id = a_case(ctx)
    send(ctx, case_id)
    run(ctx)
    ours = email.message_from_bytes(peer.received[0].data, policy=policy.default)
    reply = sample_message(
        sender="ann@customer.example",
        subject=f"Re: {ours['Subject']}",
        in_reply_to=ours["Message-ID"],
    )
    with ctx.db.read() as session:
        channel_id = session.scalars(select(Message.channel_id)).first()
    assert channel_id is not None
    result = ingest_raw(ctx.db, channel_id, wire_bytes(reply), Source("api"))
    assert result.case_id == case_id


def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    peer = smtp_peer_factory("plain")  # no STARTTLS at all
    global_account(ctx, peer, security="starttls")
    outbox_id = send(ctx, a_case(ctx))

    run(ctx)

    waiting = entry(ctx, outbox_id)
    assert waiting.state == "ready"
    assert "does not offer STARTTLS" in (waiting.last_error or "")
    assert peer.received == []
    assert peer.data_commands == 0


def test_451_then_250_is_retried_and_sent_once(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    peer = smtp_peer_factory("starttls")
    global_account(ctx, peer, security="starttls")
    outbox_id = send(ctx, a_case(ctx))
    peer.answer_next_data("451 4.3.0 Mailbox temporarily unavailable")

    run(ctx)
    waiting = entry(ctx, outbox_id)
    assert waiting.state == "ready"
    assert waiting.last_code == 451
    # The server's own words, said to be temporary (that line could not fail before).
    assert (
        waiting.last_error == "Temporary failure, retrying: 4.3.0 Mailbox temporarily unavailable"
    )
    assert waiting.next_attempt_at > utcnow()
    assert run(ctx) == 0  # not due yet: the back-off holds
    run(ctx, later=timedelta(minutes=2))

    assert entry(ctx, outbox_id).state == "sent"
    assert entry(ctx, outbox_id).attempts == 2
    assert len(peer.received) == 1


def test_550_is_an_error_at_once_with_the_reason(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    peer = smtp_peer_factory("starttls")
    global_account(ctx, peer, security="starttls")
    outbox_id = send(ctx, a_case(ctx), to=(f"nobody@{REFUSED_DOMAIN}",))

    run(ctx)

    failed = entry(ctx, outbox_id)
    assert failed.state == "error"
    assert failed.last_code == 550
    assert "User unknown" in (failed.last_error or "")
    assert peer.received == []
    assert run(ctx, later=timedelta(days=1)) == 0  # an error is not retried by itself


def test_temporary_failures_give_up_after_the_give_up_time(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    peer = smtp_peer_factory("starttls")
    global_account(ctx, peer, security="starttls")
    outbox_id = send(ctx, a_case(ctx))
    peer.answer_next_data("451 4.3.0 later", "452 4.2.2 still full")
    run(ctx)
    with ctx.db.write() as session:
        session.get_one(OutboxEntry, outbox_id).give_up_at = utcnow()
    run(ctx, later=timedelta(minutes=2))
    given_up = entry(ctx, outbox_id)
    assert given_up.state == "error"
    assert "Gave up after 2 attempts" in (given_up.last_error or "")


def test_a_server_that_stalls_after_data_keeps_the_message_queued(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    peer = smtp_peer_factory("starttls")
    global_account(ctx, peer, security="starttls")
    outbox_id = send(ctx, a_case(ctx))
    peer.stall_next_data(4.0, "451 4.4.2 timed out")  # longer than our 2 s DATA timeout

    run(ctx)
    stalled = entry(ctx, outbox_id)
    assert stalled.state == "ready"
    assert stalled.maybe_duplicate is True  # no answer after DATA: recorded as such
    assert "no answer" in (stalled.last_error or "")
    assert peer.received == []

    run(ctx, later=timedelta(minutes=2))
    assert entry(ctx, outbox_id).state == "sent"
    assert len(peer.received) == 1  # sent once


def test_reset_retry_cancel_and_suspend(ctx: AppContext, smtp_peer_factory: PeerFactory) -> None:
    peer = smtp_peer_factory("starttls")
    account_id = global_account(ctx, peer, security="starttls")
    case_id = a_case(ctx)
    refused = send(ctx, case_id, to=(f"x@{REFUSED_DOMAIN}",))
    run(ctx)
    with ctx.db.write() as session:
        with pytest.raises(OutboundError, match="not sending"):
            outbox.reset(session, refused)
        outbox.cancel(session, refused)
    assert entry(ctx, refused).state == "cancelled"

    with ctx.db.write() as session:
        outbox.suspend(session)
    held = send(ctx, case_id)
    assert run(ctx) == 0
    with ctx.db.write() as session:
        outbox.suspend(session, on=False)
        outbox.suspend(session, account_id=account_id)
    assert run(ctx) == 0
    with ctx.db.write() as session:
        outbox.suspend(session, account_id=account_id, on=False)
    assert run(ctx) == 1
    assert entry(ctx, held).state == "sent"

    # A sender that died mid-send: its claim expires, a reset (or the expiry) sends again.
    stuck = send(ctx, case_id)
    with ctx.db.write() as session:
        row = session.get_one(OutboxEntry, stuck)
        row.state, row.claimed_until = "sending", utcnow() + timedelta(minutes=10)
    assert run(ctx) == 0
    with ctx.db.write() as session:
        outbox.reset(session, stuck)
    assert run(ctx) == 1
    assert entry(ctx, stuck).maybe_duplicate is True


def test_accounts_send_in_parallel_and_agents_send_as_themselves(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    """An agent's mail goes through their personal account, the rest through the global
    one; a slow server for one account does not hold up the other (one round, both
    connections at once)."""
    slow, fast = smtp_peer_factory("starttls"), smtp_peer_factory("starttls")
    global_account(ctx, slow, security="starttls")
    with ctx.db.write() as session:
        agent = create_user(session, name="Agent", email="agent@example.com").id
    global_account(
        ctx,
        fast,
        security="starttls",
        email="agent@example.com",
        role="personal",
        user="agent@example.com",
    )
    case_id = a_case(ctx)
    office = send(ctx, case_id)
    personal = send(ctx, case_id, user_id=agent)
    slow.slow_next_data(1.0)  # under the 2 s DATA timeout of these tests

    assert run(ctx) == 2

    assert entry(ctx, office).state == entry(ctx, personal).state == "sent"
    [from_office], [from_agent] = slow.received, fast.received
    assert from_agent.login == "agent@example.com"
    assert from_agent.mail_from == "agent@example.com"
    # The agent's server took its message while the office server was still waiting.
    assert from_agent.accepted_at < from_office.accepted_at


def test_bad_requests_get_clear_errors(ctx: AppContext, smtp_peer_factory: PeerFactory) -> None:
    case_id = a_case(ctx)
    with ctx.db.write() as session, pytest.raises(OutboundError, match="no account to send"):
        outbox.send_from_case(
            session, case_id, CaseMail(to=("a@b.example",), text="x"), give_up_after=TWO_DAYS
        )
    global_account(ctx, smtp_peer_factory("starttls"), security="starttls")
    cases = [
        (CaseMail(to=(), text="x"), "at least one recipient"),
        (CaseMail(to=("not an address",), text="x"), "not a valid address"),
        (CaseMail(to=("a@b.example",)), "text or an HTML body"),
        (CaseMail(to=("a@b.example",), text="x", reply_to_message=999), "not on case"),
        (CaseMail(to=("a@b.example",), text="x", account_id=999), "not an active sending"),
    ]
    for mail, words in cases:
        with ctx.db.write() as session, pytest.raises(OutboundError, match=words):
            outbox.send_from_case(session, case_id, mail, give_up_after=TWO_DAYS)


def _sender_process(ctx: AppContext, claim_batch: int = 100) -> subprocess.Popen[bytes]:
    spec = {
        "home": str(ctx.settings.home),
        "db_url": ctx.settings.resolved_database_url,
        "ca_file": str(ctx.settings.tls_ca_file),
        "claim_batch": str(claim_batch),
    }
    command = [sys.executable, "-m", "tests.outbox_child", json.dumps(spec)]
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the sender never started"
        time.sleep(0.02)


def _started(peer: SmtpPeer, before: int, child: subprocess.Popen[bytes]) -> bool:
    return peer.data_commands > before or child.poll() is not None


def _expire_claims(ctx: AppContext) -> None:
    with ctx.db.write() as session:
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.state == "sending")
            .values(claimed_until=utcnow() - timedelta(seconds=1))
        )


@pytest.mark.timeout(300)
def test_kill_9_of_the_sender_mid_batch_sends_each_message_once_or_a_recorded_duplicate(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    """Repeated kill -9 at random points of a 40-message batch: afterwards every message is
    sent; one the server got twice carries the same Message-ID and is marked
    ``maybe_duplicate`` (the sender died between the server's 250 and the database write)."""
    peer = smtp_peer_factory("starttls")
    global_account(ctx, peer, security="starttls")
    case_id = a_case(ctx)
    ids = [send(ctx, case_id, subject=f"update {n}") for n in range(40)]
    chance = random.Random(4711)
    kills = 0
    while len(peer.received) < len(ids) and kills < 5:
        peer.slow_next_data(0.1, count=len(ids))  # a little time per message, then accepted
        started = peer.data_commands
        child = _sender_process(ctx)
        _wait_for(partial(_started, peer, started, child))
        time.sleep(chance.uniform(0.0, 1.5))  # somewhere in the middle of the batch
        child.kill()  # SIGKILL: no cleanup, its claims stay
        child.wait()
        kills += 1
        _expire_claims(ctx)  # as if the claim time had passed
    run(ctx, later=timedelta(minutes=10))

    with ctx.db.read() as session:
        entries = session.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(ids))).all()
    assert {e.state for e in entries} == {"sent"}
    copies = Counter(
        email.message_from_bytes(r.data, policy=policy.default)["Message-ID"].strip("<>")
        for r in peer.received
    )
    assert set(copies) == {e.message_id for e in entries}  # every message arrived
    for entry in entries:
        assert copies[entry.message_id] <= 2
        if copies[entry.message_id] == 2:
            assert entry.maybe_duplicate, entry.message_id  # never an unrecorded duplicate
    assert kills >= 1
    # Only the message on its way to the server when a sender died is in doubt: one per kill.
    assert sum(e.maybe_duplicate for e in entries) <= kills


@pytest.mark.timeout(300)
def test_three_senders_at_once_send_each_message_once(
    ctx: AppContext, smtp_peer_factory: PeerFactory
) -> None:
    """Three sender processes on one outbox, claiming 5 at a time: every message reaches
    the server once, none is marked as a possible duplicate, and the work is shared."""
    peer = smtp_peer_factory("starttls")
    global_account(ctx, peer, security="starttls")
    case_id = a_case(ctx)
    ids = [send(ctx, case_id, subject=f"notice {n}") for n in range(60)]
    peer.slow_next_data(0.05, count=len(ids))  # time for the senders to overlap
    senders = [_sender_process(ctx, claim_batch=5) for _ in range(3)]
    handled = []
    for sender in senders:
        out, err = sender.communicate(timeout=240)
        assert sender.returncode == 0, err.decode()
        handled.append(int(out.decode().split()[-1]))

    with ctx.db.read() as session:
        entries = session.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(ids))).all()
    assert {e.state for e in entries} == {"sent"}
    assert not any(e.maybe_duplicate for e in entries)
    assert {e.attempts for e in entries} == {1}
    copies = Counter(
        email.message_from_bytes(r.data, policy=policy.default)["Message-ID"].strip("<>")
        for r in peer.received
    )
    assert copies == Counter({e.message_id: 1 for e in entries})
    assert sum(handled) == len(ids)
    assert sum(1 for n in handled if n) >= 2, handled  # more than one sender took part


def _mailbox_account(ctx: AppContext, peer: SmtpPeer, user: MailUser, *, imap_port: int) -> int:
    peer.add_login(user.address, user.password)
    doc = mailbox_account_doc(user, port=imap_port, sent_folder="Sent Items")
    doc["is_default"] = True
    doc["outgoing"] = {
        "host": peer.host,
        "port": peer.port,
        "security": "starttls",
        "save_to_sent": True,
    }
    with ctx.db.write() as session:
        account, _ = accounts.create_account(
            session, AccountCreate.model_validate(doc), keys=ctx.keys, allow_private=True
        )
        return account.id


def test_a_copy_goes_to_the_sent_folder_when_the_account_asks(
    ctx: AppContext, smtp_peer_factory: PeerFactory, dovecot: Dovecot, mail_user: MailUser
) -> None:
    peer = smtp_peer_factory("starttls")
    _mailbox_account(ctx, peer, mail_user, imap_port=dovecot.ports.imaps)
    outbox_id = send(ctx, a_case(ctx))

    run(ctx)

    sent = entry(ctx, outbox_id)
    assert sent.state == "sent"
    assert sent.last_error is None
    with dovecot.imap(mail_user) as client:
        client.select_folder("Sent Items", readonly=True)
        [uid] = client.search("ALL")
        stored = client.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
    assert sent.message_id.encode() in stored[b"BODY[]"]
    assert b"\\Seen" in stored[b"FLAGS"]


def test_a_failed_sent_copy_is_noted_and_the_message_stays_sent(
    ctx: AppContext, smtp_peer_factory: PeerFactory, mail_user: MailUser
) -> None:
    peer = smtp_peer_factory("starttls")
    _mailbox_account(ctx, peer, mail_user, imap_port=free_port())  # nothing listens there
    outbox_id = send(ctx, a_case(ctx))

    run(ctx)

    sent = entry(ctx, outbox_id)
    assert sent.state == "sent"
    assert (sent.last_error or "").startswith("Sent; copy to Sent Items failed")
    assert len(peer.received) == 1
