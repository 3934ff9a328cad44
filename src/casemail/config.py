"""One typed settings model for the whole service.

Every key can be set as an environment variable ``CASEMAIL_<KEY>`` or in a TOML file: the
file named by ``CASEMAIL_CONFIG``, else ``<CASEMAIL_HOME>/casemail.toml`` when it exists.
Environment variables win over the file.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_HOME = Path("casemail-data")
DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024


def _config_file() -> Path:
    explicit = os.environ.get("CASEMAIL_CONFIG")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("CASEMAIL_HOME", str(DEFAULT_HOME))) / "casemail.toml"


def parse_networks(value: Any) -> list[str]:
    """Accept a list or a comma-separated string of CIDR ranges; refuse anything else clearly."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    networks: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an IP address or CIDR range") from exc
    return networks


class Settings(BaseSettings):
    """Settings of one casemail installation (see README, section Configuration)."""

    model_config = SettingsConfigDict(env_prefix="CASEMAIL_", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Data directory: database, keys, certificates.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite (WAL) at <home>/casemail.db."
    )
    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"

    http_host: str = "127.0.0.1"
    http_port: int = Field(8025, ge=0, le=65535)
    public_url: str | None = Field(
        None,
        description=(
            "The address browsers reach casemail at, for the OAuth2 redirect URI; "
            "default http://<http_host>:<http_port>."
        ),
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(2525, ge=0, le=65535)
    smtps_port: int | None = Field(
        None, ge=0, le=65535, description="Port for implicit TLS (RFC 8314); off when unset."
    )
    smtp_hostname: str = Field(default_factory=socket.gethostname)
    smtp_starttls: bool = Field(True, description="Offer STARTTLS (RFC 3207) on the plain port.")
    smtp_require_tls: bool = Field(
        False, description="Refuse MAIL FROM until the session is encrypted."
    )
    smtp_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDR ranges that may connect to the listener; empty means everyone.",
    )
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    max_message_size: int = Field(DEFAULT_MAX_MESSAGE_SIZE, gt=0)

    secret_key: SecretStr | None = Field(
        None,
        description=(
            "Fernet key(s) for secrets at rest, comma-separated, newest first; default: the "
            "key file <home>/secret.key, created on first start."
        ),
    )
    allow_private_hosts: bool | None = Field(
        None,
        description=(
            "Allow account hosts that resolve to private, loopback or link-local addresses; "
            "default: on in development, off in production."
        ),
    )
    dns_nameservers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "DNS servers for autodetection and for checking server host names, as IP or "
            "IP:port, comma-separated; default: the system's resolver."
        ),
    )
    tls_ca_file: Path | None = Field(
        None, description="Extra CA certificates trusted when connecting to mail servers."
    )

    workers: bool = Field(True, description="Run the background workers inside `serve`.")
    smtp_processing: Literal["inline", "workers"] = Field(
        "inline",
        description=(
            "What the SMTP listener does with a message after storing it: `inline` turns it "
            "into a case before answering; `workers` answers at once and leaves that to the "
            "worker processes (woken at the commit), for listeners that only receive."
        ),
    )
    ingest_max_attempts: int = Field(3, ge=1)
    ingest_claim_seconds: int = Field(300, ge=5)
    worker_interval_seconds: float = Field(5.0, gt=0)
    worker_concurrency: int = Field(
        4, ge=1, le=256, description="Mailbox syncs a worker process runs at once."
    )
    outbox_give_up_hours: float = Field(
        48.0, gt=0, description="Temporary failures are retried for this long, then `error`."
    )
    outbox_claim_batch: int = Field(
        100,
        ge=1,
        le=1000,
        description=(
            "Messages a sender claims at once; smaller spreads a backlog over more worker "
            "processes, larger means fewer claims."
        ),
    )
    outbox_claim_seconds: int = Field(
        900, ge=30, description="A sender's claim on a message; longer than any SMTP session."
    )
    outbox_data_timeout_seconds: float = Field(
        600.0,
        gt=0,
        description="How long to wait for the reply to DATA (RFC 5321 4.5.3.2.6: 10 minutes).",
    )

    @field_validator("dns_nameservers", mode="before")
    @classmethod
    def _nameservers(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        servers = [str(i).strip() for i in items if str(i).strip()]
        for server in servers:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            ipaddress.ip_address(host or server)
            if port and not port.isdigit():
                raise ValueError(f"{server!r}: the port must be a number")
        return servers

    @field_validator("smtp_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> list[str]:
        return parse_networks(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def private_hosts_allowed(self) -> bool:
        if self.allow_private_hosts is not None:
            return self.allow_private_hosts
        return self.environment == "development"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.home / 'casemail.db').resolve()}"


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
