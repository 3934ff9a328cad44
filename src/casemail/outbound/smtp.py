"""Deliver outbox entries of one account over one SMTP connection (aiosmtplib).

TLS is what the account says, never less: implicit TLS (RFC 8314) or STARTTLS (RFC 3207)
that must succeed; aiosmtplib's opportunistic default is never used. AUTH with password or
XOAUTH2 (RFC 4954). Each message is one MAIL/RCPT/DATA transaction (RFC 5321 section 3.3) on
the same connection; a reply classifies the outcome: 2xx sent, 4xx retry later, 5xx failed
(section 4.2.1). A connection that breaks leaves the messages not yet sent for a retry.

The final reply to DATA may take long: RFC 5321 section 4.5.3.2.6 asks clients to wait 10
minutes for it, because giving up early is how duplicates happen (the server may have taken
the message). A timeout there is recorded as a possible duplicate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from casemail.accounts.conntest_common import CheckFailed, scrub, server_words, tls_context
from casemail.accounts.conntest_outgoing import (
    authenticate,
    connect_smtp,
    quit_smtp,
    smtp_client,
    starttls,
)
from casemail.accounts.endpoint import Endpoint

Outcome = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class Delivery:
    outbox_id: int
    sender: str
    recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class DeliveryResult:
    outbox_id: int
    outcome: Outcome
    code: int | None
    text: str
    refused: tuple[str, ...] = ()
    uncertain: bool = False  # no answer after DATA: the server may have the message


def _by_code(code: int) -> Outcome:
    return "sent" if 200 <= code < 300 else "retry" if 400 <= code < 500 else "failed"


OnResult = Callable[[DeliveryResult], Awaitable[None]]
OnStart = Callable[[Delivery], Awaitable[bool]]


async def deliver_all(
    endpoint: Endpoint,
    deliveries: list[Delivery],
    *,
    data_timeout: float,
    on_start: OnStart,
    on_result: OnResult,
) -> None:
    """Send ``deliveries`` in order over one connection, handing each result to
    ``on_result`` as soon as it is known: the caller records it before the next message
    goes out, so a sender killed mid-batch resends at most the one message in flight.
    ``on_start`` is told before each message goes out; False skips it (claim lost)."""
    try:
        smtp = await _open(endpoint)
    except CheckFailed as failed:
        for delivery in deliveries:
            await on_result(_later(delivery, failed.message, endpoint))
        return
    pending = list(deliveries)
    try:
        while pending:
            delivery = pending.pop(0)
            if not await on_start(delivery):
                continue
            result = await _send_one(smtp, delivery, data_timeout, endpoint)
            await on_result(result)
            if result.outcome == "retry" and result.code is None:
                break  # the connection is gone: the rest wait for the next round
    finally:
        await quit_smtp(smtp)
    reason = "not sent: the connection to the server broke before it"
    for delivery in pending:
        await on_result(_later(delivery, reason, endpoint))


async def _open(endpoint: Endpoint) -> aiosmtplib.SMTP:
    context = tls_context(endpoint)
    smtp = smtp_client(endpoint, context)
    try:
        await connect_smtp(smtp, endpoint)
        await smtp.ehlo()
        if endpoint.security == "starttls":
            await starttls(smtp, endpoint, context)
        if endpoint.auth_required:
            await authenticate(smtp, endpoint)
    except CheckFailed:
        smtp.close()
        raise
    except (aiosmtplib.SMTPException, OSError) as exc:
        smtp.close()
        raise CheckFailed(None, f"{type(exc).__name__}: {exc}") from exc
    return smtp


async def _send_one(
    smtp: aiosmtplib.SMTP, delivery: Delivery, data_timeout: float, endpoint: Endpoint
) -> DeliveryResult:
    try:
        return await _transaction(smtp, delivery, data_timeout)
    except aiosmtplib.SMTPTimeoutError:
        text = f"no answer from the server within {data_timeout:.0f} s; it may have the message"
        return DeliveryResult(delivery.outbox_id, "retry", None, text, uncertain=True)
    except aiosmtplib.SMTPResponseException as exc:
        await _reset(smtp)
        text = server_words(exc.message)
        return DeliveryResult(delivery.outbox_id, _by_code(exc.code), exc.code, text)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        text = scrub(f"connection lost: {type(exc).__name__}: {exc}", endpoint.secret)
        return DeliveryResult(delivery.outbox_id, "retry", None, text)


async def _transaction(
    smtp: aiosmtplib.SMTP, delivery: Delivery, data_timeout: float
) -> DeliveryResult:
    """MAIL, one RCPT per recipient (refusals collected), DATA (RFC 5321 section 3.3)."""
    await smtp.mail(delivery.sender)
    refused: list[aiosmtplib.SMTPRecipientRefused] = []
    for recipient in delivery.recipients:
        try:
            await smtp.rcpt(recipient)
        except aiosmtplib.SMTPRecipientRefused as exc:
            refused.append(exc)
    if len(refused) == len(delivery.recipients):
        await _reset(smtp)
        return _refused_all(delivery, refused)
    reply = await smtp.data(delivery.raw, timeout=data_timeout)
    text = server_words(reply.message)
    if refused:
        text += "; refused: " + "; ".join(_words(r) for r in refused)
    gone = tuple(r.recipient for r in refused)
    return DeliveryResult(delivery.outbox_id, _by_code(reply.code), reply.code, text, gone)


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    # RFC 5321 section 4.1.1.5: RSET clears the failed transaction; the connection stays
    # usable for the next message.
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


def _words(refusal: aiosmtplib.SMTPRecipientRefused) -> str:
    return f"{refusal.recipient}: {refusal.code} {server_words(refusal.message)}"


def _refused_all(
    delivery: Delivery, refused: list[aiosmtplib.SMTPRecipientRefused]
) -> DeliveryResult:
    """Every recipient refused: permanent if any refusal was (RFC 5321 section 4.2.1)."""
    codes = [r.code for r in refused]
    outcome: Outcome = "failed" if any(c >= 500 for c in codes) else "retry"
    return DeliveryResult(
        delivery.outbox_id,
        outcome,
        max(codes) if codes else None,
        "every recipient refused: " + "; ".join(_words(r) for r in refused),
        refused=tuple(r.recipient for r in refused),
    )


def _later(delivery: Delivery, reason: str, endpoint: Endpoint) -> DeliveryResult:
    text = scrub(reason, endpoint.secret)
    return DeliveryResult(delivery.outbox_id, "retry", None, text)
