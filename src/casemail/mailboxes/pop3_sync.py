"""POP3 inbound sync (RFC 1939): store every new message first, then apply retention.

One run: connect (security none, STLS or implicit TLS; never plain text instead of TLS), log
in (USER/PASS or AUTH XOAUTH2), list the messages by UIDL, RETR each one not stored yet and
store it through ``store_fetched`` (which commits it), and DELE what retention allows. DELE
only marks a message: the server removes it in the UPDATE state that QUIT starts (RFC 1939
section 6). So a message counts as removed only once QUIT has answered +OK; a session that
dies before QUIT removed nothing, and the next run skips by UIDL what it stored already and
sends the DELEs again. The first run also decides the initial import (``initial_import``):
what was on the server then is stored as archive, or left alone for good. Synchronous: the
caller runs it in a thread.
"""

from __future__ import annotations

import hashlib
import logging
import poplib
from dataclasses import dataclass, field

from casemail.accounts.conntest_common import (
    CheckFailed,
    plural,
    scrub,
    server_words,
    tls_context,
)
from casemail.accounts.conntest_explain import explain, greeting
from casemail.accounts.conntest_pop3 import _capabilities, _login, _open, _stls
from casemail.accounts.endpoint import Endpoint
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.job import MailboxJob, Progress, SyncReport
from casemail.mailboxes.pop3_items import mark_removed
from casemail.mailboxes.pop3_plan import FOLDER, Plan
from casemail.mailboxes.pop3_wire import Refused, abandon, command, multiline
from casemail.mailboxes.retention import chunks
from casemail.mailboxes.store import Fetched, set_progress, store_fetched

log = logging.getLogger("casemail.mailboxes")

MAX_UIDL = 70  # RFC 1939 section 7: 1 to 70 characters, so "sha256:<64 hex>" never clashes


@dataclass
class _Run:
    job: MailboxJob
    report: SyncReport = field(default_factory=SyncReport)
    plan: Plan = field(init=False)  # what to fetch, as what, and what to remove
    marked: list[str] = field(default_factory=list)  # DELE'd: removed only by QUIT
    step: str = "listing the messages"
    done: int = 0
    total: int = 0

    def __post_init__(self) -> None:
        self.plan = Plan(self.job, self.report)


_NETWORK = (CheckFailed, Refused, poplib.error_proto, EOFError, OSError)


def sync_pop3(job: MailboxJob) -> SyncReport:
    """Fetch the new messages of the account's POP3 mailbox and apply its retention."""
    pop = _connect(job.endpoint)
    run = _Run(job)
    finished = False
    try:
        _fetch_all(pop, run)
        finished = True
    except _NETWORK as exc:
        raise _stopped(run, exc) from exc
    finally:
        if not finished:
            abandon(pop)  # no QUIT, so the server removes nothing (RFC 1939 section 6)
    _quit(pop, run)
    report = run.report
    log.info(
        "account %s: POP3 %s new, %s duplicates, %s quarantined, %s removed from the server",
        job.account_id,
        report.stored,
        report.duplicates,
        report.quarantined,
        report.removed_from_server,
    )
    return report


def _connect(endpoint: Endpoint) -> poplib.POP3:
    """Open, secure and log in, with the connection test's steps and wording."""
    try:
        context = tls_context(endpoint)
        with greeting(endpoint):
            pop = _open(endpoint, context)
    except CheckFailed as failed:
        raise _error(endpoint, failed.message) from failed
    try:
        capabilities = _capabilities(pop, endpoint)
        if endpoint.security == "starttls":  # refuses to go on without STLS (RFC 2595)
            capabilities = _stls(pop, endpoint, context, capabilities)
        _login(pop, endpoint, capabilities)
    except CheckFailed as failed:
        abandon(pop)
        raise _error(endpoint, failed.message) from failed
    return pop


def _fetch_all(pop: poplib.POP3, run: _Run) -> None:
    job = run.job
    listing = _listing(pop)
    run.total = run.report.folders[FOLDER] = len(listing)
    set_progress(job.db, job.account_id, FOLDER, total=run.total)
    named = [uidl for _number, uidl in listing if uidl is not None]
    run.plan.first_sync(named, every_one_named=len(named) == len(listing))
    run.plan.learn(named)
    _progress(run)
    for number, uidl in listing:
        _one(pop, run, number, uidl)
        run.done += 1
        _progress(run)
    run.plan.finish()


def _listing(pop: poplib.POP3) -> list[tuple[int, str | None]]:
    """(message number, UIDL) of every message. The UIDL is None where the server has none
    (UIDL is optional, RFC 1939 section 7) or sends one that breaks the rules (too long, or
    given twice: trusting it could remove a message that was never fetched)."""
    try:
        command(pop, b"UIDL")
    except Refused:
        count, _size = pop.stat()
        return [(number, None) for number in range(1, count + 1)]
    listing: list[tuple[int, str | None]] = []
    seen: set[str] = set()
    for line in multiline(pop).splitlines():
        number, _, uid = line.strip().partition(b" ")
        uidl = uid.strip().decode("ascii", "replace")
        usable = 0 < len(uidl) <= MAX_UIDL and uidl not in seen
        seen.add(uidl)
        if number.isdigit():
            listing.append((int(number), uidl if usable else None))
    return listing


def _one(pop: poplib.POP3, run: _Run, number: int, uidl: str | None) -> None:
    run.step = f"fetching message {number}"
    raw = None
    if uidl is None:
        # No UIDL: the message is known by a hash of its bytes, so it has to be RETR'd
        # (on every run, stored or not) before casemail can tell whether it is new.
        raw = _retr(pop, run, number)
        if raw is None:
            return
        uidl = "sha256:" + hashlib.sha256(raw).hexdigest()
        run.plan.learn([uidl])
        run.plan.decide_one(uidl)
    if uidl not in run.plan.known:
        raw = raw if raw is not None else _retr(pop, run, number)
        if raw is None:
            return
        _store(run, uidl, raw)  # committed: from here on the server may be told
    if run.plan.removable(uidl):
        _dele(pop, run, number, uidl)


def _retr(pop: poplib.POP3, run: _Run, number: int) -> bytes | None:
    """The raw message, or None when the server refuses it (it is left for the next run,
    and the rest keep flowing)."""
    try:
        command(pop, b"RETR %d" % number)
    except Refused as refused:
        log.warning("account %s: %s refused: %s", run.job.account_id, run.step, refused)
        return None
    return multiline(pop)


def _store(run: _Run, uidl: str, raw: bytes) -> None:
    job, report = run.job, run.report
    archive = uidl in run.plan.archive
    fetched = Fetched(account_id=job.account_id, folder=FOLDER, uidl=uidl, archive=archive)
    stored = store_fetched(job.db, job.channel_id, fetched, raw, job.options, fence=job.fence)
    outcome = stored.outcome
    run.plan.stored(uidl)
    if outcome == "duplicate":
        report.duplicates += 1
        return
    report.stored += 1  # on a case, in quarantine, or committed and waiting for a retry
    report.archived += int(archive)
    if outcome == "quarantined":
        report.quarantined += 1


def _dele(pop: poplib.POP3, run: _Run, number: int, uidl: str) -> None:
    """Mark the message for removal (RFC 1939 section 5); -ERR leaves it for the next run."""
    run.step = f"removing message {number}"
    try:
        command(pop, b"DELE %d" % number)
    except Refused as refused:
        log.warning("account %s: %s refused: %s", run.job.account_id, run.step, refused)
        return
    run.marked.append(uidl)


def _quit(pop: poplib.POP3, run: _Run) -> None:
    """The DELEs take effect now, in the UPDATE state; only +OK says they did."""
    run.step = "ending the session (QUIT)"
    try:
        command(pop, b"QUIT")
    except _NETWORK as exc:
        if run.marked:
            raise _stopped(run, exc) from exc
        return  # nothing was to be removed: all is stored and nothing else is pending
    finally:
        abandon(pop)
    job = run.job
    for chunk in chunks(run.marked):
        mark_removed(job.db, job.account_id, chunk)
    run.report.removed_from_server = len(run.marked)


def _progress(run: _Run) -> None:
    if run.job.on_progress is not None:
        run.job.on_progress(Progress(folder=FOLDER, done=run.done, total=run.total))


def _stopped(run: _Run, exc: BaseException) -> MailboxError:
    """Why the run stopped, and what that means for the mail, in plain words."""
    endpoint = run.job.endpoint
    if isinstance(exc, CheckFailed):
        why = exc.message
    elif isinstance(exc, Refused):
        why = f'the server answered "{exc}"'
    elif isinstance(exc, EOFError) or (exc.args and exc.args[0] == "-ERR EOF"):
        why = "the server closed the connection"
    elif isinstance(exc, poplib.error_proto):
        why = f'the server answered "{server_words(exc.args[0] if exc.args else "")}"'
    else:
        why = explain(exc, endpoint, "command").message
    return _error(endpoint, f"POP3 sync stopped while {run.step}: {why}; {_consequence(run)}")


def _consequence(run: _Run) -> str:
    stored = plural(run.report.stored, "new message")
    kept = f"what this run stored ({stored}) is kept and will not be fetched twice"
    if run.step.startswith("ending"):  # the server may or may not have removed them
        marked = plural(len(run.marked), "message")
        return (
            f"{marked} marked for removal may still be on the server (the next run "
            f"removes them); {kept}"
        )
    return f"nothing was removed from the server; {kept}"


def _error(endpoint: Endpoint, message: str) -> MailboxError:
    return MailboxError(scrub(message[:1].upper() + message[1:], endpoint.secret))
