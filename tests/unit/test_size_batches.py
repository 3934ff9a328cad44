"""IMAP fetch batches are bounded in count and in bytes, and keep UID order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from casemail.mailboxes.imap_sync import size_batches


def test_count_bounds_a_batch() -> None:
    assert size_batches([1, 2, 3, 4, 5], {}, 2, 100) == [[1, 2], [3, 4], [5]]


def test_bytes_bound_a_batch_and_a_large_message_travels_alone() -> None:
    sizes = {1: 40, 2: 40, 3: 500, 4: 10, 5: 10}
    assert size_batches([1, 2, 3, 4, 5], sizes, 10, 100) == [[1, 2], [3], [4, 5]]


@given(
    st.lists(st.integers(min_value=0, max_value=300), max_size=60),
    st.integers(min_value=1, max_value=10),
    st.integers(min_value=1, max_value=500),
)
def test_every_uid_once_in_order_within_bounds(
    sizes_in_order: list[int], max_count: int, max_bytes: int
) -> None:
    uids = list(range(1, len(sizes_in_order) + 1))
    sizes = dict(zip(uids, sizes_in_order, strict=True))
    batches = size_batches(uids, sizes, max_count, max_bytes)
    assert [uid for batch in batches for uid in batch] == uids
    for batch in batches:
        assert 1 <= len(batch) <= max_count
        assert len(batch) == 1 or sum(sizes[u] for u in batch) <= max_bytes
