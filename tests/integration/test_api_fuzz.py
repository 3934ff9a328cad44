"""schemathesis against the OpenAPI document: no generated request, valid or not, may get a
server error (5xx) from any operation.

Left out: the operations that reach out to other machines (connection tests, autodetection,
OAuth2 flows, account and webhook hosts, which are looked up in DNS): generated host names
would send lookups and connections off this machine. Their handling of bad input is
tested in their own files, against local servers.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.apisupport import Api

NETWORK = r"test-(incoming|outgoing)|/sync$|/autodetect|/oauth|/webhooks|/take-over"


@pytest.fixture
def api_schema(api: Api) -> Any:
    api.channel()  # something to find, so generated ids sometimes hit a real row
    loaded = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api.app)
    return (
        loaded.include(path_regex="^/api/v1/")
        .exclude(path_regex=NETWORK)
        .exclude(method=["POST", "PATCH"], path_regex=r"^/api/v1/accounts(/\d+|/\{account_id\})?$")
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: Any, api: Api) -> None:
    case.call_and_validate(headers=api.auth, checks=[not_a_server_error])
