"""Lifecycle segments and uplift deciles on hand-made customers and events. No database."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeling.segments import (
    LIFECYCLE_SEGMENTS,
    lifecycle_from_events,
    lifecycle_segments,
    uplift_deciles,
)
from modeling.sequences import EventArrays

DAY = 86_400
AS_OF = 20_000 * DAY
NEVER = -1


def names(codes: np.ndarray) -> list[str]:
    return [LIFECYCLE_SEGMENTS[c] for c in codes]


# --- lifecycle rules ---------------------------------------------------------------------------
def test_each_rule_and_its_precedence():
    # customer: (first seen days ago, last purchase days ago or None, purchases, expected)
    table = [
        (10, None, 0, "new"),  # new beats prospect
        (10, 2, 1, "new"),  # new beats active
        (29.9, None, 0, "new"),
        (30, None, 0, "prospect"),  # exactly 30 days is no longer "within 30 days"
        (400, None, 0, "prospect"),
        (400, 5, 3, "active"),
        (400, 29.9, 3, "active"),
        (400, 30, 3, "lapsing"),
        (400, 89.9, 1, "lapsing"),
        (400, 90, 1, "lost"),
        (400, 300, 8, "lost"),
        (400, None, 2, "lost"),  # bought, but when is unknown: not vouched for as active
        (None, None, 0, "prospect"),  # never seen (imported customer without events)
        (400, -3, 1, "active"),  # a purchase stamped after as_of counts as recent
    ]
    first_seen = np.array([NEVER if f is None else AS_OF - int(f * DAY) for f, *_ in table])
    last = np.array([NEVER if lp is None else AS_OF - int(lp * DAY) for _, lp, *_ in table])
    n_purchases = np.array([row[2] for row in table])
    codes = lifecycle_segments(
        first_seen=first_seen, last_purchase=last, n_purchases=n_purchases, as_of=AS_OF
    )
    assert codes.dtype == np.int8
    assert names(codes) == [row[3] for row in table]


def test_windows_are_settings():
    first_seen = np.array([AS_OF - 50 * DAY])
    last = np.array([AS_OF - 50 * DAY])
    one = np.array([1])
    kwargs = {"first_seen": first_seen, "last_purchase": last, "n_purchases": one, "as_of": AS_OF}
    assert names(lifecycle_segments(**kwargs)) == ["lapsing"]
    assert names(lifecycle_segments(**kwargs, new_days=60)) == ["new"]
    assert names(lifecycle_segments(**kwargs, active_days=60, lapsing_days=60)) == ["active"]
    assert names(lifecycle_segments(**kwargs, lapsing_days=40)) == ["lost"]
    with pytest.raises(ValueError, match="active_days"):
        lifecycle_segments(**kwargs, active_days=100, lapsing_days=90)


# --- from events -------------------------------------------------------------------------------
def hand_events(event_type_codes: bool = False) -> EventArrays:
    rows = [
        # customer, days before as_of, type
        (0, 200, "view"),
        (0, 20, "purchase"),
        (0, 5, "view"),
        (0, -1, "purchase"),  # after as_of: ignored
        (1, 10, "view"),  # new, no purchase
        (2, 300, "search"),
        (2, 60, "purchase"),
        (2, 59, "refund"),
        (3, 400, "purchase"),
        (3, 100, "purchase"),
        (5, 45, "cart"),  # seen long enough ago, never bought
        # customer 4: no events at all
    ]
    types = ("view", "search", "cart", "purchase", "refund")
    event_type = np.array([r[2] for r in rows], dtype=object)
    if event_type_codes:
        event_type = np.array([types.index(t) for t in event_type], dtype=np.int16)
    return EventArrays(
        customer_index=np.array([r[0] for r in rows]),
        timestamp=np.array([AS_OF - r[1] * DAY for r in rows], dtype=np.int64),
        event_type=event_type,
        category=np.array([""] * len(rows), dtype=object),
        price=np.full(len(rows), np.nan),
        n_customers=6,
        as_of=AS_OF,
        event_type_names=types if event_type_codes else None,
    )


@pytest.mark.parametrize("event_type_codes", [False, True], ids=["strings", "codes"])
def test_lifecycle_from_events(event_type_codes):
    events = hand_events(event_type_codes)
    assert names(lifecycle_from_events(events)) == [
        "active",  # bought 20 days ago (the purchase after as_of is invisible)
        "new",
        "lapsing",  # last purchase 60 days ago
        "lost",  # last purchase 100 days ago
        "prospect",  # no events
        "prospect",  # a cart 45 days ago, never bought
    ]
    # an earlier as_of sees less: customer 0's last visible purchase is then the one 20 days
    # before the original as_of, 5 days before the new one; customer 1 was not seen yet
    earlier = lifecycle_from_events(events, as_of=AS_OF - 15 * DAY)
    assert names(earlier)[:2] == ["active", "prospect"]


def test_lifecycle_from_events_matches_the_rules_on_random_events():
    rng = np.random.default_rng(3)
    n, n_events = 500, 6000
    customer = np.sort(rng.integers(0, n, n_events))
    tenure = rng.uniform(1, 500, n) * DAY  # each customer's events span their own tenure
    timestamp = (AS_OF + 5 * DAY - rng.random(n_events) * tenure[customer]).astype(np.int64)
    order = np.lexsort((timestamp, customer))
    customer, timestamp = customer[order], timestamp[order]
    kind = rng.choice(["view", "purchase"], n_events, p=[0.8, 0.2]).astype(object)
    events = EventArrays(
        customer_index=customer,
        timestamp=timestamp,
        event_type=kind,
        category=np.array([""] * n_events, dtype=object),
        price=np.full(n_events, np.nan),
        n_customers=n,
        as_of=AS_OF,
    )
    # the same facts, one customer at a time
    first_seen = np.full(n, NEVER)
    last = np.full(n, NEVER)
    bought = np.zeros(n, dtype=int)
    for i in range(n):
        mine = (customer == i) & (timestamp < AS_OF)
        if mine.any():
            first_seen[i] = timestamp[mine].min()
        purchases = mine & (kind == "purchase")
        if purchases.any():
            last[i] = timestamp[purchases].max()
            bought[i] = purchases.sum()
    expected = lifecycle_segments(
        first_seen=first_seen, last_purchase=last, n_purchases=bought, as_of=AS_OF
    )
    np.testing.assert_array_equal(lifecycle_from_events(events), expected)
    assert len(set(names(expected))) == len(LIFECYCLE_SEGMENTS)  # every stage occurs


# --- uplift deciles ----------------------------------------------------------------------------
def test_deciles_are_equal_size_and_ordered_by_score():
    score = np.random.default_rng(0).normal(size=1000)
    deciles = uplift_deciles(score)
    assert deciles.dtype == np.int8
    np.testing.assert_array_equal(np.bincount(deciles, minlength=11)[1:], np.full(10, 100))
    assert deciles[np.argmax(score)] == 10 and deciles[np.argmin(score)] == 1
    for d in range(1, 10):
        assert score[deciles == d].max() < score[deciles == d + 1].min()


def test_decile_ties_break_by_position_and_nan_ranks_lowest():
    deciles = uplift_deciles(np.array([1.0] * 10))
    np.testing.assert_array_equal(deciles, np.arange(1, 11))
    deciles = uplift_deciles(np.array([np.nan, 5.0, -np.inf, 2.0, 1.0, 0.0, 3.0, 4.0, 6.0, 7.0]))
    assert deciles[0] == 1 and deciles[2] == 2 and deciles[-1] == 10
    assert uplift_deciles(np.array([])).size == 0


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300))
def test_deciles_sizes_differ_by_at_most_one_and_respect_the_order(values):
    score = np.array(values)
    deciles = uplift_deciles(score)
    sizes = np.bincount(deciles, minlength=11)[1:]
    assert sizes.sum() == score.size
    assert sizes.max() - sizes.min() <= 1 if score.size >= 10 else sizes.max() <= 1
    order = np.argsort(score, kind="stable")
    assert np.all(np.diff(deciles[order]) >= 0)
