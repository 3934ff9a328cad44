"""`casemail oauth …` and `casemail account take-over` as a user types them."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import parse_qs, urlsplit

from tests.clisupport import CASEMAIL, Cli

SECRET = "canary-cli-client-secret"


def add_oauth_account(cli: Cli) -> int:
    document = {
        "role": "global",
        "name": "Office",
        "email": "office@example.com",
        "auth": "oauth2",
        "oauth_provider": "microsoft",
        "incoming": {"protocol": "imap", "host": "127.0.0.1", "port": 993, "security": "tls"},
    }
    path = cli.home.parent / "account.json"
    path.write_text(json.dumps(document))
    created = json.loads(cli.ok("account", "add", "--json", str(path)))
    assert created["oauth"]["state"] == "not-connected"
    return int(created["id"])


def test_client_add_with_secret_from_the_terminal_list_connect_and_delete(cli: Cli) -> None:
    added = subprocess.run(
        [str(CASEMAIL), "oauth", "client", "add", "Entra", "--provider", "microsoft",
         "--client-id", "app-1", "--tenant", "contoso.com", "--secret", "--json"],
        input=SECRET + "\n", env=cli.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    client = json.loads(added.stdout[added.stdout.index("{") :])
    assert client["has_secret"] is True
    assert SECRET not in added.stdout
    assert client["authorize_url"].startswith("https://login.microsoftonline.com/contoso.com/")
    listed = cli.ok("oauth", "client", "list")
    assert "Entra [microsoft] client id app-1" in listed
    assert SECRET not in listed

    account_id = add_oauth_account(cli)
    connect = cli.ok("oauth", "connect", str(account_id))
    url = next(line for line in connect.splitlines() if line.startswith("https://"))
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == ["app-1"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["login_hint"] == ["office@example.com"]
    assert "offline_access" in query["scope"][0]
    assert query["redirect_uri"] == ["http://127.0.0.1:8025/oauth/callback"]
    shown = cli.ok("account", "show", str(account_id))
    assert "oauth2: not-connected" in shown

    refused = cli.fails("oauth", "refresh", str(account_id), code=2)
    assert "must be connected again" in refused
    in_use = cli.fails("oauth", "client", "delete", "Entra")
    assert "is used by 1 account(s)" in in_use


def test_connect_refuses_a_password_account_and_take_over_another_mailbox(cli: Cli) -> None:
    document = {
        "role": "global",
        "name": "Old",
        "email": "old@example.com",
        "incoming": {
            "protocol": "imap",
            "host": "127.0.0.1",
            "security": "tls",
            "password": "canary-password",
        },
    }
    path = cli.home.parent / "old.json"
    path.write_text(json.dumps(document))
    old = json.loads(cli.ok("account", "add", "--json", str(path)))["id"]
    refused = cli.fails("oauth", "connect", str(old))
    assert "signs in with a password" in refused
    document["email"] = "other@example.com"
    path.write_text(json.dumps(document))
    other = json.loads(cli.ok("account", "add", "--json", str(path)))["id"]
    refused = cli.fails("account", "take-over", str(other), "--from", str(old))
    assert "needs the same mailbox" in refused
    assert "old@example.com by IMAP at 127.0.0.1" in refused
