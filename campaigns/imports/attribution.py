"""Which campaign assignment an imported order counts for: the attribution rule (no Django but
its translations: the problems' reasons are in the active language).

An assignment's **window** opens when its coupon could first be used, the later of when the
customer was assigned (the strategy was applied) and the campaign's start, and stays open for
the campaign's ``attribution_window_days``: an order is in it when
``opens <= ordered_at < opens + window``. The window is the same for every assignment of a
strategy, whatever its kind, so the groups it compares are measured alike.

Each order row of an outcomes import:

1. **With a coupon code**: the code must be one that an applied strategy of this shop assigned,
   to this very customer, and the order must lie in that assignment's window; the order is
   then attributed to that assignment. Otherwise the row is an error, reported like every other
   row-level problem (the import is all or nothing):

   - *unknown coupon code*: no applied strategy of this shop assigned it (mistyped, another
     shop's, or rolled back; which of them is not said, so that no shop learns another's codes);
   - *assigned to another customer*: a code is personal, so the row's customer or code is wrong;
   - *placed before the coupon could be used*: before the assignment, or before the campaign
     started (the code was not valid yet, so the row's time or code is wrong);
   - *placed after the attribution window closed*: the order is too late to count for the
     campaign; leave the code out if the shop accepted it anyway and it should count as a plain
     order.

2. **Without a code**: attributed to the customer's assignment whose window holds the order,
   whatever its kind (holdout, exploration, the model's choice, with a coupon or none): the
   comparison with the holdout needs every group's orders counted the same way. Where the
   windows of several campaigns hold it, the window that opened last wins (then the newest
   assignment). Where none does, the order is kept unattributed: not an error.

The campaign's end does not close the window: an order placed soon after the end still shows
what the campaign did (a purchase it pulled forward or put off), and the comparison with the
holdout stays fair because the window is the same for both groups.

The realized results (campaigns/results.py) count orders by window, not by this attribution:
for a strategy, every order its customers placed inside their window, whichever campaign the
order is attributed to, so that an overlapping campaign cannot take orders away from one group
of the comparison and not from the other; only the strategy's own redeemed coupons count as its
cost.

Times are integer microseconds since the epoch (UTC), as the import's validation produces them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

MICROSECONDS_PER_DAY = 86_400 * 1_000_000

UNKNOWN_CODE = gettext_lazy(
    "unknown coupon code: no applied strategy of this shop assigned it "
    "(mistyped, another shop's, or rolled back)"
)
OTHER_CUSTOMERS_CODE = gettext_lazy(
    "this code was assigned to another customer; a code is personal: check the customer or the code"
)


@dataclass(frozen=True)
class AttributionIndex:
    """The assignments an import's orders may be attributed to, with their windows.

    Windows are sorted by (customer, opening time, assignment id): a customer's windows are
    one run, the last opened last.
    """

    customers: pa.Array  # distinct external ids of the windows' customers (string)
    window_customer: np.ndarray  # int64: position in ``customers``
    assignment_id: np.ndarray  # int64
    strategy_id: np.ndarray  # int64
    campaign: np.ndarray  # int64: position in ``campaign_names``
    campaign_names: tuple[str, ...]
    window_days: np.ndarray  # int64
    opens: np.ndarray  # int64 microseconds
    closes: np.ndarray  # int64 microseconds
    code_values: pa.Array  # string: the codes of the windows with a coupon
    code_window: np.ndarray  # int64: the window of each of ``code_values``
    timezone: str = "UTC"  # for the times in messages

    @classmethod
    def build(
        cls,
        *,
        customer_ext: Sequence[str],
        assignment_id: Sequence[int],
        strategy_id: Sequence[int],
        campaign_id: Sequence[int],
        campaign_names: Mapping[int, str],
        opens: Sequence[int],
        window_days: Sequence[int],
        codes: Sequence[str | None],
        timezone: str = "UTC",
    ) -> AttributionIndex:
        """An index over these assignments (one entry each; ``opens`` in microseconds)."""
        external = pa.array(list(customer_ext), pa.string())
        customers = pc.unique(external) if len(external) else pa.array([], pa.string())
        position = pc.index_in(external, value_set=customers).to_numpy(zero_copy_only=False)
        position = np.asarray(position, dtype=np.int64).reshape(-1)
        assignment = np.asarray(assignment_id, dtype=np.int64).reshape(-1)
        opening = np.asarray(opens, dtype=np.int64).reshape(-1)
        order = np.lexsort((assignment, opening, position))
        campaign_ids = np.asarray(campaign_id, dtype=np.int64).reshape(-1)[order]
        known = sorted(campaign_names)
        days = np.asarray(window_days, dtype=np.int64).reshape(-1)[order]
        code_array = pa.array(list(codes), pa.string()).take(pa.array(order, pa.int64()))
        has_code = pc.invert(pc.is_null(code_array)).to_numpy(zero_copy_only=False)
        return cls(
            customers=customers,
            window_customer=position[order],
            assignment_id=assignment[order],
            strategy_id=np.asarray(strategy_id, dtype=np.int64).reshape(-1)[order],
            campaign=np.searchsorted(np.asarray(known, dtype=np.int64), campaign_ids),
            campaign_names=tuple(campaign_names[c] for c in known),
            window_days=days,
            opens=opening[order],
            closes=opening[order] + days * MICROSECONDS_PER_DAY,
            code_values=code_array.filter(pa.array(has_code)),
            code_window=np.flatnonzero(has_code).astype(np.int64),
            timezone=timezone,
        )

    @classmethod
    def empty(cls, timezone: str = "UTC") -> AttributionIndex:
        return cls.build(
            customer_ext=[],
            assignment_id=[],
            strategy_id=[],
            campaign_id=[],
            campaign_names={},
            opens=[],
            window_days=[],
            codes=[],
            timezone=timezone,
        )

    def local_time(self, microseconds: int) -> str:
        moment = datetime.fromtimestamp(microseconds / 1e6, tz=UTC)
        return moment.astimezone(ZoneInfo(self.timezone)).isoformat(timespec="minutes")


@dataclass
class AttributionProblem:
    mask: np.ndarray  # bool per row
    column: str
    reason: str


@dataclass
class Attribution:
    assignment_id: pa.Array  # int64 per row, null where unattributed
    problems: list[AttributionProblem] = field(default_factory=list)


def _as_numbers(ordered_at: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds, has a time) per row."""
    values = pc.cast(ordered_at, pa.int64())
    has_time = pc.invert(pc.is_null(values)).to_numpy(zero_copy_only=False)
    numbers = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return numbers, np.asarray(has_time, dtype=bool)


def _customer_positions(index: AttributionIndex, customer_ext) -> np.ndarray:
    positions = pc.fill_null(pc.index_in(customer_ext, value_set=index.customers), -1)
    return np.asarray(positions.to_numpy(zero_copy_only=False), dtype=np.int64)


def _containing(
    index: AttributionIndex, customer: np.ndarray, ts: np.ndarray, has_time: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows whose order lies in the window, that window per row) for each customer's windows,
    the last opened first. Loops once per window a customer has (the number of campaigns), not
    per row."""
    first = np.searchsorted(index.window_customer, customer, side="left")
    end = np.searchsorted(index.window_customer, customer, side="right")
    count = np.where(customer >= 0, end - first, 0)
    if not count.size or not index.opens.size:
        return
    for back in range(1, int(count.max()) + 1):
        exists = has_time & (count >= back)
        window = np.where(exists, end - back, 0)
        inside = exists & (index.opens[window] <= ts) & (ts < index.closes[window])
        yield inside, window


def attribute(
    index: AttributionIndex,
    *,
    customer_ext: pa.Array | pa.ChunkedArray,
    ordered_at: pa.Array | pa.ChunkedArray,
    code: pa.Array | pa.ChunkedArray,
) -> Attribution:
    """Each row's assignment by the module's rule, and the rows that break it."""
    n = len(customer_ext)
    ts, has_time = _as_numbers(ordered_at)
    customer = _customer_positions(index, customer_ext)
    codes = pc.fill_null(code, "")
    has_code = pc.not_equal(codes, "").to_numpy(zero_copy_only=False).astype(bool)
    chosen = np.full(n, -1, dtype=np.int64)
    problems: list[AttributionProblem] = []

    # 1. Rows with a code: the code's assignment, checked.
    code_position = pc.fill_null(pc.index_in(codes, value_set=index.code_values), -1)
    code_position = np.asarray(code_position.to_numpy(zero_copy_only=False), dtype=np.int64)
    found = has_code & (code_position >= 0)
    window = np.zeros(n, dtype=np.int64)
    window[found] = index.code_window[code_position[found]]
    problems.append(AttributionProblem(has_code & ~found, "code", str(UNKNOWN_CODE)))
    theirs = found.copy()
    theirs[found] = index.window_customer[window[found]] == customer[found]
    problems.append(AttributionProblem(found & ~theirs, "code", str(OTHER_CUSTOMERS_CODE)))
    timed = theirs & has_time
    early = np.zeros(n, dtype=bool)
    late = np.zeros(n, dtype=bool)
    early[timed] = ts[timed] < index.opens[window[timed]]
    late[timed] = ts[timed] >= index.closes[window[timed]]
    problems += _timing_problems(index, window, early, late)
    valid = theirs & ~early & ~late
    chosen[valid] = window[valid]

    # 2. Rows without a code: the customer's window that holds the order, opened last.
    plain = ~has_code
    for inside, candidate in _containing(index, customer, ts, has_time):
        take = plain & inside & (chosen < 0)
        chosen[take] = candidate[take]

    attributed = chosen >= 0
    ids = np.zeros(n, dtype=np.int64)
    ids[attributed] = index.assignment_id[chosen[attributed]]
    return Attribution(
        assignment_id=pa.array(ids, pa.int64(), mask=~attributed),
        problems=[p for p in problems if p.mask.any()],
    )


def _timing_problems(
    index: AttributionIndex, window: np.ndarray, early: np.ndarray, late: np.ndarray
) -> list[AttributionProblem]:
    """One problem per campaign and window time, saying when the window opens or closes."""
    problems = []
    for rows, times, template in (
        (
            early,
            index.opens,
            _(
                "placed before its coupon could be used: campaign '%(name)s' counts orders from "
                "%(time)s (when the coupon was assigned, or the campaign started if later)"
            ),
        ),
        (
            late,
            index.closes,
            _(
                "placed after the attribution window closed: campaign '%(name)s' counts orders "
                "for %(days)s days, until %(time)s"
            ),
        ),
    ):
        if not rows.any():
            continue
        keys = np.stack([index.campaign[window[rows]], times[window[rows]]], axis=1)
        for campaign, moment in np.unique(keys, axis=0):
            group = rows & (index.campaign[window] == campaign) & (times[window] == moment)
            days = int(index.window_days[window[group]][0])
            reason = template % {
                "name": index.campaign_names[int(campaign)],
                "time": index.local_time(int(moment)),
                "days": days,
            }
            problems.append(AttributionProblem(group, "ordered_at", reason))
    return problems


def touched_strategies(
    index: AttributionIndex,
    *,
    customer_ext: pa.Array | pa.ChunkedArray,
    ordered_at: pa.Array | pa.ChunkedArray,
) -> np.ndarray:
    """The strategies with a window holding any of these orders (whose results they change)."""
    ts, has_time = _as_numbers(ordered_at)
    customer = _customer_positions(index, customer_ext)
    found = [
        index.strategy_id[window[inside]]
        for inside, window in _containing(index, customer, ts, has_time)
    ]
    if not found:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(found))
