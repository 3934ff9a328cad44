"""The outbox sender in a process of its own, for the kill -9 test (the test kills it).

    python -m tests.outbox_child '{"home": ..., "db_url": ..., "ca_file": ...}'

Runs sending rounds until the outbox has nothing due; prints how many it handled.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from casemail.bootstrap import build_context
from casemail.config import Settings
from casemail.outbound.sender import send_due


async def main(spec: dict[str, str]) -> None:
    settings = Settings(
        home=Path(spec["home"]),
        database_url=spec["db_url"],
        tls_ca_file=Path(spec["ca_file"]),
        outbox_claim_seconds=60,
        outbox_claim_batch=int(spec.get("claim_batch", 100)),
    )
    ctx = build_context(settings, migrate=False)
    handled = 0
    while sent := await send_due(ctx.db, ctx.settings, ctx.keys):
        handled += sent
    print(handled)  # how many this sender handled


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
