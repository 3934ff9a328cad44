"""Authentication-Results parsing (RFC 8601) on fields as Gmail, Microsoft 365, Postfix with
OpenDKIM/OpenDMARC and rspamd write them, and on forged and hostile ones.

The values below are written for these tests in the shape those systems produce; domains are
under the reserved ``.example`` TLD.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casemail.ingest.authresults import (
    MAX_VALUE_LENGTH,
    AuthResults,
    MethodResult,
    dkim_pass_domains,
    parse_authentication_results,
)

OURS = "mail.casemail.example"

GMAIL = (
    "mx.google.com;\r\n"
    "       dkim=pass header.i=@monitoring.example header.s=sel2024 header.b=Qm9v+/Zx;\r\n"
    "       arc=pass (i=1 spf=pass spfdomain=relay.example dkim=pass dkdomain=relay.example"
    " dmarc=pass fromdomain=monitoring.example);\r\n"
    "       spf=pass (google.com: domain of alerts@monitoring.example designates 203.0.113.25"
    " as permitted sender) smtp.mailfrom=alerts@monitoring.example;\r\n"
    "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=monitoring.example"
)
MICROSOFT_365 = (
    "spf=pass (sender IP is 203.0.113.25)\r\n smtp.mailfrom=monitoring.example; dkim=pass"
    " (signature was verified)\r\n header.d=monitoring.example;dmarc=pass action=none\r\n"
    " header.from=monitoring.example;compauth=pass reason=100"
)
OPENDKIM = (
    f"{OURS};\r\n\tdkim=pass (2048-bit key; unprotected) header.d=monitoring.example"
    ' header.i=@monitoring.example header.a=rsa-sha256 header.s=mail header.b="kTxy/9Qz";\r\n'
    "\tdkim-atps=neutral"
)
OPENDMARC = f"{OURS}; dmarc=pass (p=reject dis=none) header.from=monitoring.example"
RSPAMD = (
    f"{OURS};\r\n\tdkim=pass header.d=monitoring.example header.s=dkim header.b=Ab12Cd34;\r\n"
    f"\tspf=pass ({OURS}: domain of bounce@monitoring.example designates 203.0.113.25 as"
    " permitted sender) smtp.mailfrom=bounce@monitoring.example;\r\n"
    "\tdmarc=pass (policy=reject) header.from=monitoring.example"
)
# Modelled on RFC 8601 appendix B.6: two signatures with reason= (a reasonspec); version added.
RFC_B6 = (
    'example.com 1;\r\n  dkim=pass reason="good signature"\r\n'
    "    header.i=@mail-router.example.net;\r\n"
    '  dkim=fail reason="bad signature"\r\n    header.i=@newyork.example.com'
)
# Added by whoever sent the message, naming their own server: ignored.
FORGED = "mx.attacker.example; dkim=pass header.d=bank.example; spf=pass smtp.mailfrom=bank.example"


def results(*entries: tuple[str, str, dict[str, str]]) -> tuple[MethodResult, ...]:
    return tuple(MethodResult(method, result, props) for method, result, props in entries)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            GMAIL,
            AuthResults(
                "mx.google.com",
                results(
                    (
                        "dkim",
                        "pass",
                        {
                            "header.i": "@monitoring.example",
                            "header.s": "sel2024",
                            "header.b": "Qm9v+/Zx",
                        },
                    ),
                    ("arc", "pass", {}),
                    ("spf", "pass", {"smtp.mailfrom": "alerts@monitoring.example"}),
                    ("dmarc", "pass", {"header.from": "monitoring.example"}),
                ),
            ),
            id="gmail",
        ),
        pytest.param(
            MICROSOFT_365,
            AuthResults(
                "",
                results(
                    ("spf", "pass", {"smtp.mailfrom": "monitoring.example"}),
                    ("dkim", "pass", {"header.d": "monitoring.example"}),
                    ("dmarc", "pass", {"action": "none", "header.from": "monitoring.example"}),
                    ("compauth", "pass", {"reason": "100"}),
                ),
            ),
            id="microsoft-365-without-authserv-id",
        ),
        pytest.param(
            OPENDKIM,
            AuthResults(
                OURS,
                results(
                    (
                        "dkim",
                        "pass",
                        {
                            "header.d": "monitoring.example",
                            "header.i": "@monitoring.example",
                            "header.a": "rsa-sha256",
                            "header.s": "mail",
                            "header.b": "kTxy/9Qz",
                        },
                    ),
                    ("dkim-atps", "neutral", {}),
                ),
            ),
            id="postfix-opendkim-semicolon-in-comment",
        ),
        pytest.param(
            RFC_B6,
            AuthResults(
                "example.com",
                results(
                    (
                        "dkim",
                        "pass",
                        {"reason": "good signature", "header.i": "@mail-router.example.net"},
                    ),
                    (
                        "dkim",
                        "fail",
                        {"reason": "bad signature", "header.i": "@newyork.example.com"},
                    ),
                ),
            ),
            id="rfc8601-b6-version-and-reason",
        ),
        pytest.param("example.org 1; none", AuthResults("example.org", ()), id="none-with-version"),
        pytest.param("MX.Example.ORG ;NONE", AuthResults("mx.example.org", ()), id="none-odd-case"),
        pytest.param(
            "(received (by) us) mx.example.org (v1) ; DKIM/1 = PASS (ok) Header.D = Example.COM ;",
            AuthResults("mx.example.org", results(("dkim", "pass", {"header.d": "Example.COM"}))),
            id="nested-comments-method-version-spacing-trailing-semicolon",
        ),
        pytest.param(
            'mx.example.org; auth=pass (cram-md5) smtp.auth="sender@example.net";;'
            " iprev=pass policy.iprev=192.0.2.200",
            AuthResults(
                "mx.example.org",
                results(
                    ("auth", "pass", {"smtp.auth": "sender@example.net"}),
                    ("iprev", "pass", {"policy.iprev": "192.0.2.200"}),
                ),
            ),
            id="quoted-pvalue-empty-resinfo",
        ),
        pytest.param(
            'mx.example.org; dkim=pass header.b=Ab+/cd== header.i="a\\"b"@example.net',
            AuthResults(
                "mx.example.org",
                results(("dkim", "pass", {"header.b": "Ab+/cd==", "header.i": 'a"b@example.net'})),
            ),
            id="padding-and-quoted-local-part",
        ),
    ],
)
def test_parse(value: str, expected: AuthResults) -> None:
    assert parse_authentication_results(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   \r\n ",
        ";",
        "; dkim=pass header.d=example.com",
        "mx.example.org",  # neither a result nor "none"
        "mx.example.org extra; dkim=pass",  # not a version
        '"mx.example.org"; dkim=pass header.d=example.com',  # quoted authserv-id, refused
        "(unterminated mx.example.org; dkim=pass",
        "mx.example.org; dkim=pass (unterminated",
        "mx.example.org; dkim=pass) header.d=example.com",
        'mx.example.org; dkim=pass header.d="example.com',
        'mx.example.org; dkim=pass header.d="example.com\\',
        "mx.example.org; dkim",
        "mx.example.org; dkim=",
        "mx.example.org; =pass",
        "mx.example.org; dkim=pass header.d",
        "mx.example.org; dkim=pass header.d=",
        "mx.example.org; dkim=pass header..d=example.com",
        "mx.example.org; dkim=pa$$ header.d=example.com",
        # One mangled resinfo spoils the field: it may be an echoed value injecting another.
        "mx.example.org; spf=pass smtp.mailfrom=x@evil.example dkim pass; dkim=pass header.d=a.b",
    ],
)
def test_parse_refuses_what_it_cannot_read(value: str) -> None:
    assert parse_authentication_results(value) is None


def test_parse_ignores_values_over_8k() -> None:
    base = f"{OURS}; dkim=pass header.d=monitoring.example "
    at_limit = base + "(" + "x" * (MAX_VALUE_LENGTH - len(base) - 2) + ")"
    assert len(at_limit) == MAX_VALUE_LENGTH
    assert parse_authentication_results(at_limit) is not None
    assert parse_authentication_results(at_limit + " ") is None


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "hostile",
    [
        "(" * MAX_VALUE_LENGTH,
        "(" * (MAX_VALUE_LENGTH // 2) + ")" * (MAX_VALUE_LENGTH // 2),
        "\\(" * (MAX_VALUE_LENGTH // 2),
        '"' + "\\" * (MAX_VALUE_LENGTH - 1),
        '"' + '\\"' * ((MAX_VALUE_LENGTH - 1) // 2),
        ";" * MAX_VALUE_LENGTH,
        "=" * MAX_VALUE_LENGTH,
        "a=" * (MAX_VALUE_LENGTH // 2),
        "x; d=p " + "a.b=c" * ((MAX_VALUE_LENGTH - 7) // 5),
        "x; d=p" + " a.b=c" * ((MAX_VALUE_LENGTH - 6) // 6),
        "x;" + " d=p;" * ((MAX_VALUE_LENGTH - 2) // 5),
        "x" * MAX_VALUE_LENGTH,
        "x; " + "\r\n\t" * ((MAX_VALUE_LENGTH - 3) // 3),
    ],
)
def test_hostile_8k_values_are_read_in_linear_time(hostile: str) -> None:
    assert len(hostile) <= MAX_VALUE_LENGTH
    parse_authentication_results(hostile)
    assert dkim_pass_domains([hostile] * 5, [OURS]) == frozenset()


@pytest.mark.parametrize(
    ("values", "trusted", "expected"),
    [
        pytest.param([OPENDKIM, OPENDMARC], [OURS], {"monitoring.example"}, id="postfix"),
        pytest.param([RSPAMD], [OURS], {"monitoring.example"}, id="rspamd"),
        # Gmail records only header.i; the dkim=pass inside the arc comment is no result.
        pytest.param([GMAIL], ["mx.google.com"], {"monitoring.example"}, id="gmail-header-i"),
        pytest.param([GMAIL], [OURS], set(), id="gmail-not-trusted"),
        pytest.param([MICROSOFT_365], [OURS, ""], set(), id="microsoft-365-never-trusted"),
        pytest.param([FORGED], [OURS], set(), id="forged-other-authserv-id"),
        pytest.param([FORGED, OPENDKIM], [OURS], {"monitoring.example"}, id="forged-beside-ours"),
        pytest.param(
            [f"(added by {OURS}) mx.attacker.example; dkim=pass header.d=bank.example"],
            [OURS],
            set(),
            id="forged-our-id-in-comment",
        ),
        pytest.param(
            [f"{OURS}/5B1A22C0B5D; dkim=pass header.d=bank.example"],
            [OURS],
            set(),
            id="forged-our-id-with-suffix",
        ),
        pytest.param(
            ["m\u212a.example; dkim=pass header.d=bank.example"],
            ["mk.example"],
            set(),
            id="forged-kelvin-sign-is-not-k",
        ),
        pytest.param(
            [f"{OURS}; dkim=fail (bad signature) header.d=bank.example", FORGED],
            [OURS],
            set(),
            id="ours-fail-forged-pass",
        ),
        pytest.param(
            [
                f"{OURS}; dkim=pass header.d=Monitoring.EXAMPLE.; dkim=fail header.d=old.example;"
                " dkim=neutral header.d=n.example; spf=pass smtp.mailfrom=spf.example"
            ],
            [" Mail.CaseMail.Example "],
            {"monitoring.example"},
            id="several-signatures-case-and-root-dot",
        ),
        pytest.param(
            [f"{OURS.upper()} 1; dkim/1=pass header.i=alerts@eu.monitoring.example"],
            [OURS],
            {"eu.monitoring.example"},
            id="header-i-address-and-version",
        ),
        pytest.param(
            [f"{OURS}; dkim=pass header.s=mail; dkim=pass header.i=no-at-sign"],
            [OURS],
            set(),
            id="pass-without-domain",
        ),
        pytest.param(
            [f"{OURS}; none", "garbage (", "", OPENDMARC],
            [OURS],
            set(),
            id="nothing-to-take",
        ),
        pytest.param([OPENDKIM], [], set(), id="nothing-trusted"),
    ],
)
def test_dkim_pass_domains(values: list[str], trusted: list[str], expected: set[str]) -> None:
    assert dkim_pass_domains(values, trusted) == frozenset(expected)


def test_dkim_pass_domains_takes_any_iterable_once() -> None:
    assert dkim_pass_domains(iter([OPENDKIM]), frozenset({OURS})) == {"monitoring.example"}


def test_dkim_pass_domains_refuses_a_bare_string_of_ids() -> None:
    with pytest.raises(TypeError):
        dkim_pass_domains([OPENDKIM], OURS)


# Property tests: the parser never raises, and reads back what it is given.

_FRAGMENTS = st.sampled_from(
    [" ", "\r\n\t", ";", "=", "(", ")", '"', "\\", ".", "/", "@", "1", "none", "dkim", "pass",
     "header.d", "reason", "mx.example.org", "example.com", "\u212a", "\x00", "é"]
)  # fmt: skip


def _check(parsed: AuthResults | None) -> None:
    if parsed is None:
        return
    assert parsed.authserv_id == parsed.authserv_id.strip()
    if not parsed.authserv_id:
        # Only the Microsoft 365 form ("spf=pass ...", no authserv-id) reads without one,
        # and it must then carry a result: a bare "none" or garbage is refused.
        assert parsed.results
    for result in parsed.results:
        for keyword in (result.method, result.result, *result.properties):
            assert keyword.isascii()
            assert keyword == keyword.lower()


@given(st.text(max_size=400))
def test_parse_never_raises_on_any_text(value: str) -> None:
    _check(parse_authentication_results(value))


@given(st.lists(_FRAGMENTS, max_size=60).map("".join))
def test_parse_never_raises_on_near_misses(value: str) -> None:
    _check(parse_authentication_results(value))
    dkim_pass_domains([value], ["mx.example.org"])


_KEYWORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_PVALUE = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789.@-+/_", min_size=1, max_size=16)
_CFWS = st.sampled_from([" ", "\r\n\t", " (a comment; with = and (nested) parts) ", "  "])
_RESINFO = st.tuples(_KEYWORD, _KEYWORD, st.lists(st.tuples(_KEYWORD, _KEYWORD, _PVALUE)))


@given(
    authserv_id=_PVALUE.filter(lambda text: not text.isdigit()),
    resinfos=st.lists(_RESINFO, min_size=1, max_size=5),
    cfws=_CFWS,
)
def test_parse_reads_back_what_is_written(
    authserv_id: str,
    resinfos: list[tuple[str, str, list[tuple[str, str, str]]]],
    cfws: str,
) -> None:
    parts = []
    expected = []
    for method, result, props in resinfos:
        text = f"{method}{cfws}={cfws}{result}"
        properties: dict[str, str] = {}
        for ptype, name, pvalue in props:
            text += f"{cfws}{ptype}.{name}={pvalue}"
            properties.setdefault(f"{ptype}.{name}", pvalue)
        parts.append(text)
        expected.append(MethodResult(method, result, properties))
    value = f"{cfws}{authserv_id}{cfws};{cfws}" + f"{cfws};{cfws}".join(parts)
    assert parse_authentication_results(value) == AuthResults(authserv_id.lower(), tuple(expected))


@given(st.lists(st.text(max_size=200), max_size=5), st.lists(st.text(max_size=30), max_size=3))
def test_dkim_pass_domains_never_raises(values: list[str], trusted: list[str]) -> None:
    for domain in dkim_pass_domains(values, trusted):
        assert domain == domain.strip()
        assert domain
