""" "Test outgoing": send one short test message through the account's SMTP server.

TLS is what the account says, explicitly: implicit TLS (RFC 8314) or STARTTLS (RFC 3207)
that must succeed, never aiosmtplib's opportunistic default, never a silent downgrade.
"""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid

import aiosmtplib

from casemail.accounts.conntest_common import (
    CheckFailed,
    Passed,
    finish,
    refused_login,
    require_credentials,
    scrub,
    security_words,
    server_words,
    tls_context,
    where,
)
from casemail.accounts.conntest_explain import reach, silent_server, step
from casemail.accounts.endpoint import Endpoint, TestOutcome

SUBJECT = "casemail test message"


async def test_outgoing(endpoint: Endpoint, *, sender: str, to: str) -> TestOutcome:
    """Connect, secure, authenticate (if ``auth_required``) and send a test message from
    ``sender`` to ``to``; OK carries the server's final reply code and text."""
    result: Passed | CheckFailed
    try:
        if endpoint.protocol != "smtp":
            raise CheckFailed("protocol", f"{endpoint.protocol!r} is not an outgoing protocol")
        context = tls_context(endpoint)
        await asyncio.to_thread(reach, endpoint)
        result = await _send_test(endpoint, context, sender=sender, to=to)
    except CheckFailed as failed:
        result = failed
    except Exception as exc:  # noqa: BLE001 - a test reports, it does not crash the caller
        text = scrub(str(exc), endpoint.secret)
        result = CheckFailed(None, f"unexpected error: {type(exc).__name__}: {text}")
    return finish("outgoing", endpoint, result)


async def _send_test(
    endpoint: Endpoint, context: ssl.SSLContext, *, sender: str, to: str
) -> Passed:
    smtp = smtp_client(endpoint, context)
    greeting = await connect_smtp(smtp, endpoint)
    try:
        with step("command", endpoint):
            await smtp.ehlo()
        if endpoint.security == "starttls":
            await starttls(smtp, endpoint, context)
        if endpoint.auth_required:
            await authenticate(smtp, endpoint)
        message = build_test_message(sender=sender, to=to, endpoint=endpoint)
        reply = await _transaction(smtp, endpoint, message, sender=sender, to=to)
        extensions = sorted(smtp.esmtp_extensions)
    finally:
        await quit_smtp(smtp)
    text = server_words(reply.message)
    details = {"reply_code": reply.code, "reply_text": text, "message_id": message["Message-ID"]}
    return Passed(
        f"Sent a test message from {sender} to {to} through {where(endpoint)} "
        f"{security_words(endpoint)}: the server answered {reply.code} {text}",
        details | {"server_greeting": greeting, "extensions": extensions},
    )


def smtp_client(endpoint: Endpoint, context: ssl.SSLContext) -> aiosmtplib.SMTP:
    """A client that does exactly the TLS the account says (shared with the outbox sender)."""
    return aiosmtplib.SMTP(
        hostname=endpoint.host,
        port=endpoint.port,
        use_tls=endpoint.security == "tls",
        start_tls=False,  # not None: None would mean "STARTTLS if offered" (opportunistic)
        tls_context=context,
        timeout=endpoint.read_timeout,
    )


async def connect_smtp(smtp: aiosmtplib.SMTP, endpoint: Endpoint) -> str:
    try:
        with step("greeting", endpoint):
            try:
                response = await smtp.connect(timeout=endpoint.connect_timeout)
            except aiosmtplib.SMTPConnectResponseError as exc:  # a 554 greeting (RFC 5321 3.1)
                raise _refused(None, "the session", exc) from exc
    except CheckFailed as failed:
        if failed.silent:  # connected, then nothing: maybe a TLS port (see silent_server)
            raise await asyncio.to_thread(silent_server, endpoint) from failed
        raise
    return server_words(response.message)


async def starttls(smtp: aiosmtplib.SMTP, endpoint: Endpoint, context: ssl.SSLContext) -> None:
    """RFC 3207 section 4: STARTTLS only if the EHLO reply lists it, then EHLO again
    (section 4.2: forget everything learned before TLS)."""
    if not smtp.supports_extension("starttls"):
        raise CheckFailed(
            "security",
            f"{where(endpoint)} does not offer STARTTLS, so casemail will not send through it "
            "in plain text: set security to 'tls' (port 465) if the server supports it",
        )
    with step("tls", endpoint):
        await smtp.starttls(tls_context=context, timeout=endpoint.connect_timeout)
    with step("command", endpoint):
        await smtp.ehlo()


async def authenticate(smtp: aiosmtplib.SMTP, endpoint: Endpoint) -> None:
    """AUTH (RFC 4954): the account's mechanism, XOAUTH2 for OAuth2 accounts."""
    username, secret = require_credentials(endpoint)
    if not smtp.supports_extension("auth"):
        plain = endpoint.security == "none"
        raise CheckFailed(
            "security" if plain else "auth_required",
            f"{where(endpoint)} offers no login (AUTH) {security_words(endpoint)}: "
            + ("set security to 'starttls' or 'tls'" if plain else "turn off auth_required"),
        )
    offered = sorted(smtp.server_auth_methods)
    if endpoint.auth == "oauth2" and "xoauth2" not in offered:
        raise CheckFailed(
            "auth", f"{where(endpoint)} does not offer XOAUTH2 (it offers: {' '.join(offered)})"
        )
    with step("login", endpoint):
        try:
            if endpoint.auth == "oauth2":
                await smtp.auth_xoauth2(username, secret)
            else:
                await smtp.login(username, secret)
        except aiosmtplib.SMTPAuthenticationError as exc:
            reply = f"{exc.code} {server_words(exc.message)}"
            raise refused_login(endpoint, reply) from exc


async def _transaction(
    smtp: aiosmtplib.SMTP, endpoint: Endpoint, message: EmailMessage, *, sender: str, to: str
) -> aiosmtplib.SMTPResponse:
    """MAIL, RCPT, DATA (RFC 5321 section 3.3), each refusal put on its own field."""
    with step("command", endpoint):
        try:
            await smtp.mail(sender)
        except aiosmtplib.SMTPSenderRefused as exc:
            raise _refused("from_address", f"the sender {sender}", exc) from exc
        try:
            await smtp.rcpt(to)
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise _refused("to", f"the recipient {to}", exc) from exc
        try:
            return await smtp.data(message.as_bytes(policy=SMTP_POLICY))
        except aiosmtplib.SMTPDataError as exc:
            raise _refused(None, "the test message", exc) from exc


def _refused(field: str | None, what: str, exc: aiosmtplib.SMTPResponseException) -> CheckFailed:
    words = f"{exc.code} {server_words(exc.message)}"
    return CheckFailed(field, f"the server refused {what}: {words}", server_reply=words)


def build_test_message(*, sender: str, to: str, endpoint: Endpoint) -> EmailMessage:
    """A short message that says what it is; Auto-Submitted keeps auto-responders quiet
    (RFC 3834 section 5)."""
    domain = sender.rpartition("@")[2] or "casemail.invalid"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = SUBJECT
    message["Date"] = formatdate(usegmt=True)  # RFC 5322 section 3.3
    message["Message-ID"] = make_msgid("casemail-test", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        "This message was sent by casemail to test the outgoing mail settings "
        f"({where(endpoint)}, {security_words(endpoint)}). It needs no answer.\n"
    )
    return message


async def quit_smtp(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
