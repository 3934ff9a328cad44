"""The SMTP listener against real clients: Python's smtplib, swaks and raw sockets."""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.blobs import get_blob
from casemail.db.models import Case, InboundReceipt, Message
from casemail.listener import replies
from tests.integration.conftest import RunningListener
from tests.support import RawSMTP, sample_message, wire_bytes

ListenerFactory = Callable[..., RunningListener]
needs_swaks = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")


@pytest.fixture
def channel(db: Database) -> int:
    with db.write() as session:
        return add_channel(session, address="support@example.com").id


def count(db: Database, model: type) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def client_tls(listener: RunningListener) -> ssl.SSLContext:
    """Verify the listener's self-signed certificate properly, hostname included."""
    return ssl.create_default_context(cafile=str(listener.cert_file))


def only_case(db: Database) -> Case:
    with db.read() as session:
        cases = list(session.scalars(select(Case)))
    assert len(cases) == 1
    return cases[0]


def test_plain_smtp_creates_case_and_keeps_raw_bytes(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory()
    message = sample_message()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        refused = client.send_message(message)
    assert refused == {}
    case = only_case(db)
    assert case.subject == "Printer on fire"
    with db.read() as session:
        receipt = session.scalars(select(InboundReceipt)).one()
        assert receipt.source == "smtp"
        assert receipt.peer == "127.0.0.1"
        assert receipt.envelope_to == ["support@example.com"]
        stored = get_blob(session, receipt.raw_sha256)
    # smtplib sends CRLF line endings and dot-stuffs; what we keep is the message itself.
    assert stored == wire_bytes(message)


def test_starttls_with_verified_certificate(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, _ = client.starttls(context=client_tls(listener))
        assert code == 220
        client.send_message(sample_message())
    assert count(db, Case) == 1


def test_implicit_tls_port(db: Database, channel: int, listener_factory: ListenerFactory) -> None:
    listener = listener_factory()
    with smtplib.SMTP_SSL("127.0.0.1", listener.tls_port, context=client_tls(listener)) as client:
        client.send_message(sample_message())
    assert count(db, Case) == 1


def test_tls_required_refuses_plain_mail_from(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(smtp_require_tls=True)
    raw = RawSMTP("127.0.0.1", listener.port)
    assert raw.command(b"EHLO client.example")[0] == 250
    assert raw.command(b"MAIL FROM:<alice@customer.example>") == (
        530,
        replies.TLS_REQUIRED[4:],
    )
    raw.close()
    # After STARTTLS the same client is accepted.
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.starttls(context=client_tls(listener))
        client.send_message(sample_message())
    # And the implicit-TLS port counts as encrypted.
    with smtplib.SMTP_SSL("127.0.0.1", listener.tls_port, context=client_tls(listener)) as client:
        client.send_message(sample_message(subject="second"))
    assert count(db, Case) == 2


def test_unknown_recipient_refused_at_rcpt(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.ehlo()
        client.mail("alice@customer.example")
        code, text = client.rcpt("nobody@example.com")
    assert code == 550
    assert b"5.1.1" in text
    assert count(db, InboundReceipt) == 0


def test_plus_address_reaches_channel(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.send_message(sample_message(to="Support+c42@Example.com"))
    assert count(db, Case) == 1


def test_listener_allow_list_refuses_other_clients(
    db: Database, channel: int, listener_factory: ListenerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    listener = listener_factory(smtp_allowed_networks="192.0.2.0/24,198.51.100.0/24")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP("127.0.0.1", listener.port, timeout=5)
    assert refused.value.smtp_code == 554
    assert "refused connection from 127.0.0.1" in caplog.text
    assert count(db, InboundReceipt) == 0


def test_listener_allow_list_admits_listed_range(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(smtp_allowed_networks="127.0.0.0/8")
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.send_message(sample_message())
    assert count(db, Case) == 1


def test_channel_allow_list(db: Database, listener_factory: ListenerFactory) -> None:
    with db.write() as session:
        add_channel(session, address="billing@example.com", allowed_networks=["192.0.2.0/24"])
        add_channel(session, address="sales@example.com", allowed_networks=["127.0.0.1/32"])
    listener = listener_factory()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.ehlo()
        client.mail("alice@customer.example")
        code, text = client.rcpt("billing@example.com")
        assert (code, text.decode()) == (554, replies.CHANNEL_REFUSED[4:])
        assert client.rcpt("sales@example.com")[0] == 250
        client.rset()
    assert count(db, InboundReceipt) == 0


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: smuggle\r\n\r\nfirst\n.\r\nMAIL FROM:<x@evil.example>\r\n.\r\n",
        b"Subject: smuggle\r\n\r\nfirst\r\n.\nRCPT TO:<x@example.com>\r\n.\r\n",
        b"Subject: bare cr\r\n\r\nline\rline\r\n.\r\n",
    ],
    ids=["lf-dot-crlf", "crlf-dot-lf", "bare-cr"],
)
def test_bare_line_endings_refused(
    db: Database, channel: int, listener_factory: ListenerFactory, data: bytes
) -> None:
    listener = listener_factory()
    raw = RawSMTP("127.0.0.1", listener.port)
    raw.command(b"EHLO client.example")
    assert raw.command(b"MAIL FROM:<alice@customer.example>")[0] == 250
    assert raw.command(b"RCPT TO:<support@example.com>")[0] == 250
    assert raw.command(b"DATA")[0] == 354
    code, text = raw.send_raw(data)
    assert (code, text) == (554, replies.BAD_LINE_ENDINGS[4:])
    # The session goes on: a clean message afterwards is accepted.
    assert raw.command(b"MAIL FROM:<alice@customer.example>")[0] == 250
    assert raw.command(b"RCPT TO:<support@example.com>")[0] == 250
    assert raw.command(b"DATA")[0] == 354
    clean = b"From: alice@customer.example\r\nSubject: clean\r\n\r\nok\r\n.\r\n"
    assert raw.send_raw(clean)[0] == 250
    raw.close()
    with db.read() as session:
        subjects = list(session.scalars(select(Case.subject)))
    assert subjects == ["clean"]


def test_size_limit_552(db: Database, channel: int, listener_factory: ListenerFactory) -> None:
    listener = listener_factory(max_message_size=2000)
    big = sample_message(body="x" * 70 + "\n")
    big.set_content(("y" * 70 + "\n") * 100)
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "2000"
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            # SIZE declared up front (RFC 1870) is refused at MAIL FROM.
            client.sendmail(
                "alice@customer.example",
                ["support@example.com"],
                wire_bytes(big),
                mail_options=[f"SIZE={len(wire_bytes(big))}"],
            )
        assert declared.value.smtp_code == 552
    raw = RawSMTP("127.0.0.1", listener.port)
    raw.command(b"EHLO client.example")
    raw.command(b"MAIL FROM:<alice@customer.example>")
    raw.command(b"RCPT TO:<support@example.com>")
    raw.command(b"DATA")
    code, _ = raw.send_raw(wire_bytes(big) + b".\r\n")
    assert code == 552
    raw.close()
    assert count(db, InboundReceipt) == 0


def test_eight_bit_headers_and_smtputf8(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory()
    data = (
        "From: José Müller <jose@customer.example>\r\nTo: support@example.com\r\n"
        "Subject: Café außer Betrieb\r\nMessage-ID: <8bit@customer.example>\r\n\r\n"
        "Grüße\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail(
            "jose@customer.example", ["support@example.com"], data, mail_options=["BODY=8BITMIME"]
        )
    case = only_case(db)
    assert case.subject == "Café außer Betrieb"
    assert case.contact is not None
    assert case.contact.name == "José Müller"


def test_two_channels_one_transaction(db: Database, listener_factory: ListenerFactory) -> None:
    with db.write() as session:
        add_channel(session, address="support@example.com")
        add_channel(session, address="sales@example.com")
    listener = listener_factory()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.sendmail(
            "alice@customer.example",
            ["support@example.com", "sales@example.com", "SUPPORT@example.com"],
            wire_bytes(sample_message()),
        )
    with db.read() as session:
        channels = sorted(session.scalars(select(Case.channel_id)))
    assert len(channels) == 2
    assert len(set(channels)) == 2


def test_replies_thread_onto_the_case(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory()
    first = sample_message()
    with smtplib.SMTP("127.0.0.1", listener.port) as client:
        client.send_message(first)
        case = only_case(db)
        client.send_message(
            sample_message(subject="Re: Printer on fire", in_reply_to=first["Message-ID"])
        )
        client.send_message(sample_message(subject=f"Still broken [Case #{case.id}]"))
        client.send_message(first)  # the same message again: a duplicate, not a 4th entry
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        rows = session.scalars(select(Message).where(Message.case_id == case.id)).all()
    assert [m.subject for m in rows] == [
        "Printer on fire",
        "Re: Printer on fire",
        f"Still broken [Case #{case.id}]",
    ]


@needs_swaks
@pytest.mark.parametrize("mode", ["plain", "starttls", "implicit-tls"])
def test_swaks_client(
    db: Database, channel: int, listener_factory: ListenerFactory, mode: str
) -> None:
    listener = listener_factory()
    port = listener.tls_port if mode == "implicit-tls" else listener.port
    tls_flag = {"plain": [], "starttls": ["--tls"], "implicit-tls": ["--tlsc"]}[mode]
    result = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(port),
            "--to",
            "support@example.com",
            "--from",
            "bob@customer.example",
            "--header",
            f"Subject: swaks {mode}",
            "--body",
            "sent by swaks",
            "--timeout",
            "10",
            *tls_flag,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 OK: stored as" in result.stdout
    assert only_case(db).subject == f"swaks {mode}"


@needs_swaks
def test_swaks_refused_outside_allow_list(
    db: Database, channel: int, listener_factory: ListenerFactory
) -> None:
    listener = listener_factory(smtp_allowed_networks="10.0.0.0/8")
    result = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(listener.port),
            "--to",
            "support@example.com",
            "--timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "554 5.7.1" in result.stdout
    assert count(db, InboundReceipt) == 0
