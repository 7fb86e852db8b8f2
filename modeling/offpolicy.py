"""Off-policy estimates: what a proposed strategy would earn, judged on randomized data held.

A strategy is a policy: an arm (no coupon or a coupon) per eligible customer. The randomized
rows a merchant holds (the historical experiment's treatment log, and the holdout and exploration
rows of applied strategies once their outcomes are in) say what happened to customers who got an
arm with a known probability (the logged propensity). For every row whose customer is eligible,
``metrics.policy_value`` weighs what happened by whether the row's arm is the one the strategy
picks: inverse-propensity weighting (IPW: model-free, unbiased, noisy) and doubly robust (DR: the
model's predicted outcome per arm as the direct-method part, corrected by the IPW residual:
unbiased whatever the model when the propensities are right, and tighter when the model is
good). Its ``*_lift`` estimates are paired against giving no one a coupon, which is what the
strategy's expected numbers are too; the per-customer lift times the eligible customers gives
the totals, with 95 % intervals (normal approximation over the rows).

Outcomes per row, the same definitions as ``allocation.arm_values``:

- conversions: 1 when the customer ordered;
- revenue: the logged (net) revenue, after the discount;
- profit: ``gross x margin - coupon cost`` with gross = net + discount: the discount is recovered
  from the net revenue and the coupon's terms (``discount_from_net``). Where the outcome says
  whether the code was redeemed (outcomes of applied strategies) that decides; where it does not
  (imported treatment logs), the coupon counts as redeemed whenever an order of that net value
  could have met its terms. For a spend-threshold discount, a net value in [min spend - value,
  min spend) fits both (an order just below the threshold, or one just above it less the
  discount): it counts as redeemed, so the profit estimate of such coupons errs on the low side.

Numpy only; no Django.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from modeling.allocation import arm_values
from modeling.economics import CouponTerms
from modeling.metrics import Estimate, policy_value

__all__ = [
    "OUTCOMES",
    "discount_from_net",
    "logged_outcomes",
    "outcome_models",
    "strategy_offpolicy",
]

OUTCOMES = ("profit", "conversions", "revenue")
_PERCENT_KINDS = ("percent_off", "member_price")


def discount_from_net(
    terms: CouponTerms, net: np.ndarray, redeemed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(discount, redeemed) of orders whose net value (after the discount) is ``net``.

    Redeemed, the discount follows from the terms: percent kinds net x v / (100 - v); every
    other kind its value (amount off, a threshold's discount, the shipping fee; an amount that
    would exceed a tiny order counts whole). ``redeemed`` (bool per row) says which were; None:
    redeemed wherever the order, with that discount added back, meets the terms (see the module
    doc). The fixed cost per redemption is not part of the discount."""
    net = np.maximum(np.asarray(net, dtype=np.float64), 0.0)
    v, s = terms.value, terms.min_spend
    if terms.kind in _PERCENT_KINDS:
        keep = 1.0 - v / 100.0
        if_redeemed = net * (v / 100.0) / keep if keep > 0 else np.zeros_like(net)
    else:
        if_redeemed = np.full_like(net, v)
    gross_if = net + if_redeemed
    if redeemed is None:
        redeemed = gross_if < s if terms.kind == "free_shipping" else gross_if >= s
    redeemed = np.asarray(redeemed, dtype=bool)
    return np.where(redeemed, if_redeemed, 0.0), redeemed


def logged_outcomes(
    arm: np.ndarray,
    converted: np.ndarray,
    revenue: np.ndarray,
    coupons: Sequence[CouponTerms],
    *,
    margin_rate: float,
    redeemed: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per logged row, its conversions, revenue and profit (module doc).

    ``arm`` indexes [no coupon, *coupons]; any other value is an arm outside them (its outcome
    is never weighed: no policy picks it). ``redeemed`` (int8 per row: 1 yes, 0 no, -1 not
    known) is optional."""
    arm = np.asarray(arm, dtype=np.int64)
    converted = np.asarray(converted).astype(bool)
    net = np.where(converted, np.nan_to_num(np.asarray(revenue, dtype=np.float64)), 0.0)
    known = None if redeemed is None else np.asarray(redeemed, dtype=np.int64)
    discount = np.zeros(len(arm))
    fixed = np.zeros(len(arm))
    for a, terms in enumerate(coupons, start=1):
        rows = np.flatnonzero((arm == a) & converted)
        if rows.size == 0:
            continue
        told = None
        if known is not None:
            told = known[rows]
            guessed, _ = discount_from_net(terms, net[rows])
            exact, _ = discount_from_net(terms, net[rows], told == 1)
            discount[rows] = np.where(told >= 0, exact, guessed)
            redeemed_rows = np.where(told >= 0, told == 1, guessed > 0)
        else:
            discount[rows], redeemed_rows = discount_from_net(terms, net[rows])
        fixed[rows] = np.where(redeemed_rows, terms.fixed_cost, 0.0)
    return {
        "conversions": converted.astype(np.float64),
        "revenue": net,
        "profit": (net + discount) * margin_rate - discount - fixed,
    }


def outcome_models(
    p_convert: np.ndarray,
    order_value: np.ndarray | None,
    coupons: Sequence[CouponTerms],
    *,
    margin_rate: float,
    average_order_value: float | None = None,
) -> dict[str, np.ndarray]:
    """The model's expected outcome per customer and arm, [n, 1 + coupons], on the definitions
    of ``allocation.arm_values`` (which gives them relative to no coupon; these are absolute)."""
    p = np.asarray(p_convert, dtype=np.float64)
    values = arm_values(
        p,
        order_value,
        coupons,
        margin_rate=margin_rate,
        average_order_value=average_order_value,
    )
    net0 = (
        np.full(len(p), float(average_order_value or 0.0))
        if order_value is None
        else np.maximum(np.asarray(order_value, dtype=np.float64)[:, 0], 0.0)
    )
    base_revenue = p[:, 0] * net0
    return {
        "conversions": p,
        "revenue": values.revenue + base_revenue[:, None],
        "profit": values.profit + (base_revenue * margin_rate)[:, None],
    }


def _estimate(estimate: Estimate | None, scale: float) -> dict[str, float] | None:
    if estimate is None:
        return None
    values = {k: float(v) * scale for k, v in asdict(estimate).items()}
    return {k: (v if np.isfinite(v) else None) for k, v in values.items()}


def strategy_offpolicy(
    *,
    policy: np.ndarray,
    arm: np.ndarray,
    propensity: np.ndarray,
    outcomes: Mapping[str, np.ndarray],
    models: Mapping[str, np.ndarray] | None,
    population: int,
    n_arms: int,
) -> dict[str, Any]:
    """IPW and DR estimates of the strategy's incremental outcomes against no coupon.

    Per logged row: ``policy`` (the arm the strategy gives the row's customer, 0..n_arms-1),
    ``arm`` (the arm the row got: 0..n_arms-1, or any other value for an arm outside the
    strategy), its ``propensity`` and ``outcomes`` (name -> values); ``models`` (name -> the
    expected outcome per arm, [rows, n_arms]) makes the DR estimates. Totals are the per-row
    lift times ``population`` (the eligible customers). JSON-ready."""
    policy = np.asarray(policy, dtype=np.int64)
    arm = np.asarray(arm, dtype=np.int64)
    outside = (arm < 0) | (arm >= n_arms)
    # Rows of arms outside the strategy stay in (they are part of the random sample of
    # customers) on an extra column no policy picks; their outcome never gets weighed.
    arm = np.where(outside, n_arms, arm)
    result: dict[str, Any] = {
        "rows": len(arm),
        "rows_following": int((arm == policy).sum()),
        "population": int(population),
        "estimates": {},
    }
    if len(arm) < 2:
        return result
    for name, y in outcomes.items():
        mu = None
        if models is not None and name in models:
            mu = np.column_stack([np.asarray(models[name], dtype=np.float64), np.zeros(len(arm))])
        value = policy_value(policy, arm, y, propensity, mu)
        result["estimates"][name] = {
            "ipw": _estimate(value.ipw_lift, population),
            "dr": _estimate(value.dr_lift, population),
            "ipw_per_customer": _estimate(value.ipw_lift, 1.0),
            "dr_per_customer": _estimate(value.dr_lift, 1.0),
        }
    return result
