"""schemathesis against the OpenAPI document: no generated request, valid or not, may get a
server error (5xx) from any operation.

Left out: the operations that reach out to other machines (connection tests, autodetection,
OAuth2 flows, account and webhook hosts, which are looked up in DNS): generated host names
would send lookups and connections off this machine. Their handling of bad input is
tested in their own files, against local servers.

The operations are walked here rather than with schemathesis's pytest plugin, whose
fixture loader does not run under pytest-xdist.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err

from tests.apisupport import Api

NETWORK = r"test-(incoming|outgoing)|/sync$|/autodetect|/oauth|/webhooks|/take-over"
ACCOUNT_WRITES = r"^/api/v1/accounts(/\{account_id\})?$"
EXAMPLES = 8  # per operation: about 400 requests in all, on each database


def test_no_server_errors(api: Api) -> None:
    api.deliver(api.channel(), b"")  # rows to find: generated ids sometimes hit them
    assert api.get("/api/v1/openapi.json").json()["openapi"].startswith("3.")
    schema = (
        schemathesis.openapi.from_asgi("/api/v1/openapi.json", api.app)
        .include(path_regex="^/api/v1/")
        .exclude(path_regex=NETWORK)
        .exclude(method=["POST", "PATCH"], path_regex=ACCOUNT_WRITES)
    )
    tried = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"the OpenAPI document has an operation: {result.err()}")
        operation = result.ok()
        tried.append(f"{operation.method.upper()} {operation.path}")
        _fuzz(operation, api)
    assert len(tried) >= 40, tried


def _fuzz(operation: Any, api: Api) -> None:
    @given(operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: Any) -> None:
        case.call_and_validate(headers=api.auth, checks=[not_a_server_error])

    no_server_error()
