"""Quarantine actions through the API, on both databases: look, reprocess, assign, discard."""

from __future__ import annotations

from typing import Any

from tests.apisupport import Api
from tests.support import sample_message

STRANGER = "Stranger <stranger@elsewhere.example>"


def _known_senders_only(api: Api, channel_id: int, **extra: Any) -> None:
    rules = {"known_senders_only": True, "decisions": {"unknown-sender": "quarantine"}, **extra}
    assert api.put(f"/api/v1/channels/{channel_id}/rules", json=rules).status_code == 200


def test_look_then_reprocess_under_changed_rules(api: Api) -> None:
    channel_id = api.channel()
    _known_senders_only(api, channel_id)
    held = api.deliver(channel_id, sample_message(sender=STRANGER, subject="Let me in"))
    assert held.outcome == "quarantined"
    shown = api.get(f"/api/v1/quarantine/{held.quarantine_id}").json()
    assert shown["reason_code"] == "unknown-sender"
    assert shown["preview"]["sender"] == "stranger@elsewhere.example"
    assert shown["preview"]["subject"] == "Let me in"
    assert shown["preview"]["excerpt"] == "Please help.\n"

    still = api.post(f"/api/v1/quarantine/{held.quarantine_id}/reprocess").json()
    assert still["outcome"] == "quarantined"  # same rules: held again, same entry
    assert still["quarantine_id"] == held.quarantine_id
    assert api.get(f"/api/v1/quarantine/{held.quarantine_id}").json()["state"] == "held"

    assert api.put(f"/api/v1/channels/{channel_id}/rules", json={}).status_code == 200
    done = api.post(f"/api/v1/quarantine/{held.quarantine_id}/reprocess").json()
    assert done["outcome"] == "created"
    case = api.get(f"/api/v1/cases/{done['case_id']}").json()
    assert case["subject"] == "Let me in"
    assert api.get(f"/api/v1/quarantine/{held.quarantine_id}").json()["state"] == "released"
    again = api.post(f"/api/v1/quarantine/{held.quarantine_id}/reprocess")
    assert again.status_code == 409
    assert "not held" in again.json()["detail"]


def test_assign_overrides_the_rules_and_discard_keeps_it_out(api: Api) -> None:
    channel_id = api.channel()
    case_id = api.deliver(channel_id, sample_message(subject="The printer")).case_id
    _known_senders_only(api, channel_id)
    first = api.deliver(channel_id, sample_message(sender=STRANGER, subject="About the printer"))
    second = api.deliver(channel_id, sample_message(sender=STRANGER, subject="Spam"))

    missing = api.post(f"/api/v1/quarantine/{first.quarantine_id}/assign", json={"case_id": 999})
    assert missing.status_code == 404
    assert api.get(f"/api/v1/quarantine/{first.quarantine_id}").json()["state"] == "held"

    joined = api.post(
        f"/api/v1/quarantine/{first.quarantine_id}/assign", json={"case_id": case_id}
    ).json()
    assert joined["outcome"] == "appended"
    assert joined["case_id"] == case_id
    history = api.get(f"/api/v1/cases/{case_id}/messages").json()
    assert [m["subject"] for m in history] == ["The printer", "About the printer"]
    assert "assigned-by-admin" in {hit["rule"] for hit in history[-1]["rule_hits"]}

    gone = api.post(f"/api/v1/quarantine/{second.quarantine_id}/discard").json()
    assert gone["state"] == "discarded"
    listed = api.get("/api/v1/quarantine").json()
    assert [e["id"] for e in listed] == []  # nothing held any more
    receipts = api.get("/api/v1/inbound", params={"state": "discarded"}).json()
    assert [r["id"] for r in receipts] == [second.inbound_id]


def test_the_notice_copies_a_person_who_wrote_but_not_twice(api: Api) -> None:
    """Seed 004: the sender learns their mail is held (in CC of the admins' notice)."""
    channel_id = api.channel()
    _known_senders_only(api, channel_id, cc_sender_on_quarantine=True)
    for subject in ("First", "Second"):
        api.deliver(channel_id, sample_message(sender=STRANGER, subject=subject))
    notices = [e for e in api.get("/api/v1/outbox").json() if e["kind"] == "notice"]
    assert len(notices) == 1, notices  # the second one within 10 minutes: no second notice
    assert "stranger@elsewhere.example" in notices[0]["recipients"]
    assert "api-admin@tests.example" in notices[0]["recipients"]
    assert "(stranger@elsewhere.example)" in notices[0]["subject"]


def test_without_the_option_the_sender_is_not_told(api: Api) -> None:
    channel_id = api.channel()
    _known_senders_only(api, channel_id)
    api.deliver(channel_id, sample_message(sender=STRANGER))
    notices = [e for e in api.get("/api/v1/outbox").json() if e["kind"] == "notice"]
    assert len(notices) == 1
    assert notices[0]["recipients"] == ["api-admin@tests.example"]
