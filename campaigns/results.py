"""Realized results of applied strategies: what the coupons did, measured against the holdout.

``strategy_results_refresh`` (a service; run after every outcomes import that touches the
strategy, see campaigns/imports/service.py) reads

1. the strategy's assignments (kind, arm, when assigned) and its campaign's attribution window,
2. every order its customers placed inside their window (campaigns/imports/attribution.py says
   why orders are counted by window here, whichever campaign they are attributed to), and
3. each customer's lifecycle segment and uplift decile from the strategy's decisions file,

lets the ML core compare the groups (modeling/realized.py: which comparisons are unbiased, the
intervals, the minimum group size), puts the model's predictions beside them, and stores the
lot in one ``RealizedResult`` row, which the strategy page and the API read.

Layout of ``RealizedResult.data`` (amounts in the merchant's currency; a *comparison* is
``modeling.realized.Comparison.as_dict()``: ``treated`` and ``control`` groups (customers,
conversions, conversion_rate, revenue_per_customer, profit_per_customer, revenue, coupon_cost,
redemptions), ``enough`` (both groups have at least ``min_customers``), the differences
``conversion_rate``, ``revenue_per_customer``, ``profit_per_customer`` and the totals
``incremental_conversions``, ``incremental_revenue``, ``incremental_profit`` (each
``{difference, low, high, significant}`` or null when not enough), ``coupon_cost``, ``roi``
and ``cost_per_incremental_conversion``)::

    {"computed_at": iso, "confidence": 0.95, "min_customers": 100, "margin_rate": m,
     "window": {"days": n, "opens": iso, "closes": iso, "complete": bool},
     "customers": n, "orders": n, "redemptions": n,
     "overall": {**comparison, "predicted": predicted},     # not held out vs holdout
     "coupons": [{"arm": code, **comparison, "given": group, "predicted": predicted}, ...],
                                                            # exploration arm vs randomized none
     "segments": {"lifecycle": [{"key": "active", "label": "active", **comparison,
                                 "predicted": predicted}, ...],
                  "uplift_deciles": [{"key": 1, "label": 1, ...}, ...]}}

``predicted`` holds the model's expectation of the same differences where the strategy stored
one: per customer ``conversion_rate``, ``revenue_per_customer``, ``profit_per_customer`` and,
for the strategy and its segments, the totals ``incremental_conversions``,
``incremental_revenue``, ``incremental_profit`` and ``coupon_cost`` (campaigns/strategies.py
documents where they come from).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.db import transaction
from django.utils import timezone

from modeling.economics import CouponTerms
from modeling.realized import (
    MIN_GROUP_CUSTOMERS,
    customer_outcomes,
    realized_breakdown,
    redeemed_order_economics,
)
from modeling.segments import LIFECYCLE_SEGMENTS

from .choices import StrategyStatus
from .models import CouponType, RealizedResult, Strategy
from .selectors import strategy_assignments, strategy_orders
from .strategies import KIND_CODES

logger = logging.getLogger(__name__)

CONFIDENCE = 0.95
DECILES = list(range(1, 11))


def strategy_results(*, strategy: Strategy) -> RealizedResult | None:
    """The stored realized results of a strategy, if any were computed. No query when the
    strategy was read with ``select_related("realized_result")``."""
    try:
        return strategy.realized_result
    except RealizedResult.DoesNotExist:
        return None


def _microseconds(values) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(list(values), utc=True)).as_unit("us").asi8


def _iso(microseconds: int) -> str:
    return pd.Timestamp(int(microseconds), unit="us", tz="UTC").isoformat()


def _coupon_terms(strategy: Strategy) -> dict[int, tuple[int, CouponTerms]]:
    """Coupon type id -> (arm index, cost terms) for the strategy's coupons."""
    codes = list(strategy.arms or [])[1:]
    terms = {}
    for coupon in CouponType.objects.filter(merchant_id=strategy.merchant_id, code__in=codes):
        terms[coupon.pk] = (
            codes.index(coupon.code) + 1,
            CouponTerms(
                code=coupon.code,
                kind=coupon.kind,
                value=float(coupon.value),
                min_spend=float(coupon.min_spend),
                fixed_cost=float(coupon.fixed_cost),
            ),
        )
    return terms


def _segment_labels(strategy: Strategy, customer_ids: np.ndarray) -> dict[str, tuple]:
    """Per assignment row, its lifecycle segment and uplift decile (as label positions, -1
    where unknown) from the strategy's decisions file; {} when the file is gone."""
    path = strategy.choices_path
    try:
        if not path or not Path(path).is_file():
            raise FileNotFoundError(path)
        table = pq.read_table(path, columns=["customer_id", "lifecycle", "decile"])
    except (OSError, ValueError, KeyError):  # no file (or not a decisions file): no breakdown
        logger.warning("Strategy %s: no decisions file for the segment breakdown", strategy.pk)
        return {}
    ids = table.column("customer_id").to_numpy()
    if ids.size == 0:
        return {}
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    at = np.minimum(np.searchsorted(ids, customer_ids), ids.size - 1)
    found = ids[at] == customer_ids
    lifecycle = table.column("lifecycle").to_numpy().astype(np.int64)[order]
    decile = table.column("decile").to_numpy().astype(np.int64)[order]
    return {
        "lifecycle": (np.where(found, lifecycle[at], -1), list(LIFECYCLE_SEGMENTS)),
        "uplift_deciles": (np.where(found, decile[at] - 1, -1), DECILES),
    }


def _per_customer(total: float | None, customers: int) -> float | None:
    return None if total is None or customers <= 0 else float(total) / customers


def _predicted_totals(row: dict[str, Any], customers: int) -> dict[str, float | None]:
    """Predicted differences per customer on the treated side, and totals, from a strategy's
    expected numbers (a segment row of ``Strategy.segments`` or the strategy's own)."""
    return {
        "conversion_rate": _per_customer(row.get("expected_conversions"), customers),
        "revenue_per_customer": _per_customer(row.get("expected_revenue"), customers),
        "profit_per_customer": _per_customer(row.get("expected_profit"), customers),
        "incremental_conversions": row.get("expected_conversions"),
        "incremental_revenue": row.get("expected_revenue"),
        "incremental_profit": row.get("expected_profit"),
        "coupon_cost": row.get("expected_cost"),
    }


def _predicted_per_coupon(strategy: Strategy, code: str) -> dict[str, float | None]:
    """The model's mean uplift and incremental profit of one coupon over the eligible
    customers (what the exploration comparison measures): the segment rows' means, weighted
    by their customers."""
    rows = (strategy.segments or {}).get("lifecycle") or []
    result: dict[str, float | None] = {
        "conversion_rate": None,
        "revenue_per_customer": None,
        "profit_per_customer": None,
    }
    for key, name in (("uplift_per_coupon", "conversion_rate"), ("profit_per_coupon", "profit")):
        pairs = [
            (row[key][code], row.get("customers", 0))
            for row in rows
            if (row.get(key) or {}).get(code) is not None
        ]
        weight = sum(customers for _value, customers in pairs)
        if weight:
            mean = sum(value * customers for value, customers in pairs) / weight
            result["profit_per_customer" if name == "profit" else name] = mean
    return result


def _clean(value: Any) -> Any:
    """JSON-safe: no NaN or infinity (PostgreSQL's jsonb refuses them), numpy as Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strategy_results_compute(*, strategy: Strategy, now=None) -> tuple[dict[str, Any], int]:
    """The realized results of an applied strategy (layout in the module doc) and the number
    of orders they count."""
    now = now or timezone.now()
    campaign = strategy.campaign
    assignments = strategy_assignments(strategy=strategy)
    has_rows = assignments.num_rows > 0
    terms = _coupon_terms(strategy)
    assignment_ids = assignments.column("id").to_numpy()
    customer_ids = assignments.column("customer_id").to_numpy()
    kind = _codes(assignments.column("kind"), KIND_CODES).astype(np.int8)
    arm = _codes(
        assignments.column("coupon_type_id"), {c: index for c, (index, _t) in terms.items()}
    )
    window_days = int(campaign.attribution_window_days)
    starts = int(_microseconds([campaign.starts_at])[0])
    opens = np.maximum(assignments.column("assigned_at").to_numpy(), starts)
    closes = opens + window_days * 86_400 * 1_000_000

    orders = None
    if has_rows:  # each order is checked against its own customer's window below
        orders = strategy_orders(
            strategy=strategy, start=_datetime(int(opens.min())), end=_datetime(int(closes.max()))
        )
    if orders is not None and orders.num_rows:
        row = np.searchsorted(customer_ids, orders.column("customer_id").to_numpy())
        ts = orders.column("ordered_at").to_numpy()
        net = orders.column("revenue").to_numpy()
        coded = pc.greater(pc.utf8_length(orders.column("code")), 0).to_numpy()
        attributed = orders.column("assignment_id").fill_null(-1).to_numpy()
        inside = (opens[row] <= ts) & (ts < closes[row])
        row, ts, net, coded, attributed = (
            row[inside],
            ts[inside],
            net[inside],
            coded[inside],
            attributed[inside],
        )
        # The strategy's own coupon, redeemed by the customer it was assigned to.
        redeemed = coded & (attributed == assignment_ids[row]) & (arm[row] > 0)
    else:
        row = np.empty(0, np.int64)
        net = np.empty(0, np.float64)
        redeemed = np.empty(0, bool)
    gross = net.copy()
    cost = np.zeros(net.size)
    for arm_index, coupon_terms in terms.values():
        these = redeemed & (arm[row] == arm_index)
        if these.any():
            gross[these], cost[these] = redeemed_order_economics(coupon_terms, net[these])
    outcomes = customer_outcomes(
        kind=kind,
        arm=arm,
        order_customer=row,
        order_net=net,
        order_gross=gross,
        order_cost=cost,
        order_redeemed=redeemed.astype(np.float64),
        margin_rate=float(strategy.margin_rate),
    )
    segments = _segment_labels(strategy, customer_ids) if has_rows else {}
    breakdown = realized_breakdown(outcomes, arms=list(strategy.arms or []), segments=segments)

    treated_side = max(strategy.eligible_customers - strategy.holdout_customers, 0)
    overall = {
        **breakdown["overall"],
        "predicted": {
            **_predicted_totals(
                {
                    "expected_conversions": strategy.expected_conversions,
                    "expected_revenue": strategy.expected_revenue,
                    "expected_profit": strategy.expected_profit,
                    "expected_cost": strategy.expected_cost,
                },
                treated_side,
            ),
            "roi": strategy.expected_roi,
        },
    }
    coupons = [
        {**entry, "predicted": _predicted_per_coupon(strategy, entry["arm"])}
        for entry in breakdown["coupons"]
    ]
    stored = strategy.segments or {}
    segment_rows: dict[str, list[dict]] = {}
    for name, entries in breakdown["segments"].items():
        key_name = "segment" if name == "lifecycle" else "decile"
        expected = {row.get(key_name): row for row in stored.get(name) or []}
        segment_rows[name] = []
        for entry in entries:
            key = entry.pop("label")
            plan = expected.get(key) or {}
            side = int(plan.get("customers", 0)) - int(plan.get("holdout", 0))
            segment_rows[name].append(
                {
                    "key": key,
                    "label": key,
                    **entry,
                    "predicted": _predicted_totals(plan, side) if plan else None,
                }
            )
    last_close = int(closes.max()) if closes.size else starts
    data = {
        "computed_at": now.isoformat(),
        "confidence": CONFIDENCE,
        "min_customers": MIN_GROUP_CUSTOMERS,
        "margin_rate": float(strategy.margin_rate),
        "window": {
            "days": window_days,
            "opens": _iso(int(opens.min())) if opens.size else _iso(starts),
            "closes": _iso(last_close),
            "complete": _microseconds([now])[0] >= last_close,
        },
        "customers": int(outcomes.n),
        "orders": int(row.size),
        "redemptions": int(redeemed.sum()),
        "overall": overall,
        "coupons": coupons,
        "segments": segment_rows,
    }
    return _clean(data), int(row.size)


def _codes(values: pa.ChunkedArray, codes: dict) -> np.ndarray:
    """Each value's code (0 where it has none), mapped once per distinct value."""
    distinct = pc.unique(values.drop_null()).to_pylist()
    positions = pc.index_in(values, value_set=pa.array(distinct, values.type)).fill_null(-1)
    table = np.asarray([codes.get(value, 0) for value in distinct] + [0], dtype=np.int64)
    return table[positions.to_numpy()]


def _datetime(microseconds: int):
    return pd.Timestamp(microseconds, unit="us", tz="UTC").to_pydatetime()


@transaction.atomic
def strategy_results_refresh(*, strategy: Strategy, now=None) -> RealizedResult | None:
    """Compute and store an applied strategy's realized results (None for a strategy that is
    not applied: it has no assignments to measure)."""
    strategy = (
        Strategy.objects.select_for_update(of=("self",))
        .select_related("campaign")
        .get(pk=strategy.pk)
    )
    if strategy.status != StrategyStatus.APPLIED:
        return None
    data, orders = strategy_results_compute(strategy=strategy, now=now)
    result, _created = RealizedResult.objects.update_or_create(
        strategy=strategy,
        defaults={"data": data, "orders": orders, "refreshed_at": now or timezone.now()},
    )
    return result
