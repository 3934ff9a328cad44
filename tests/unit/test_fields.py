"""Structured fields: names a channel may configure, values read from X-Casemail-* header
fields and "Field: value" body lines of machine-generated mail, and the sender allow-list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casemail.ingest.fields import (
    MAX_BODY_LINES,
    MAX_FIELDS,
    MAX_VALUE_LENGTH,
    extract_fields,
    header_name_for,
    sender_trusted,
    validate_field_names,
)

# A monitoring alert as such systems send it: the fields sit in the generated preamble.
NAGIOS_BODY = "\n".join(
    [
        "***** Nagios *****",
        "",
        "Notification Type: PROBLEM",
        "Customer-Number: 4711",
        "Service: PostgreSQL replication lag",
        "Host: db01.customer.example",
        "State: CRITICAL",
        "",
        "Date/Time: Mon Nov 23 16:02:50 UTC 2026",
        "",
        "Additional Info:",
        "Customer-Number: 9999 (from the check output; the first line counts)",
        "",
        "-- ",  # RFC 3676 section 4.3 signature separator
        "Nagios on monitor.example",
        "Priority: from the signature",
        "",
    ]
)

# validate_field_names


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], []),
        (["Customer-Number"], ["Customer-Number"]),
        (
            [" Customer Number ", "Site_ID", "priority", "Ticket 2"],
            ["Customer Number", "Site_ID", "priority", "Ticket 2"],
        ),
        (["x" * 40], ["x" * 40]),
        (["-Customer-"], ["-Customer-"]),
        (["42"], ["42"]),
    ],
)
def test_validate_field_names_accepts(names: list[str], expected: list[str]) -> None:
    assert validate_field_names(names) == expected


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a", "b", "c", "d", "e"], "at most 4 structured fields are allowed, got 5"),
        ([""], "must not be empty"),
        (["Site", "  \t "], "must not be empty"),
        (["x" * 41], "longer than 40 characters"),
        (["Kunden/Nr"], "contains '/'"),
        (["Customer:Number"], "contains ':'"),
        (["Grüße"], "contains 'ß', 'ü'"),
        (["Kunde.Nr"], "only ASCII letters, digits, spaces, hyphens and underscores"),
        (["a\tb"], "contains '\\t'"),
        (["---"], "needs a letter or digit"),
        (["Customer Number", "customer-number"], "'customer-number' is the same field as"),
        (["Customer_Number", "CUSTOMER  NUMBER"], "is the same field as 'Customer_Number'"),
        (["Site", "site "], "'site' is the same field as 'Site'"),
    ],
)
def test_validate_field_names_refuses(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match="structured field") as raised:
        validate_field_names(names)
    assert message in str(raised.value)


def test_validate_field_names_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError):
        validate_field_names("Customer-Number")


def test_max_fields_is_four() -> None:
    assert MAX_FIELDS == 4
    assert len(validate_field_names(["a", "b", "c", "d"])) == MAX_FIELDS


@pytest.mark.parametrize(
    ("field", "header"),
    [
        ("Customer Number", "x-casemail-customer-number"),
        ("Customer-Number", "x-casemail-customer-number"),
        ("customer_number", "x-casemail-customer-number"),
        (" Site  ID ", "x-casemail-site-id"),
        ("-Site-", "x-casemail-site"),
        ("P1", "x-casemail-p1"),
    ],
)
def test_header_name_for(field: str, header: str) -> None:
    assert header_name_for(field) == header


@pytest.mark.parametrize("field", ["", "---", "Kunde.Nr", "Grüße", "x" * 41])
def test_header_name_for_refuses_invalid_names(field: str) -> None:
    with pytest.raises(ValueError, match="structured field name"):
        header_name_for(field)


# extract_fields

FIELDS = ["Customer Number", "Host", "Notification Type", "Priority"]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        pytest.param(
            {},
            NAGIOS_BODY,
            {
                "Customer Number": "4711",
                "Host": "db01.customer.example",
                "Notification Type": "PROBLEM",
            },
            id="nagios-body",
        ),
        pytest.param(
            {"x-casemail-customer-number": "  C-0815 ", "x-casemail-priority": "high"},
            NAGIOS_BODY,
            {
                "Customer Number": "C-0815",
                "Host": "db01.customer.example",
                "Notification Type": "PROBLEM",
                "Priority": "high",
            },
            id="header-wins-over-body",
        ),
        pytest.param(
            {"x-casemail-customer_number": "1", "x-casemail-customer-number": "2"},
            None,
            {"Customer Number": "2"},
            id="exact-header-spelling-wins",
        ),
        pytest.param(
            {"X-Casemail-Customer_Number": "1", "x-casemail-unconfigured": "x", "subject": "Host"},
            None,
            {"Customer Number": "1"},
            id="header-name-equivalence",
        ),
        pytest.param(
            {"x-casemail-customer-number": " \t\x00 "},
            "customer number: 4711\r\nHOST : db01\r\n",
            {"Customer Number": "4711", "Host": "db01"},
            id="blank-header-falls-back-crlf-body-odd-case",
        ),
        pytest.param(
            {},
            " Customer-Number: 1\nHost:\nHost: second\n*Priority*: 1\nPriority - high\n",
            {},
            id="column-0-first-occurrence-colon-needed",
        ),
        pytest.param(
            {},
            "Priority: high\n> Customer-Number: 1\nHost: after-quote\n",
            {"Priority": "high"},
            id="stop-at-quoted-line",
        ),
        pytest.param(
            {},
            "Priority: high\n--\nHost: after-bare-separator\n",
            {"Priority": "high"},
            id="stop-at-separator-without-space",
        ),
        pytest.param(
            {},
            "Note: Customer-Number: 1\nURL: https://host.example/\nHost\x0b: x\n",
            {},
            id="only-a-label-that-is-the-name",
        ),
        pytest.param(
            {"x-casemail-host": "db01\r\n\tcluster A\x1b[0m", "x-casemail-priority": "Müller 🚨"},
            "Customer-Number:\x00 47\x0711\u2028\n",
            {"Customer Number": "4711", "Host": "db01   cluster A[0m", "Priority": "Müller 🚨"},
            id="control-characters",
        ),
        pytest.param(
            {},
            "\u212austomer: x\nCustomer Number\u00a0: 4711\n",
            {},
            id="no-unicode-folding-into-a-name",
        ),
    ],
)
def test_extract_fields(
    headers: dict[str, str], body: str | None, expected: dict[str, str]
) -> None:
    assert extract_fields(FIELDS, header_fields=headers, text_body=body) == expected


def test_extract_fields_reads_only_the_first_200_lines() -> None:
    filler = "\n" * (MAX_BODY_LINES - 1)
    body = filler + "Host: line 200\nPriority: line 201\n"
    found = extract_fields(FIELDS, header_fields={}, text_body=body)
    assert found == {"Host": "line 200"}


def test_extract_fields_caps_values_at_500_characters() -> None:
    long_value = "x" * (MAX_VALUE_LENGTH - 1) + " y" + "z" * 10_000
    found = extract_fields(
        ["Host", "Priority"],
        header_fields={"x-casemail-host": long_value},
        text_body="Priority:   " + "p" * 10_000,
    )
    assert found["Host"] == "x" * (MAX_VALUE_LENGTH - 1)  # no trailing space after the cut
    assert found["Priority"] == "p" * MAX_VALUE_LENGTH


def test_extract_fields_keeps_the_configured_spelling() -> None:
    found = extract_fields(["customer_NUMBER"], header_fields={}, text_body="Customer-Number: 7")
    assert found == {"customer_NUMBER": "7"}


@pytest.mark.timeout(10)
def test_extract_fields_on_a_hostile_body() -> None:
    body = ("A" * 8192 + ":" + "b" * 8192 + "\n") * 100 + ":" * 1_000_000
    headers = {"x-casemail-" + "-" * 8192: "x", "x-casemail-host": "\x00" * 1_000_000}
    assert extract_fields(FIELDS, header_fields=headers, text_body=body) == {}


_BODY = st.lists(
    st.one_of(
        st.sampled_from(["Host: a", "host:", "-- ", ">", "Priority :\tb", "", "\r", "Customer"]),
        st.text(max_size=60),
    ),
    max_size=30,
).map("\n".join)


@given(
    names=st.lists(st.text(max_size=12), max_size=6),
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4),
    body=st.one_of(st.none(), _BODY),
)
def test_extract_fields_never_raises(
    names: list[str], headers: dict[str, str], body: str | None
) -> None:
    found = extract_fields(names, header_fields=headers, text_body=body)
    assert set(found) <= set(names)
    for value in found.values():
        assert value
        assert value == value.strip()
        assert len(value) <= MAX_VALUE_LENGTH
        assert not any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in value)


@given(st.lists(st.text(max_size=45), max_size=6))
def test_validate_field_names_raises_only_value_error(names: list[str]) -> None:
    try:
        valid = validate_field_names(names)
    except ValueError:
        return
    assert len(valid) <= MAX_FIELDS
    for name in valid:
        assert header_name_for(name).startswith("x-casemail-")


# sender_trusted

ALERTS = "alerts@monitoring.example"


@pytest.mark.parametrize(
    ("sender", "allow_list", "expected"),
    [
        (ALERTS, [ALERTS], True),
        ("Alerts@Monitoring.EXAMPLE", [" ALERTS@monitoring.example "], True),
        ("alerts@monitoring.example.", [ALERTS], True),
        ("other@monitoring.example", [ALERTS], False),
        ("alerts+x@monitoring.example", [ALERTS], False),
        ("other@monitoring.example", ["@monitoring.example"], True),
        ("other@monitoring.example", ["Monitoring.Example"], True),
        ("a@eu.monitoring.example", ["monitoring.example"], False),
        ("a@eu.monitoring.example", ["@monitoring.example"], False),
        ("a@eu.monitoring.example", ["*.monitoring.example"], True),
        ("a@x.eu.monitoring.example", ["*.MONITORING.example"], True),
        ("a@monitoring.example", ["*.monitoring.example"], False),
        ("a@evilmonitoring.example", ["*.monitoring.example"], False),
        ("a@evilmonitoring.example", ["monitoring.example"], False),
        ("a@monitoring.example.evil.example", ["monitoring.example"], False),
        ("a@monitoring.example@evil.example", ["monitoring.example"], False),
        ("a@evil.example", ["nope.example", ALERTS, "@evil.example"], True),
        (None, [ALERTS, "monitoring.example"], False),
        ("", ["monitoring.example"], False),
        ("   ", ["monitoring.example"], False),
        ("monitoring.example", ["monitoring.example"], False),
        ("@monitoring.example", ["monitoring.example"], False),
        ("alerts@", ["alerts@"], False),
        (f"Alerts <{ALERTS}>", [ALERTS], False),
        ("alerts @monitoring.example", ["monitoring.example"], False),
        (ALERTS, [], False),
        (ALERTS, ["", "  ", "*", "*.", "@", "*@monitoring.example"], False),
    ],
)
def test_sender_trusted(sender: str | None, allow_list: list[str], expected: bool) -> None:
    assert sender_trusted(sender, allow_list) is expected


def test_sender_trusted_refuses_a_bare_string_allow_list() -> None:
    with pytest.raises(TypeError):
        sender_trusted(ALERTS, ALERTS)


@given(st.one_of(st.none(), st.text(max_size=40)), st.lists(st.text(max_size=30), max_size=4))
def test_sender_trusted_never_raises(sender: str | None, allow_list: list[str]) -> None:
    trusted = sender_trusted(sender, allow_list)
    assert not trusted or (sender and allow_list)
