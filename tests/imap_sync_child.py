"""One IMAP sync in a process of its own, for the kill -9 tests (the test kills it).

    python -m tests.imap_sync_child '{"db_url": ..., "account_id": ..., ...}'

Prints the sync report as JSON when it finishes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from casemail.accounts.endpoint import Endpoint
from casemail.db import Database
from casemail.ingest import IngestOptions
from casemail.mailboxes.imap_sync import sync_imap
from casemail.mailboxes.job import MailboxJob


def main(spec: dict[str, object]) -> None:
    db = Database.from_url(str(spec["db_url"]))
    endpoint = Endpoint(
        protocol="imap",
        host="127.0.0.1",
        port=int(str(spec["port"])),
        security="tls",
        username=str(spec["username"]),
        secret=str(spec["password"]),
        ca_file=Path(str(spec["ca_file"])),
        connect_timeout=5,
        read_timeout=20,
    )
    job = MailboxJob(
        db=db,
        account_id=int(str(spec["account_id"])),
        channel_id=int(str(spec["channel_id"])),
        endpoint=endpoint,
        options=IngestOptions(claim_seconds=int(str(spec["claim_seconds"]))),
        batch_size=int(str(spec["batch_size"])),
    )
    report = sync_imap(job)
    db.dispose()
    print(json.dumps(asdict(report)))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
