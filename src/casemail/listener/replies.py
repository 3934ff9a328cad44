"""SMTP replies, named so that the handler and the tests use the same text.

Enhanced status codes from RFC 3463; reply codes from RFC 5321 section 4.2.
"""

from __future__ import annotations

TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
CLIENT_REFUSED = "554 5.7.1 Client address not allowed to send mail here"
CHANNEL_REFUSED = "554 5.7.1 Client address not allowed to send to this channel"
UNKNOWN_RECIPIENT = "550 5.1.1 Recipient address unknown here"
CHANNEL_INACTIVE = "550 5.2.1 Channel is not accepting mail"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
BAD_LINE_ENDINGS = (
    "554 5.6.0 Message refused: bare CR or LF in the data; lines must end with CRLF "
    "(RFC 5321 section 2.3.8)"
)
TEMPORARY_FAILURE = "451 4.3.0 Could not store the message; please try again later"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"


def queued(receipt_ids: list[int]) -> str:
    return "250 2.0.0 OK: stored as " + ",".join(str(i) for i in receipt_ids)
