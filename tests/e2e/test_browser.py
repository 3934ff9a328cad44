"""The web app in a real browser (Debian's Chromium, driven by Playwright) against a real
``casemail serve`` with its workers, a real Dovecot and a real SMTP peer.

One story, as the issue tells it: an admin adds an account with the wizard and tests and
activates it; mail delivered to that mailbox becomes a case; an agent replies from the
case and the reply reaches the SMTP peer; the quarantine and outbox screens act on real
entries; hostile HTML runs nothing. A screenshot of each screen is kept; with
``CASEMAIL_SCREENSHOTS=docs/screenshots`` they are written there (the README shows them).

DNS for the wizard's autodetection goes to a local DNS server that knows nothing, so the
admin types the settings, as for any small provider; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, sync_playwright

from tests.e2e.test_serve_mailboxes import CASEMAIL, Casemail, Process
from tests.mailservers import DOVECOT, Dovecot, MailUser, SmtpPeer, TestPKI, TokenIssuer
from tests.netsupport import LocalDNS
from tests.support import sample_message

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ADMIN = ("ada@example.com", "ada's long password")
AGENT = ("abe@example.com", "abe's long password")
HOSTILE = """<p>Look at this</p><script>window.__pwned = 1; alert('script')</script>
<img src="x" onerror="window.__pwned = 2"><svg onload="window.__pwned = 3"></svg>
<a href="javascript:window.__pwned = 4">link</a><img src="https://tracker.example/p.gif">"""


@dataclass
class Servers:
    dovecot: Dovecot
    peer: SmtpPeer
    dns: LocalDNS


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    if not Path(DOVECOT).exists():
        pytest.skip(f"browser tests skipped: {DOVECOT} not found (run scripts/install --test)")
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests skipped: {CHROMIUM} not found (run scripts/install --test)")
    tokens = TokenIssuer()
    tokens.start()
    pki = TestPKI(tmp_path_factory.mktemp("browser-pki"))
    dovecot = Dovecot(pki, tokens)
    peer = SmtpPeer(pki, tokens, mode="starttls")
    dns = LocalDNS()
    try:
        dovecot.start()
        peer.start()
        yield Servers(dovecot, peer, dns)
    finally:
        peer.stop()
        dovecot.stop()
        dns.server.shutdown()
        tokens.stop()


@pytest.fixture
def installation(tmp_path: Path, servers: Servers) -> Iterator[Casemail]:
    env = {
        **os.environ,
        "CASEMAIL_HOME": str(tmp_path / "home"),
        "CASEMAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'casemail.db'}",
        "CASEMAIL_SMTP_HOSTNAME": "casemail.test",
        "CASEMAIL_TLS_CA_FILE": str(servers.dovecot.ca_file),
        "CASEMAIL_ALLOW_PRIVATE_HOSTS": "true",
        "CASEMAIL_DNS_NAMESERVERS": f"127.0.0.1:{servers.dns.port}",
    }
    cm = Casemail(env=env, tmp=tmp_path)
    for (email, password), role in ((ADMIN, "admin"), (AGENT, "agent")):
        _cli_with_password(cm, password, "user", "add", "--name", email.split("@")[0].title(),
                           "--email", email, "--role", role, "--password-stdin")  # fmt: skip
    yield cm
    for process in cm.processes:
        if process.alive():
            process.popen.kill()
            process.popen.wait(timeout=10)


def _cli_with_password(cm: Casemail, password: str, *args: str) -> None:
    done = subprocess.run(
        [CASEMAIL, *args], env=cm.env, input=password + "\n", capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


class Shots:
    """Screenshots in the test's directory, and in CASEMAIL_SCREENSHOTS when set."""

    def __init__(self, tmp: Path) -> None:
        wanted = os.environ.get("CASEMAIL_SCREENSHOTS")
        self.places = [tmp / "screenshots", *([Path(wanted)] if wanted else [])]
        for place in self.places:
            place.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str) -> None:
        for place in self.places:
            page.screenshot(path=str(place / f"{name}.png"), full_page=True)


def _wait(what: str, check: Callable[[], bool], seconds: float, cm: Casemail) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}\n{cm.logs()}")
        time.sleep(0.2)


def _sign_in(page: Page, base: str, who: tuple[str, str]) -> None:
    page.goto(f"{base}/ui/signin")
    page.fill("input[name=email]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/cases")


def test_admin_and_agent_work_through_the_web_app(
    installation: Casemail, servers: Servers, tmp_path: Path
) -> None:
    cm, dovecot, peer = installation, servers.dovecot, servers.peer
    mailbox: MailUser = dovecot.add_user()
    peer.add_login(mailbox.address, mailbox.password)
    serve: Process = cm.serve()
    base, shots = cm.base, Shots(tmp_path)
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)  # an alert() that ran: it must never happen
        dialog.dismiss()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            admin = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            admin.on("dialog", on_dialog)
            admin.goto(f"{base}/ui/signin")
            shots.take(admin, "01-sign-in")
            _sign_in(admin, base, ADMIN)

            # The wizard: address, settings typed by hand, tests, activation.
            admin.goto(f"{base}/ui/admin/accounts")
            admin.click("text=Add an account")
            admin.fill("input[name=email]", mailbox.address)
            admin.click("text=Find settings")
            admin.wait_for_selector("text=No settings were found for this address")
            admin.fill("input[name=name]", "Support mailbox")
            admin.fill("input[name=in_host]", "127.0.0.1")
            admin.fill("input[name=in_port]", str(dovecot.ports.imaps))
            admin.select_option("select[name=in_security]", "tls")
            admin.fill("input[name=out_host]", "127.0.0.1")
            admin.fill("input[name=out_port]", str(peer.port))
            admin.select_option("select[name=out_security]", "starttls")
            admin.fill("input[name=password]", mailbox.password)
            shots.take(admin, "02-account-wizard-settings")
            admin.click("text=Save and test")
            admin.click("button:has-text('Test incoming')")
            assert "passed" in admin.inner_text("td.test-incoming"), admin.content()
            admin.fill("input[name=to]", "it@example.com")
            admin.click("button:has-text('Test outgoing')")
            assert "passed" in admin.inner_text("td.test-outgoing"), admin.content()
            assert any("it@example.com" in m.rcpt_tos for m in peer.received)
            admin.fill("input[name=channel_address]", "support@example.com")
            shots.take(admin, "03-account-wizard-tests")
            admin.click("button:has-text('Activate')")
            admin.wait_for_selector("text=Support mailbox is active")
            shots.take(admin, "04-accounts")
            admin.click("nav >> text=Channels")
            admin.uncheck(f"#channel-{_channel_id(admin)} input[name=notify_quarantine]")
            shots.take(admin, "10-channels")
            admin.click("button:has-text('Save')")
            admin.wait_for_selector("text=support@example.com saved")

            # Mail delivered to the mailbox becomes a case.
            dovecot.deliver(mailbox, sample_message(subject="Printer on fire", body="Help!\n"))
            hostile = sample_message(subject="Hostile HTML", body="see the HTML part\n")
            hostile.add_alternative(HOSTILE, subtype="html")
            dovecot.deliver(mailbox, hostile)

            def listed(subject: str) -> bool:
                admin.goto(f"{base}/ui/cases")
                return subject in admin.content()

            _wait("the delivered mail as a case", lambda: listed("Hostile HTML"), 30, cm)
            assert "Printer on fire" in admin.content()
            shots.take(admin, "05-cases")

            # An agent opens the case and replies; the peer gets the reply.
            agent = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            agent.on("dialog", on_dialog)
            _sign_in(agent, base, AGENT)
            agent.click("text=Printer on fire")
            agent.fill("textarea[name=text]", "We are on our way with an extinguisher.")
            shots.take(agent, "06-case-reply")
            agent.click("button:has-text('Send')")
            agent.wait_for_selector("text=Your reply is queued")

            def replied() -> bool:
                return any(b"extinguisher" in m.data for m in peer.received)

            _wait("the reply at the SMTP peer", replied, 30, cm)
            reply = next(m for m in peer.received if b"extinguisher" in m.data)
            assert reply.rcpt_tos == ("alice@customer.example",)
            assert b"In-Reply-To:" in reply.data

            # Hostile HTML: shown in its sandboxed frame, nothing runs, no tracker loads.
            agent.goto(f"{base}/ui/cases")
            agent.click("text=Hostile HTML")
            frame = agent.frame_locator("iframe.body-html")
            frame.locator("text=Look at this").wait_for()
            assert agent.evaluate("window.__pwned") is None
            shots.take(agent, "07-case-hostile-html")

            # The outbox: a reply the server refuses shows as an error; retry sends it.
            peer.answer_next_data("550 5.1.1 Mailbox unavailable")
            agent.goto(f"{base}/ui/cases")
            agent.click("text=Printer on fire")
            agent.fill("textarea[name=text]", "Second try: are you still there?")
            agent.click("button:has-text('Send')")

            def refused_in_outbox() -> bool:
                admin.goto(f"{base}/ui/admin/outbox?state=error")
                return "Mailbox unavailable" in admin.content()

            _wait("the refused reply in the outbox as error", refused_in_outbox, 30, cm)
            shots.take(admin, "08-outbox")
            admin.click("button:has-text('Clear error, retry')")
            admin.wait_for_selector("text=retry done")
            _wait("the retried reply at the peer", lambda: any(
                b"still there" in m.data for m in peer.received), 30, cm)  # fmt: skip

            # The quarantine: a message without a sender, through casemail's own listener.
            smtp_port = int(_arg(serve, "--smtp-port"))
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
                raw = b"To: support@example.com\r\nSubject: Who am I\r\n\r\nNo From line.\r\n"
                client.sendmail("", ["support@example.com"], raw)
            admin.goto(f"{base}/ui/admin/quarantine")
            admin.wait_for_selector("text=Who am I")
            shots.take(admin, "09-quarantine")
            admin.click("button:has-text('Discard')")
            admin.wait_for_selector("text=discarded")
            assert "Who am I" not in admin.content()
        finally:
            browser.close()
    assert dialogs == [], dialogs


def _channel_id(page: Page) -> str:
    form = page.locator("form.channel").first
    return str(form.get_attribute("id")).removeprefix("channel-")


def _arg(process: Process, name: str) -> str:
    args = list(process.popen.args)  # type: ignore[arg-type]
    return str(args[args.index(name) + 1])
