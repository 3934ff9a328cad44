"""POP3 retention: the warning for settings that leave no copy of the mail on the server."""

from __future__ import annotations

import pytest

from casemail.mailboxes.retention import chunks, removal_warning


@pytest.mark.parametrize("days", [None, 1, 30])
def test_a_copy_on_the_server_needs_no_warning(days: int | None) -> None:
    assert removal_warning(True, days) is None


def test_removing_at_once_warns_that_no_copy_stays() -> None:
    warning = removal_warning(False, None)
    assert warning is not None
    assert "no copy stays" in warning
    assert "applies only" not in warning


def test_days_without_a_copy_on_the_server_are_said_to_do_nothing() -> None:
    warning = removal_warning(False, 30)
    assert warning is not None
    assert "delete_after_days (30) applies only with leave_on_server" in warning


def test_chunks() -> None:
    assert chunks([]) == []
    assert [len(c) for c in chunks([str(n) for n in range(1201)])] == [500, 500, 201]
