"""Autodetection against real local servers: DNS, HTTP, IMAP/POP3/SMTP greeters, aiosmtpd.

Every name resolves through the local DNS server (the resolver never reads resolv.conf),
every connection goes to 127.0.0.1; no test talks to the internet.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller

from casemail.accounts.autodetect import (
    AutoconfigSettings,
    Detection,
    InvalidEmailAddress,
    ProbeSettings,
    detect,
    detect_for_api,
)
from casemail.bootstrap import build_context
from casemail.config import Settings
from tests.conftest import free_port
from tests.netsupport import Greeter, LocalDNS, LocalHTTP, Zone

IMAP_OK = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] test IMAP ready\r\n"
POP3_OK = b"+OK test POP3 ready\r\n"
SMTP_OK = b"220 mail.test ESMTP ready\r\n"


@dataclass
class Net:
    dns: LocalDNS
    http: LocalHTTP
    ca: trustme.CA
    greeters: list[Greeter] = field(default_factory=list)
    dead_port: int = field(default_factory=free_port)

    def greeter(self, greeting: bytes, *, tls_for: str | None = None) -> Greeter:
        context = None
        if tls_for:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(tls_for).configure_cert(context)
        server = Greeter(greeting, tls=context)
        self.greeters.append(server)
        return server

    def probe(self, **ports: Any) -> ProbeSettings:
        """Probe settings trusting the test CA; every port not given is a dead one."""
        client = ssl.create_default_context()
        self.ca.configure_trust(client)
        dead = ((self.dead_port, "starttls"),)
        chosen = {"imap_ports": dead, "pop3_ports": dead, "smtp_ports": dead, **ports}
        return ProbeSettings(**chosen, timeout=2.0, tls_context=client)

    def detect(
        self, email: str, *, allow_private: bool = True, guess_hosts: bool = True, **probe: Any
    ) -> Detection:
        async def run() -> Detection:
            async with httpx.AsyncClient(trust_env=False) as http:
                return await detect(
                    email,
                    resolver=self.dns.resolver(),
                    http=http,
                    allow_private=allow_private,
                    probe=self.probe(**probe),
                    autoconfig=AutoconfigSettings(scheme="http", port=self.http.port),
                    guess_hosts=guess_hosts,
                )

        return asyncio.run(run())


@pytest.fixture
def net() -> Iterator[Net]:
    network = Net(LocalDNS(), LocalHTTP(), trustme.CA())
    yield network
    for server in network.greeters:
        server.close()
    network.http.close()
    network.dns.close()


def outcomes(detection: Detection, step: str) -> list[tuple[str, str]]:
    return [(e.target, e.outcome) for e in detection.trail if e.step == step]


def test_preset_by_domain_needs_no_network(net: Net) -> None:
    detection = net.detect("Someone@GMAIL.com")
    assert (detection.source, detection.confidence, detection.preset_id) == (
        "preset",
        "high",
        "gmail",
    )
    assert detection.incoming is not None
    assert detection.outgoing is not None
    assert (detection.incoming.host, detection.incoming.port) == ("imap.gmail.com", 993)
    assert detection.incoming.security == "tls"
    assert detection.incoming.username == "Someone@gmail.com"
    assert (detection.outgoing.host, detection.outgoing.port) == ("smtp.gmail.com", 465)
    assert detection.oauth_provider == "google"
    assert net.dns.queries == []
    assert net.http.requests == []

    icloud = net.detect("jane@icloud.com")
    assert icloud.incoming is not None
    assert icloud.outgoing is not None
    assert icloud.incoming.username == "jane"  # Apple: the part before @ for IMAP
    assert icloud.outgoing.username == "jane@icloud.com"


def test_srv_priority_order_and_dot_target(net: Net) -> None:
    imaps = net.greeter(IMAP_OK, tls_for="mail.srv.example")
    never = net.greeter(IMAP_OK)
    submission = net.greeter(SMTP_OK)
    zone: Zone = {
        ("_imaps._tcp.srv.example", "SRV"): [
            f"20 0 {never.port} backup.srv.example.",
            f"5 0 {net.dead_port} down.srv.example.",
            f"10 0 {imaps.port} mail.srv.example.",
        ],
        ("_pop3s._tcp.srv.example", "SRV"): ["0 0 0 ."],
        ("_submissions._tcp.srv.example", "SRV"): ["0 0 0 ."],
        ("_submission._tcp.srv.example", "SRV"): [f"0 1 {submission.port} mail.srv.example."],
    }
    for host in ("mail", "down", "backup"):
        zone[(f"{host}.srv.example", "A")] = ["127.0.0.1"]
    net.dns.load(zone)

    detection = net.detect("ann@srv.example")

    assert (detection.source, detection.confidence) == ("srv", "high")
    assert detection.incoming is not None
    assert detection.outgoing is not None
    assert (detection.incoming.protocol, detection.incoming.host) == ("imap", "mail.srv.example")
    assert (detection.incoming.port, detection.incoming.security) == (imaps.port, "tls")
    assert (detection.outgoing.port, detection.outgoing.security) == (submission.port, "starttls")
    assert detection.incoming.username == "ann@srv.example"
    trail = outcomes(detection, "srv")
    assert ("_pop3s._tcp.srv.example.", "not-offered") in trail
    assert ("_submissions._tcp.srv.example.", "not-offered") in trail
    assert ("_imap._tcp.srv.example.", "not-found") in trail
    greeted = [(t, o) for t, o in trail if t.startswith("imap ")]
    assert greeted == [
        (f"imap down.srv.example:{net.dead_port} (tls)", "failed"),
        (f"imap mail.srv.example:{imaps.port} (tls)", "found"),
    ]
    assert never.connections == 0  # priority 20 was never needed
    as_json = json.loads(json.dumps(detection.as_dict()))
    assert as_json["incoming"]["host"] == "mail.srv.example"
    assert as_json["found"] is True
    assert as_json["trail"][0]["step"] == "preset"


def test_mx_maps_to_microsoft_365(net: Net) -> None:
    net.dns.load(
        {
            ("contoso.example", "MX"): [
                "20 backup-mx.contoso.example.",
                "10 contoso-example.mail.protection.outlook.com.",
            ]
        }
    )

    detection = net.detect("it@contoso.example")

    assert (detection.source, detection.preset_id) == ("mx", "microsoft365")
    assert detection.confidence == "medium"
    assert detection.incoming is not None
    assert detection.outgoing is not None
    assert detection.incoming.host == "outlook.office365.com"
    assert (detection.outgoing.host, detection.outgoing.port) == ("smtp.office365.com", 587)
    assert detection.auth_types == ("oauth2",)
    assert detection.oauth_provider == "microsoft"
    assert any("basic auth" in note for note in detection.notes)
    assert ("contoso-example.mail.protection.outlook.com", "found") in outcomes(detection, "mx")


def config_xml(*servers: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<clientConfig version="1.1">'
        '<emailProvider id="ac.example"><domain>ac.example</domain>'
        + "".join(servers)
        + "</emailProvider></clientConfig>"
    ).encode()


def server_xml(kind: str, tag: str, host: str, port: int, socket_type: str) -> str:
    return (
        f'<{tag} type="{kind}"><hostname>{host}</hostname><port>{port}</port>'
        f"<socketType>{socket_type}</socketType><username>%EMAILLOCALPART%</username>"
        f"<authentication>password-cleartext</authentication></{tag}>"
    )


def test_autoconfig_hit(net: Net) -> None:
    imap = net.greeter(IMAP_OK)
    smtp = net.greeter(SMTP_OK)
    body = config_xml(
        server_xml("exchange", "incomingServer", "ews.ac.example", 443, "SSL"),
        server_xml("imap", "incomingServer", "old.ac.example", 143, "plain"),
        server_xml("imap", "incomingServer", "down.ac.example", net.dead_port, "STARTTLS"),
        server_xml("imap", "incomingServer", "mail.%EMAILDOMAIN%", imap.port, "STARTTLS"),
        server_xml("smtp", "outgoingServer", "mail.ac.example", smtp.port, "STARTTLS"),
    )
    net.http.serve("autoconfig.ac.example", "/mail/config-v1.1.xml", body)
    net.dns.load(
        {
            (f"{host}.ac.example", "A"): ["127.0.0.1"]
            for host in ("autoconfig", "mail", "down", "old")
        }
    )

    detection = net.detect("bob@ac.example")

    assert (detection.source, detection.confidence) == ("autoconfig", "high")
    assert detection.incoming is not None
    assert detection.outgoing is not None
    assert (detection.incoming.host, detection.incoming.port) == ("mail.ac.example", imap.port)
    assert detection.incoming.username == "bob"  # %EMAILLOCALPART%
    assert (detection.outgoing.host, detection.outgoing.port) == ("mail.ac.example", smtp.port)
    assert detection.auth_types == ("password",)
    assert net.http.requests == [
        ("autoconfig.ac.example", "/mail/config-v1.1.xml?emailaddress=bob%40ac.example")
    ]
    trail = outcomes(detection, "autoconfig")
    assert trail[0][1] == "found"
    fetched = next(e for e in detection.trail if e.step == "autoconfig")
    assert "1 skipped" in fetched.detail  # the plain (no TLS) server; exchange is not counted
    assert (f"imap down.ac.example:{net.dead_port} (starttls)", "failed") in trail


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE clientConfig [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>
<clientConfig><emailProvider id="x"><displayName>&b;</displayName></emailProvider></clientConfig>
"""


def test_bad_autoconfig_is_reported_and_detection_falls_through(net: Net) -> None:
    imap = net.greeter(IMAP_OK)
    net.http.serve("autoconfig.bad.example", "/mail/config-v1.1.xml", b"<clientConfig><email")
    net.http.serve("bad.example", "/.well-known/autoconfig/mail/config-v1.1.xml", BILLION_LAUGHS)
    net.dns.load(
        {
            ("autoconfig.bad.example", "A"): ["127.0.0.1"],
            ("bad.example", "A"): ["127.0.0.1"],
            ("imap.bad.example", "A"): ["127.0.0.1"],
        }
    )

    detection = net.detect("carol@bad.example", imap_ports=((imap.port, "starttls"),))

    entries = [e for e in detection.trail if e.step == "autoconfig"]
    assert [e.outcome for e in entries] == ["invalid", "invalid"]
    assert "not well-formed" in entries[0].detail
    assert "DTD" in entries[1].detail or "Forbidden" in entries[1].detail
    assert detection.source == "probe"
    assert detection.incoming is not None
    assert detection.incoming.host == "imap.bad.example"


class _NoHooks:
    """An aiosmtpd handler with no hooks: greets, then refuses mail it cannot take."""


def test_probe_finds_common_host_names(net: Net) -> None:
    imap = net.greeter(IMAP_OK)
    pop3 = net.greeter(POP3_OK)
    smtp_port = free_port()
    controller = Controller(
        _NoHooks(), hostname="127.0.0.1", port=smtp_port, server_hostname="mx.probe.example"
    )
    controller.start()
    net.dns.load(
        {(f"{host}.probe.example", "A"): ["127.0.0.1"] for host in ("imap", "pop", "smtp")}
    )
    try:
        detection = net.detect(
            "dave@probe.example",
            imap_ports=((net.dead_port, "tls"), (imap.port, "starttls")),
            pop3_ports=((pop3.port, "starttls"),),
            smtp_ports=((smtp_port, "starttls"),),
        )
    finally:
        controller.stop()

    assert (detection.source, detection.confidence) == ("probe", "low")
    assert detection.incoming is not None
    assert detection.outgoing is not None
    assert detection.incoming.protocol == "imap"  # preferred over the POP3 that also answered
    assert (detection.incoming.host, detection.incoming.port) == ("imap.probe.example", imap.port)
    assert (detection.outgoing.host, detection.outgoing.port) == ("smtp.probe.example", smtp_port)
    trail = outcomes(detection, "probe")
    assert ("mail.probe.example", "not-found") in trail
    assert (f"imap imap.probe.example:{net.dead_port} (tls)", "failed") in trail
    assert (f"pop3 pop.probe.example:{pop3.port} (starttls)", "found") in trail


def test_nothing_found_reports_every_step(net: Net) -> None:
    detection = net.detect("erin@empty.example")

    assert (detection.source, detection.confidence) == ("none", "none")
    assert detection.incoming is None
    assert detection.outgoing is None
    assert not detection.found
    steps = {entry.step for entry in detection.trail}
    assert steps == {"preset", "srv", "mx", "autoconfig", "probe"}
    assert {entry.outcome for entry in detection.trail} == {"not-found"}
    assert len(outcomes(detection, "srv")) == 6
    assert net.http.requests == []

    without_guessing = net.detect("erin@empty.example", guess_hosts=False)
    assert "probe" not in {entry.step for entry in without_guessing.trail}


def test_private_hosts_are_refused(net: Net) -> None:
    imap = net.greeter(IMAP_OK)
    net.dns.load(
        {
            ("_imap._tcp.private.example", "SRV"): [f"0 1 {imap.port} mail.private.example."],
            ("mail.private.example", "A"): ["127.0.0.1"],
            ("imap.private.example", "A"): ["127.0.0.1"],
            ("autoconfig.private.example", "A"): ["127.0.0.1"],
        }
    )

    detection = net.detect(
        "frank@private.example", allow_private=False, imap_ports=((imap.port, "starttls"),)
    )

    assert detection.source == "none"
    refused = {(e.step, e.target) for e in detection.trail if e.outcome == "refused"}
    autoconfig_url = (
        f"http://autoconfig.private.example:{net.http.port}"
        "/mail/config-v1.1.xml?emailaddress=frank%40private.example"
    )
    assert refused == {
        ("srv", "mail.private.example"),
        ("autoconfig", autoconfig_url),
        ("probe", "imap.private.example"),
        ("probe", "mail.private.example"),
    }
    assert all("private" in e.detail for e in detection.trail if e.outcome == "refused")
    assert imap.connections == 0
    assert net.http.requests == []

    allowed = net.detect("frank@private.example", imap_ports=((imap.port, "starttls"),))
    assert allowed.source == "srv"
    assert imap.connections == 1


def test_detect_for_api_uses_the_service_settings(tmp_path: Path) -> None:
    """A preset domain: the adapter answers without touching the network."""
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/casemail.db")
    context = build_context(settings, migrate=False)
    result = asyncio.run(detect_for_api(context, "team@outlook.com", probe=False))
    assert result["source"] == "preset"
    assert result["preset_id"] == "outlook"
    assert result["incoming"]["host"] == "outlook.office365.com"
    assert result["outgoing"]["host"] == "smtp-mail.outlook.com"


def test_invalid_address_is_refused_before_any_lookup(net: Net) -> None:
    with pytest.raises(InvalidEmailAddress):
        net.detect("not an address")
    assert net.dns.queries == []
