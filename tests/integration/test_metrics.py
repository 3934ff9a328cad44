"""/metrics for Prometheus, on both databases: figures read from the database."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from casemail.db.models import Account
from casemail.mailboxes.runner import record_failure
from casemail.users.companies import add_company
from tests.apisupport import Api, admin_token, user_token
from tests.support import sample_message


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_what_the_database_holds(api: Api) -> None:
    channel_id = api.channel()
    for n in range(3):
        api.deliver(channel_id, sample_message(subject=f"Case {n}"))
    api.deliver(channel_id, b"")  # quarantined
    with api.db.write() as session:
        account = Account(company_id=1, role="global", name="Desk", email="desk@example.com")
        session.add(account)
        session.flush()
        account_id = account.id
    record_failure(api.db, account_id, TimeoutError("timed out"))

    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = _samples(response.text)
    assert got[("casemail_messages_ingested_total", ())] == 3
    assert got[("casemail_inbound_messages_total", (("state", "done"),))] == 3
    assert got[("casemail_inbound_messages_total", (("state", "quarantined"),))] == 1
    assert got[("casemail_quarantine_held", ())] == 1
    assert got[("casemail_accounts_unhealthy", ())] == 1
    assert got[("casemail_outbox_depth", ())] == 0
    assert got[("casemail_inbound_oldest_waiting_seconds", ())] == 0
    p99 = got[("casemail_ingest_latency_seconds", (("quantile", "0.99"),))]
    assert 0 <= p99 < 60


def test_metrics_are_for_the_installations_admins_only(api: Api) -> None:
    with api.db.write() as session:
        other = add_company(session, "Globex").id
        outsider = admin_token(session, company_id=other, email="boss@globex.example")
        agent = user_token(session, company_id=1, email="al@example.com", role="agent")
    assert api.client.get("/metrics").status_code == 401
    for token in (outsider, agent):
        response = api.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
