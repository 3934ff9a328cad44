"""casemail oauth client add|list|update|delete, oauth connect, oauth refresh"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError

from casemail.accounts.rules import AccountError
from casemail.cli.common import context, emit_json, fail
from casemail.db.engine import Database
from casemail.db.models import Account
from casemail.oauth import clients, flow
from casemail.oauth.clients import OAuthClientCreate, OAuthClientPublic, OAuthClientUpdate
from casemail.oauth.providers import ProviderName
from casemail.oauth.tokens import CONNECTED, TokenError, ensure_access_token

app = typer.Typer(help="OAuth2: app registrations and connecting accounts.", no_args_is_help=True)
client_app = typer.Typer(help="App registrations at OAuth2 providers.", no_args_is_help=True)
app.add_typer(client_app, name="client")
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _print(client: OAuthClientPublic) -> None:
    secret = "with secret" if client.has_secret else "public client (no secret)"
    typer.echo(f"#{client.id} {client.name} [{client.provider}] client id {client.client_id}")
    typer.echo(f"  {secret}; used by {client.accounts} account(s)")
    typer.echo(f"  redirect URI: {client.redirect_uri}")
    typer.echo(f"  scopes: {' '.join(client.scopes)}")


def _ask_secret(given: bool) -> SecretStr | None:
    if not given:
        return None
    # Asked on the terminal, never taken as an argument (it would sit in shell history).
    return SecretStr(typer.prompt("client secret", hide_input=True))


@client_app.command("add")
def add_client(
    name: Annotated[str, typer.Argument(help="A name for this registration.")],
    provider: Annotated[ProviderName, typer.Option(help="microsoft, google or generic.")],
    client_id: Annotated[str, typer.Option("--client-id", help="The application id.")],
    secret: Annotated[bool, typer.Option("--secret", help="Ask for the client secret.")] = False,
    tenant: Annotated[str | None, typer.Option(help="Microsoft: tenant id or domain.")] = None,
    authorize_url: Annotated[str | None, typer.Option("--authorize-url")] = None,
    token_url: Annotated[str | None, typer.Option("--token-url")] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Repeat; default: mail.")
    ] = None,
    redirect_uri: Annotated[str | None, typer.Option("--redirect-uri")] = None,
    issuer: Annotated[str | None, typer.Option(help="OpenID Connect issuer (generic).")] = None,
    jwks_url: Annotated[str | None, typer.Option("--jwks-url", help="Its signing keys.")] = None,
    as_json: AsJson = False,
) -> None:
    """Register an app (Microsoft Entra, Google Cloud, or any OAuth2 provider)."""
    try:
        data = OAuthClientCreate(
            name=name,
            provider=provider,
            client_id=client_id,
            client_secret=_ask_secret(secret),
            tenant=tenant,
            authorize_url=authorize_url,
            token_url=token_url,
            scopes=scope or None,
            redirect_uri=redirect_uri,
            issuer=issuer,
            jwks_url=jwks_url,
        )
    except ValidationError as exc:
        fail("; ".join(str(e["msg"]) for e in exc.errors()))
    ctx = context()
    try:
        with ctx.db.write() as session:
            client = clients.create_client(
                session,
                data,
                keys=ctx.keys,
                public_url=ctx.settings.resolved_public_url,
                allow_private=ctx.settings.private_hosts_allowed,
            )
            public = clients.to_public(session, client)
    except AccountError as exc:
        fail(str(exc))
    emit_json(public) if as_json else _print(public)


@client_app.command("list")
def list_clients(as_json: AsJson = False) -> None:
    """List app registrations (never their secrets)."""
    ctx = context()
    with ctx.db.read() as session:
        found = [clients.to_public(session, c) for c in clients.list_clients(session)]
    if as_json:
        emit_json(found)
        return
    if not found:
        typer.echo("no OAuth clients yet: add one with `casemail oauth client add`")
    for client in found:
        _print(client)


@client_app.command("update")
def update_client(
    client: Annotated[str, typer.Argument(help="Id or name.")],
    secret: Annotated[bool, typer.Option("--secret", help="Ask for a new client secret.")] = False,
    client_id: Annotated[str | None, typer.Option("--client-id")] = None,
    redirect_uri: Annotated[str | None, typer.Option("--redirect-uri")] = None,
    as_json: AsJson = False,
) -> None:
    """Change a registration, e.g. replace an expired client secret."""
    data = OAuthClientUpdate(
        client_id=client_id, client_secret=_ask_secret(secret), redirect_uri=redirect_uri
    )
    ctx = context()
    try:
        with ctx.db.write() as session:
            found = clients.find_client(session, client)
            clients.update_client(
                session,
                found,
                data,
                keys=ctx.keys,
                allow_private=ctx.settings.private_hosts_allowed,
            )
            public = clients.to_public(session, found)
    except AccountError as exc:
        fail(str(exc))
    emit_json(public) if as_json else _print(public)


@client_app.command("delete")
def delete_client(client: Annotated[str, typer.Argument(help="Id or name.")]) -> None:
    """Delete a registration no account uses."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            clients.delete_client(session, clients.find_client(session, client))
    except AccountError as exc:
        fail(str(exc))
    typer.echo(f"OAuth client {client} deleted")


@app.command("connect")
def connect(
    account_id: int,
    wait: Annotated[
        int, typer.Option(help="Wait up to this many seconds for the sign-in to complete.")
    ] = 0,
) -> None:
    """Print the address where the mailbox owner signs in and consents."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            account = session.get(Account, account_id)
            if account is None:
                fail(f"no account {account_id}")
            started = flow.start(session, account, ctx.keys)
    except AccountError as exc:
        fail(str(exc))
    typer.echo("Open this address in the browser of the mailbox owner:")
    typer.echo(started.authorization_url)
    typer.echo(f"(good until {started.expires_at:%H:%M} UTC)")
    if wait <= 0:
        return
    begun = started.expires_at - flow.FLOW_LIFETIME
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if _connected_since(ctx.db, account_id, begun):
            typer.echo("connected")
            return
        time.sleep(1)
    fail(f"not connected within {wait} s", code=2)


def _connected_since(db: Database, account_id: int, begun: datetime) -> bool:
    with db.read() as session:
        account = session.get_one(Account, account_id)
        refreshed = account.oauth_refreshed_at
        return account.oauth_state == CONNECTED and refreshed is not None and refreshed >= begun


@app.command("refresh")
def refresh(account_id: int) -> None:
    """Refresh the account's access token now: checks that the grant still holds."""
    ctx = context()
    try:
        ensure_access_token(ctx.db, ctx.keys, account_id, force=True)
    except TokenError as exc:
        fail(str(exc), code=2)
    with ctx.db.read() as session:
        account = session.get(Account, account_id)
        if account is None or account.auth_type != "oauth2":
            fail(f"account {account_id} does not use OAuth2")
        typer.echo(f"refreshed: token good until {account.oauth_expires_at:%Y-%m-%d %H:%M} UTC")
