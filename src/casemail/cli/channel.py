"""casemail channel add|list|rules"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from casemail.api.schemas import ChannelPublic
from casemail.channels.addresses import InvalidAddress
from casemail.channels.rules import ChannelRules, load_rules
from casemail.channels.service import (
    ChannelExists,
    UnknownChannel,
    add_channel,
    list_channels,
    set_rules,
)
from casemail.cli.common import context, emit_json, fail
from casemail.db.models import Channel

app = typer.Typer(help="Channels: the addresses that turn mail into cases.", no_args_is_help=True)


@app.command("add")
def add(
    address: Annotated[str, typer.Option(help="The address mail is sent to.")],
    name: Annotated[str | None, typer.Option(help="A name shown to people.")] = None,
    allow: Annotated[
        list[str] | None, typer.Option(help="CIDR range allowed to send (repeatable).")
    ] = None,
    account: Annotated[
        int | None, typer.Option(help="Account whose mailbox feeds this channel.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add a channel."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            channel = ChannelPublic.model_validate(
                add_channel(
                    session, address=address, name=name, allowed_networks=allow, account_id=account
                )
            )
    except (ChannelExists, InvalidAddress, ValueError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(channel)
    else:
        typer.echo(f"channel {channel.id} added: {channel.address} ({channel.name})")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List channels."""
    ctx = context()
    with ctx.db.read() as session:
        channels = [ChannelPublic.model_validate(c) for c in list_channels(session)]
    if as_json:
        emit_json(channels)
        return
    if not channels:
        typer.echo("no channels yet: add one with `casemail channel add --address ADDR`")
    for c in channels:
        state = "active" if c.active else "inactive"
        networks = ", ".join(c.allowed_networks) or "any sender IP"
        typer.echo(f"{c.id:>4}  {c.address:<40} {state:<8} {c.name}  [{networks}]")


@app.command("rules")
def rules(
    channel_id: Annotated[int, typer.Argument(help="The channel's id.")],
    update: Annotated[
        str | None,
        typer.Option(
            "--update",
            help="JSON merged over the current rules, e.g. '{\"known_senders_only\": true}'.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a channel's ingest rules, or change some of them (the rest are kept)."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            channel = session.get(Channel, channel_id)
            if channel is None:
                raise UnknownChannel(f"no channel {channel_id}")
            current = load_rules(channel.rules)
            if update is not None:
                merged = {**current.model_dump(mode="json"), **_json_object(update)}
                current = ChannelRules.model_validate(merged)
                set_rules(session, channel_id, current)
    except (UnknownChannel, ValidationError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(current)
        return
    for key, value in current.model_dump(mode="json").items():
        typer.echo(f"{key}: {json.dumps(value)}")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--update is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("--update must be a JSON object")
    return value
