"""The reference every benchmark sets casemail beside: what a plain Python program does to
read a message, stdlib ``email`` with ``policy.default`` and ``get_body``."""

from __future__ import annotations

import email
import time
from email import policy


def reference_parse(messages: list[bytes]) -> float:
    """Seconds to parse ``messages`` as a plain program would."""
    start = time.perf_counter()
    for raw in messages:
        message = email.message_from_bytes(raw, policy=policy.default)
        message.get_body(preferencelist=("plain", "html"))
    return time.perf_counter() - start
