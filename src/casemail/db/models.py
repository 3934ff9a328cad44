"""The tables. Words follow DESIGN.md: account, channel, case, message, quarantine, outbox.

Raw RFC 5322 bytes live once in ``blobs`` (keyed by SHA-256) and are referenced from the
inbound receipt, the message on a case's email history and attachments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from casemail.db.types import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# RFC 5321 section 4.5.3.1.3: a path is at most 256 octets; 320 leaves room for display.
ADDRESS_LEN = 320
# RFC 5322 section 2.1.1: a header line is at most 998 characters.
HEADER_LEN = 998


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Channel(Base):
    """An intake into cases: the address it answers for and its rules."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(ADDRESS_LEN), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    subject_tag_prefix: Mapped[str] = mapped_column(String(40), default="Case")
    allowed_networks: Mapped[list[Any]] = mapped_column(default=list)
    error_address: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    purge_days: Mapped[int] = mapped_column(Integer, default=30)
    # The account (and its folders) this channel fetches from; None for SMTP-only channels.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    # The channel's ingest rules (casemail.channels.rules.ChannelRules), validated on write.
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("company_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    email: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    name: Mapped[str | None] = mapped_column(String(HEADER_LEN))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Soft delete: the case disappears from lists and lookups, but its raw mail and email
    # history stay (store first, never destroy what was received).
    deleted_at: Mapped[datetime | None] = mapped_column()
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # The case this one was split from or follows (a reply to a closed case, a changed
    # subject, another team's subject tag).
    linked_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # Structured fields from trusted machine mail, by the channel's field names.
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)

    contact: Mapped[Contact | None] = relationship(lazy="joined")
    # Loaded only where asked for (a subject tag's trust check): not a join on every query.
    channel: Mapped[Channel] = relationship(lazy="select")


class Blob(Base):
    """Content-addressed bytes: raw messages and attachment contents, stored once."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundReceipt(Base):
    """Every message handed to ``ingest_raw``, committed before anything is acknowledged.

    ``state`` is ``received`` (stored, not yet processed), ``processing`` (claimed until
    ``claimed_until``), ``done`` (on a case) or ``quarantined``.
    """

    __tablename__ = "inbound"
    __table_args__ = (
        UniqueConstraint("channel_id", "dedupe_key"),
        Index("ix_inbound_state_claimed", "state", "claimed_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    source: Mapped[str] = mapped_column(String(20))
    envelope_from: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    envelope_to: Mapped[list[Any]] = mapped_column(default=list)
    peer: Mapped[str | None] = mapped_column(String(100))
    raw_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(String(HEADER_LEN))
    content_hash: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column()
    # An initial import "as archive": the case is created closed, and nothing automatic
    # (acknowledgements, notifications) is sent for it. Kept on the receipt so a receipt
    # processed after a crash is still treated as archive.
    archive: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why a message made no case (discarded, rejected, quarantined): the rules that fired.
    rule_hits: Mapped[list[Any]] = mapped_column(default=list)
    # An admin assigned the (quarantined) message to this case: processing it again appends
    # it there, whatever the channel's rules would decide.
    assign_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))


class Message(Base):
    """One email on a case's email history, inbound or outbound."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_sender_key_created", "sender_key", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), unique=True)
    direction: Mapped[str] = mapped_column(String(10))
    message_id: Mapped[str | None] = mapped_column(String(HEADER_LEN), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(HEADER_LEN))
    references: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_address: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    from_name: Mapped[str | None] = mapped_column(String(HEADER_LEN))
    to_addresses: Mapped[list[Any]] = mapped_column(default=list)
    cc_addresses: Mapped[list[Any]] = mapped_column(default=list)
    sent_at: Mapped[datetime | None] = mapped_column()
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    raw_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    rule_hits: Mapped[list[Any]] = mapped_column(default=list)
    parse_defects: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # normal | auto-reply | bulk | bounce (casemail.ingest.classify)
    classification: Mapped[str | None] = mapped_column(String(20))
    # The sender, lower case without +tag: what the rate limit counts by.
    sender_key: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    # A bounce or DSN: the outbound message it reports on.
    reports_on_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))

    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id", lazy="selectin")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str | None] = mapped_column(String(HEADER_LEN))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    content_id: Mapped[str | None] = mapped_column(String(HEADER_LEN))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)


class QuarantineEntry(Base):
    """Inbound mail that did not become or join a case, with the reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"), unique=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), index=True)
    reason_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="held")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    purge_after: Mapped[datetime] = mapped_column(index=True)


class OutboxEntry(Base):
    """Outbound mail and its state: ready, sending, sent, error or cancelled."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    state: Mapped[str] = mapped_column(String(20), default="ready")
    message_id: Mapped[str] = mapped_column(String(HEADER_LEN), unique=True)
    envelope_from: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # agent | acknowledgement | notice | rejection: all but "agent" are automatic mail.
    kind: Mapped[str] = mapped_column(String(20), default="agent")
    subject: Mapped[str | None] = mapped_column(Text)
    # A sender's claim: while it runs, no other sender takes the entry; a dead sender's
    # claim expires and the entry is sent again (with the same Message-ID).
    claimed_until: Mapped[datetime | None] = mapped_column()
    # Temporary failures are retried until then; after it the entry goes to ``error``.
    give_up_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    # Taken again after a sender died while sending it: the recipient may get it twice
    # (same Message-ID, so mail clients show one).
    maybe_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set just before the message goes to the server, cleared with its result: an entry
    # taken over from a dead sender is a possible duplicate only if this was set.
    transmitting_since: Mapped[datetime | None] = mapped_column()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Whose mail this is: set on every entry queued since migration 0011 (older ones are
    # found through their account or case).
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"), index=True)


class Installation(Base):
    """One row: this installation's identity, shared by every worker through the database.

    ``instance_id`` goes into the loop-detection header of every mail we send;
    ``token_key`` signs reply tokens and the hidden marker, so a token cannot be forged
    by guessing a case number.
    """

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    token_key: Mapped[str] = mapped_column(String(64))
    # "Suspend sending": nothing leaves the outbox until it is resumed.
    outbox_suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("company_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who works cases: an ``admin`` or an ``agent``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(ADDRESS_LEN), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="agent")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # argon2id (RFC 9106) via argon2-cffi; None: the user cannot sign in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    last_sign_in_at: Mapped[datetime | None] = mapped_column()
    # Failed password sign-ins in a row; at MAX_FAILED_SIGN_INS the user is locked a while.
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column()


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)


def _default_index(name: str, columns: list[str], where: str) -> Index:
    """A partial unique index: SQLite and PostgreSQL both support ``WHERE`` on indexes."""
    return Index(
        name,
        *columns,
        unique=True,
        sqlite_where=text(where),
        postgresql_where=text(where),
    )


class OAuthClient(Base):
    """An app registration at an OAuth2 provider (Microsoft Entra, Google Cloud, or any
    provider given by its endpoints), for the whole installation (``company_id`` NULL) or
    one company. The client secret lives only in ``secrets``, encrypted and bound to the
    row. ``redirect_uri`` is exactly the one registered at the provider."""

    __tablename__ = "oauth_clients"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str] = mapped_column(String(400))
    tenant: Mapped[str | None] = mapped_column(String(200))
    authorize_url: Mapped[str] = mapped_column(Text)
    token_url: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    redirect_uri: Mapped[str] = mapped_column(Text)
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # OpenID Connect sign-in: who signs the ID tokens (``{tenantid}`` stands for the
    # token's ``tid`` with Microsoft's multi-tenant endpoints), and the mail servers of
    # the personal accounts made from a sign-in (``incoming`` / ``outgoing`` settings).
    issuer: Mapped[str | None] = mapped_column(Text)
    jwks_url: Mapped[str | None] = mapped_column(Text)
    mail_settings: Mapped[dict[str, Any] | None] = mapped_column()

    def __repr__(self) -> str:
        return f"<OAuthClient id={self.id} name={self.name!r} provider={self.provider}>"


class OAuthFlow(Base):
    """One authorization-code flow in progress (RFC 6749 section 4.1 with PKCE, RFC 7636).

    Only a SHA-256 of ``state`` is kept (it is the callback's only credential); the PKCE
    code verifier is in ``secrets``. A flow is good once, and for a few minutes.
    """

    __tablename__ = "oauth_flows"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "connect" an existing account, or "signin": a user signs in with OpenID Connect and
    # their personal account is made or updated from it (no account yet when it starts).
    purpose: Mapped[str] = mapped_column(String(20), default="connect")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class Account(Base):
    """A real mailbox at a provider: incoming (IMAP/POP3) and/or outgoing (SMTP) settings.

    Server settings live in ``settings`` (validated by ``casemail.accounts.schemas``);
    passwords and tokens only in ``secrets``, encrypted and bound to the row id.
    ``is_default`` means: the user's default (personal), the team's default (team) or the
    company's current one (global, system); partial unique indexes allow one of each.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        _default_index(
            "uq_accounts_personal_default", ["owner_user_id"], "is_default AND role = 'personal'"
        ),
        _default_index(
            "uq_accounts_team_default", ["owner_team_id"], "is_default AND role = 'team'"
        ),
        _default_index(
            "uq_accounts_company_default",
            ["company_id", "role"],
            "is_default AND role IN ('global', 'system')",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"))
    role: Mapped[str] = mapped_column(String(20))
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    owner_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    auth_type: Mapped[str] = mapped_column(String(20), default="password")
    oauth_provider: Mapped[str | None] = mapped_column(String(40))
    oauth_token_ref: Mapped[str | None] = mapped_column(String(200))
    # OAuth2 (auth_type "oauth2"): the app registration used, and the token's health:
    # "not-connected", "connected" or "needs-reauthorisation" (with the reason in plain
    # words). The tokens themselves live only in ``secrets``.
    oauth_client_id: Mapped[int | None] = mapped_column(ForeignKey("oauth_clients.id"))
    oauth_state: Mapped[str | None] = mapped_column(String(30))
    oauth_error: Mapped[str | None] = mapped_column(Text)
    oauth_expires_at: Mapped[datetime | None] = mapped_column()
    oauth_refreshed_at: Mapped[datetime | None] = mapped_column()
    incoming_active: Mapped[bool] = mapped_column(Boolean, default=False)
    outgoing_active: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    incoming_tested_at: Mapped[datetime | None] = mapped_column()
    incoming_test_ok: Mapped[bool | None] = mapped_column(Boolean)
    incoming_test_message: Mapped[str | None] = mapped_column(Text)
    outgoing_tested_at: Mapped[datetime | None] = mapped_column()
    outgoing_test_ok: Mapped[bool | None] = mapped_column(Boolean)
    outgoing_test_message: Mapped[str | None] = mapped_column(Text)
    deactivated_at: Mapped[datetime | None] = mapped_column()
    sending_suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    # Inbound health: "idle", "syncing", "ok", "error"; errors in words people understand.
    sync_state: Mapped[str] = mapped_column(String(20), default="idle")
    last_sync_ok_at: Mapped[datetime | None] = mapped_column()
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    last_sync_error_at: Mapped[datetime | None] = mapped_column()
    sync_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_sync_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        # Never the secrets column, not even encrypted.
        return f"<Account id={self.id} role={self.role} email={self.email!r}>"


class MailboxFolder(Base):
    """Sync bookkeeping of one folder of one account (IMAP; POP3 uses folder "INBOX").

    ``last_uid`` is the highest UID committed under ``uidvalidity`` (RFC 3501 section
    2.3.1.1): everything at or below it is stored. A new UIDVALIDITY starts it at 0 again.

    ``import_until_uid`` is NULL until the folder's first sync has decided its initial
    import (the account's ``initial_import``); then the highest UID that was already in the
    folder at that sync and is imported "as archive" (0: none). It is kept so an archive
    import that breaks off resumes as archive. POP3 sets it to 0 once decided; its existing
    messages are marked one by one on ``mailbox_items.import_as``.
    """

    __tablename__ = "mailbox_folders"
    __table_args__ = (UniqueConstraint("account_id", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    folder: Mapped[str] = mapped_column(String(HEADER_LEN))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_total: Mapped[int | None] = mapped_column(Integer)
    messages_done: Mapped[int] = mapped_column(Integer, default=0)
    last_sync_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    import_until_uid: Mapped[int | None] = mapped_column(BigInteger)


class MailboxItem(Base):
    """One message fetched from a mailbox: the exactly-once record.

    IMAP rows carry (folder, uidvalidity, uid), POP3 rows the UIDL (or a content hash where
    the server has no UIDL); NULLs never collide in a unique constraint on either database.

    ``inbound_id`` is NULL only for POP3 messages the initial import did not store (yet):
    ``import_as`` is ``skip`` for those left alone by ``from_now`` (never fetched, never
    removed from the server) and ``archive`` for those that were on the server at the first
    sync and are stored as archive (it stays ``archive`` once stored).
    """

    __tablename__ = "mailbox_items"
    __table_args__ = (
        UniqueConstraint("account_id", "folder", "uidvalidity", "uid"),
        UniqueConstraint("account_id", "uidl"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    folder: Mapped[str] = mapped_column(String(HEADER_LEN))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    uidl: Mapped[str | None] = mapped_column(String(100))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), index=True)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_from_server_at: Mapped[datetime | None] = mapped_column()
    import_as: Mapped[str | None] = mapped_column(String(10))


class ApiToken(Base):
    """API tokens; only a SHA-256 of the token is kept. A token acts as its user: with the
    user's role, on the user's company's data only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Webhook(Base):
    """A company's URL told about events (case.created, message.received, message.sent,
    message.failed, account.unhealthy), each POST signed with the webhook's secret."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(default=list)
    # {"secret": …}, encrypted with the key ring, bound to this row and table.
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook, written in the transaction of the change it reports (so
    an event is never announced for a change that rolled back, nor lost after a commit);
    the delivery log the admin reads."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # pending (to be sent, or retried at next_attempt_at) | delivered | failed (gave up)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column()
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()


class WorkerProcess(Base):
    """A process running workers (``casemail serve`` or ``casemail worker``), with its
    heartbeat: ``casemail status`` lists them, and a worker whose heartbeat stopped is dead."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # serve | worker
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column()


class MailboxLease(Base):
    """Which worker process fetches a mailbox, until ``expires_at`` (renewed every pass).

    ``fencing_token`` grows by one each time the mailbox changes hands, so a write made
    under an older lease can be told from one made under the current lease."""

    __tablename__ = "mailbox_leases"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(36), index=True)
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=1)
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
