"""The account document: what the API takes and returns, and what ``settings`` stores.

Passwords are write-only: they are accepted on create and update, stored encrypted by the
service, and never part of a public shape (``has_password`` says whether one is set).
A port left out means "use defaults" for the protocol and security.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from casemail.accounts.endpoint import AuthType, IncomingProtocol, Security, default_port
from casemail.accounts.validation import check_address, check_folder, check_hostname

Role = Literal["global", "system", "personal", "team"]
OAuthProvider = Literal["microsoft", "google", "generic"]
Port = Annotated[int, Field(ge=1, le=65535)]
Timeout = Annotated[float, Field(gt=0, le=600)]
InitialImport = Literal["all", "archive", "from_now"]
INITIAL_IMPORTS: tuple[str, ...] = ("all", "archive", "from_now")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IncomingSettings(_Strict):
    protocol: IncomingProtocol
    host: str
    port: Port | None = Field(None, description="Default by protocol and security when left out.")
    security: Security = "tls"
    username: str | None = Field(None, description="Login name; default: the account email.")
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    sent_folder: str | None = "Sent"
    leave_on_server: bool = True
    delete_after_days: int | None = Field(None, ge=1, le=3650)
    delete_when_deleted: bool = Field(
        False,
        description="POP3 with leave_on_server: remove a message from the server at the next "
        "sync once its case is deleted in casemail.",
    )
    initial_import: InitialImport = Field(
        "all",
        description="What a folder's first sync does with the mail already there: 'all' makes "
        "cases of it, 'archive' imports it as closed cases (nothing sent), 'from_now' leaves "
        "it alone and fetches only mail that arrives later.",
    )
    verify_tls: bool = True
    connect_timeout: Timeout = 20.0
    read_timeout: Timeout = 60.0
    poll_interval_seconds: int = Field(60, ge=5, le=86400, description="Without IMAP IDLE.")
    after_fetch: Literal["none", "seen", "move"] = Field(
        "none", description="IMAP, after the message is stored: leave it, flag \\Seen, or move it."
    )
    move_to: str | None = Field(None, description="Folder for after_fetch = move.")

    _host = field_validator("host")(check_hostname)

    @field_validator("initial_import", mode="before")
    @classmethod
    def _initial_import(cls, value: object) -> object:
        """The words people type ("from-now", "Archive") name the same choices; anything
        else is refused with the list of choices."""
        if not isinstance(value, str):
            return value
        word = value.strip().lower().replace("-", "_")
        if word not in INITIAL_IMPORTS:
            raise ValueError(
                f"initial_import must be one of all, archive, from_now (or from-now), not {value!r}"
            )
        return word

    @field_validator("folders")
    @classmethod
    def _folders(cls, value: list[str]) -> list[str]:
        return [check_folder(f) for f in value]

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        if self.port is None:
            self.port = default_port(self.protocol, self.security)
        if self.protocol == "pop3" and self.folders != ["INBOX"]:
            raise ValueError("POP3 has only one mailbox: folders must be ['INBOX']")
        if self.after_fetch == "move" and not self.move_to:
            raise ValueError("after_fetch = move needs move_to, the folder to move mail to")
        return self


class IncomingConfig(IncomingSettings):
    password: SecretStr | None = Field(None, description="Write-only.")


class OutgoingSettings(_Strict):
    host: str
    port: Port | None = Field(None, description="Default by security when left out.")
    security: Security = "starttls"
    auth_required: bool = True
    same_credentials: bool = Field(True, description="Log in with the incoming credentials.")
    username: str | None = None
    from_address: str | None = Field(None, description="'Send as' address; default: the email.")
    from_name: str | None = Field(None, max_length=200)
    reply_to: str | None = None
    user_domain: str | None = Field(None, description="Default: the domain of the email.")
    allow_send_as: bool = Field(False, description="Allow a From outside the user domain.")
    save_to_sent: bool = Field(
        False,
        description="After sending, append a copy to the incoming IMAP account's sent_folder. "
        "Leave off where the provider files sent mail itself (Gmail, Microsoft 365).",
    )
    verify_tls: bool = True
    connect_timeout: Timeout = 20.0
    read_timeout: Timeout = 60.0

    _host = field_validator("host")(check_hostname)

    @field_validator("from_address", "reply_to")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        if self.port is None:
            self.port = default_port("smtp", self.security)
        if self.user_domain is not None:
            self.user_domain = self.user_domain.lower().strip(".")
        return self


class OutgoingConfig(OutgoingSettings):
    password: SecretStr | None = Field(None, description="Write-only.")


class AccountCreate(_Strict):
    role: Role
    user: int | str | None = Field(None, description="Owner of a personal account: id or email.")
    team: int | str | None = Field(None, description="Owner of a team account: id or name.")
    name: str = Field(min_length=1, max_length=200)
    email: str
    auth: AuthType = "password"
    oauth_provider: OAuthProvider | None = None
    oauth_token_ref: str | None = Field(None, max_length=200)
    oauth_client: int | str | None = Field(
        None, description="OAuth app registration (id or name); default: the provider's."
    )
    incoming: IncomingConfig | None = None
    outgoing: OutgoingConfig | None = None
    incoming_active: bool | None = Field(None, description="Default: on when incoming is set.")
    outgoing_active: bool | None = Field(None, description="Default: on when outgoing is set.")
    is_default: bool = False

    _email = field_validator("email")(check_address)


class AccountUpdate(_Strict):
    """Only the fields given change. ``incoming`` / ``outgoing`` are merged key by key into
    the stored settings; a password left out keeps the stored one, ``null`` removes it."""

    name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = None
    auth: AuthType | None = None
    oauth_provider: OAuthProvider | None = None
    oauth_token_ref: str | None = None
    oauth_client: int | str | None = None
    incoming: dict[str, Any] | None = None
    outgoing: dict[str, Any] | None = None
    incoming_active: bool | None = None
    outgoing_active: bool | None = None
    is_default: bool | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)


class IncomingPublic(IncomingSettings):
    has_password: bool


class OutgoingPublic(OutgoingSettings):
    has_password: bool


class TestRecord(BaseModel):
    at: datetime | None
    ok: bool | None
    message: str | None

    __test__ = False


class OAuthStatus(BaseModel):
    """Token health of an OAuth2 account (never a token)."""

    state: str = Field(
        description="not-connected, connected, needs-reauthorisation (a person signs in again) "
        "or client-rejected (an admin replaces the OAuth app's secret)"
    )
    client_id: int | None = Field(description="The OAuth app registration in use.")
    expires_at: datetime | None = Field(description="When the current access token expires.")
    refreshed_at: datetime | None
    error: str | None = Field(description="Why it needs to be connected again, in plain words.")
    has_refresh_token: bool


class AccountPublic(BaseModel):
    id: int
    role: Role
    owner_user_id: int | None
    owner_team_id: int | None
    is_default: bool
    name: str
    email: str
    auth: AuthType
    oauth_provider: str | None
    oauth: OAuthStatus | None
    incoming: IncomingPublic | None
    outgoing: OutgoingPublic | None
    incoming_active: bool
    outgoing_active: bool
    active: bool
    deactivated_at: datetime | None
    last_test_incoming: TestRecord
    last_test_outgoing: TestRecord
    warnings: list[str]
    created_at: datetime
    updated_at: datetime


class TestOutgoingRequest(_Strict):
    to: str = Field(description="Where the test message goes.")

    _to = field_validator("to")(check_address)

    __test__ = False


class TestResultPublic(BaseModel):
    ok: bool
    direction: Literal["incoming", "outgoing"]
    field: str | None
    message: str
    details: dict[str, Any]

    __test__ = False


class TakeOverRequest(_Strict):
    from_account: int = Field(description="The account whose mailbox this one takes over.")


class TakeOverResult(BaseModel):
    account: AccountPublic
    folders: int = Field(description="Folder records copied (UIDVALIDITY, last UID).")
    items: int = Field(description="Fetched-message records copied (UIDs, UIDLs).")
    channels: int = Field(description="Channels moved to this account.")


class AutodetectRequest(_Strict):
    email: str
    probe: bool = Field(True, description="Try common host names and ports as a last resort.")

    _email = field_validator("email")(check_address)
