"""Human-readable customer segments: RFM-style lifecycle stages and uplift deciles (numpy only).

Lifecycle stage at ``as_of`` from three per-customer facts: when the customer was first seen,
when they last purchased, and how many purchases they made. The rules apply in this order, the
first that matches wins:

1. **new**: first seen less than ``new_days`` before ``as_of`` (whether or not they bought:
   a welcome offer is about the relationship's age, not about buying);
2. **prospect**: never purchased (``n_purchases == 0`` and no last purchase);
3. **active**: last purchase less than ``active_days`` before ``as_of``;
4. **lapsing**: last purchase less than ``lapsing_days`` before ``as_of``;
5. **lost**: everyone else who has purchased, including buyers whose purchase count is known
   but whose last purchase time is not (their recency cannot be vouched for).

Times are unix seconds; a negative ``last_purchase`` means never (or unknown), a negative
``first_seen`` means never seen (then the customer is not new). Times after ``as_of`` count as
"within" every window.

``uplift_deciles`` cuts a score (e.g. predicted incremental profit of the best coupon) into ten
equal-size groups, 10 = highest, ties broken by position (stable), for the segment tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from modeling.sequences import EventArrays

__all__ = [
    "LIFECYCLE_SEGMENTS",
    "PURCHASE_EVENT",
    "lifecycle_from_events",
    "lifecycle_segments",
    "uplift_deciles",
]

LIFECYCLE_SEGMENTS = ("new", "active", "lapsing", "lost", "prospect")
NEW, ACTIVE, LAPSING, LOST, PROSPECT = range(len(LIFECYCLE_SEGMENTS))
PURCHASE_EVENT = "purchase"
_DAY = 86_400


def lifecycle_segments(
    *,
    first_seen: np.ndarray,
    last_purchase: np.ndarray,
    n_purchases: np.ndarray,
    as_of: int,
    new_days: int = 30,
    active_days: int = 30,
    lapsing_days: int = 90,
) -> np.ndarray:
    """Lifecycle stage per customer as int8 codes into ``LIFECYCLE_SEGMENTS`` (rules and their
    precedence in the module docstring)."""
    if not 0 < active_days <= lapsing_days or new_days < 0:
        raise ValueError("need 0 < active_days <= lapsing_days and new_days >= 0")
    first_seen = np.asarray(first_seen, dtype=np.int64)
    last_purchase = np.asarray(last_purchase, dtype=np.int64)
    n_purchases = np.asarray(n_purchases)
    if not first_seen.shape == last_purchase.shape == n_purchases.shape or first_seen.ndim != 1:
        raise ValueError("first_seen, last_purchase and n_purchases must be 1-D of one length")
    as_of = int(as_of)
    known_purchase = last_purchase >= 0
    bought = known_purchase | (n_purchases > 0)
    since_purchase = as_of - last_purchase
    out = np.full(first_seen.shape, LOST, dtype=np.int8)
    # Applied from the weakest rule to the strongest, so that the strongest wins.
    out[known_purchase & (since_purchase < lapsing_days * _DAY)] = LAPSING
    out[known_purchase & (since_purchase < active_days * _DAY)] = ACTIVE
    out[~bought] = PROSPECT
    out[(first_seen >= 0) & (as_of - first_seen < new_days * _DAY)] = NEW
    return out


def lifecycle_from_events(events: EventArrays, as_of: int | None = None) -> np.ndarray:
    """``lifecycle_segments`` from an ``EventArrays``: first seen = the first event of any type,
    last purchase and the count from the purchase events, all before ``as_of`` (by default the
    events' own ``as_of``). A customer without events is a prospect."""
    as_of = events.as_of if as_of is None else int(as_of)
    n = events.n_customers
    before = events.timestamp < as_of
    customer = events.customer_index[before]
    timestamp = events.timestamp[before]
    event_type = events.event_type[before]
    if event_type.dtype.kind in "iu":
        names = tuple(events.event_type_names or ())
        code = names.index(PURCHASE_EVENT) if PURCHASE_EVENT in names else -1
        purchase = event_type == code
    else:
        purchase = event_type == PURCHASE_EVENT

    never = np.iinfo(np.int64).max
    first_seen = np.full(n, never, dtype=np.int64)
    np.minimum.at(first_seen, customer, timestamp)
    first_seen[first_seen == never] = -1
    last_purchase = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_purchase, customer[purchase], timestamp[purchase])
    n_purchases = np.bincount(customer[purchase], minlength=n)
    return lifecycle_segments(
        first_seen=first_seen, last_purchase=last_purchase, n_purchases=n_purchases, as_of=as_of
    )


def uplift_deciles(score: np.ndarray) -> np.ndarray:
    """Deciles of ``score`` as int8 1..10 (10 = highest), equal-size groups (sizes differ by at
    most one), ties broken by position: of two equal scores the later one ranks higher. NaN
    scores rank lowest."""
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 1:
        raise ValueError("score must be 1-D")
    n = score.size
    order = np.argsort(np.where(np.isnan(score), -np.inf, score), kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return (rank * 10 // max(n, 1) + 1).astype(np.int8)
