"""Realized uplift of an applied strategy: who was given what against the randomized holdout,
with 95 % confidence intervals (numpy only, no Django).

What is compared, and why each comparison is unbiased
-----------------------------------------------------
An applied strategy splits its eligible customers at random into a **holdout** (nothing;
stratified by lifecycle segment, the same share in every segment) and the rest; of the rest a
random **exploration** share gets an arm drawn uniformly among no coupon and the coupons (its
propensity logged), and the model decides for the others (**treatment**: a coupon or none).

- **The strategy as a whole** (and per lifecycle segment, per uplift decile): everyone who was
  not held out (model-targeted, exploration, and those the model gave nothing) against the
  holdout. The holdout is a random sample of the same eligible customers (within every
  lifecycle segment), so the difference of the two groups' means estimates, without bias, what
  applying the strategy did per customer compared with giving nobody anything. Comparing only
  the customers the model *targeted* with the holdout would not: the model picks customers
  whose behaviour differs (it picks them for that), and the holdout has no record of whom the
  model would have picked.
- **Each coupon**: exploration customers who drew the coupon against the customers randomized
  to no coupon (the holdout and the exploration customers who drew no coupon). Both are random
  samples of the eligible customers (exploration draws uniformly among the customers not held
  out, who in turn are a random complement of the holdout), so the difference estimates the
  coupon's average effect over the eligible customers: what the model's
  ``uplift_per_coupon`` predicts. Inverse-propensity weighting reduces to these plain means:
  within exploration every arm has the same propensity 1 / (k + 1), and the holdout customers
  are all "no coupon" with the same propensity. Model-chosen customers are left out of the
  per-coupon comparison, for the selection reason above.

Numbers per customer and group
------------------------------
A customer **converted** when at least one order counts for them; **revenue** is the net
revenue of their orders (what the customer paid); **coupon cost** is the cost of the
strategy's coupons they redeemed (``redeemed_order_economics``); **profit** is
``margin_rate x gross order value - coupon cost``, the gross order value being the net revenue
plus the discount. That is the same profit the optimizer maximizes (``allocation.arm_values``:
``p x (gross x margin - cost)``) and the simulator's ground truth measures, so predicted and
realized profit compare like for like. (``margin_rate x net revenue - cost`` would count the
discount twice: once as revenue not received, once as cost.)

Intervals (95 %, z = 1.959964)
------------------------------
- Difference of two conversion rates: **Newcombe's hybrid score interval** (Newcombe 1998,
  method 10), built from the two groups' Wilson score intervals. At the low conversion rates of
  coupon campaigns it keeps its coverage where the Wald interval does not, and it never leaves
  [-1, 1].
- Difference of two means (revenue, profit per customer): the **normal approximation with
  unequal variances** (Welch's standard error with the z quantile). With at least
  ``MIN_GROUP_CUSTOMERS`` customers on each side the t and z quantiles differ by under 1 %.
- Totals (incremental conversions, revenue, profit) are the per-customer difference times the
  number of customers on the treated side, and so is their interval (that number is fixed by
  the design).

A difference is **significant** only when its interval excludes zero. A comparison with fewer
than ``MIN_GROUP_CUSTOMERS`` customers on either side shows no numbers at all ("too few
customers"): its interval would be too wide to act on, and its point estimate misleading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modeling.economics import CouponTerms, realized_coupon_cost

__all__ = [
    "EXPLORATION",
    "HOLDOUT",
    "MIN_GROUP_CUSTOMERS",
    "TREATMENT",
    "Z_95",
    "Comparison",
    "CustomerOutcomes",
    "Difference",
    "GroupStats",
    "compare_groups",
    "customer_outcomes",
    "group_stats",
    "mean_difference",
    "newcombe_difference",
    "realized_breakdown",
    "redeemed_order_economics",
    "stats_by_label",
    "wilson_interval",
]

# The two-sided 95 % quantile of the standard normal distribution.
Z_95 = 1.959963984540054
# Fewest customers on each side of a comparison before its numbers are shown.
MIN_GROUP_CUSTOMERS = 100
# Assignment kinds, coded as in a strategy's decisions file (campaigns/strategies.py).
TREATMENT, HOLDOUT, EXPLORATION = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------
def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a proportion (successes of n); (nan, nan) when n is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


@dataclass(frozen=True)
class Difference:
    """A difference (treated minus control) with its interval, and whether it is significant."""

    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return bool(self.low > 0.0 or self.high < 0.0)

    def scaled(self, factor: float) -> Difference:
        return Difference(self.difference * factor, self.low * factor, self.high * factor)

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "difference": float(self.difference),
            "low": float(self.low),
            "high": float(self.high),
            "significant": self.significant,
        }


def newcombe_difference(
    successes_1: float, n_1: float, successes_2: float, n_2: float, z: float = Z_95
) -> Difference:
    """p1 - p2 with Newcombe's hybrid score interval (method 10 of Newcombe 1998)."""
    p1, p2 = successes_1 / n_1, successes_2 / n_2
    low_1, high_1 = wilson_interval(successes_1, n_1, z)
    low_2, high_2 = wilson_interval(successes_2, n_2, z)
    d = p1 - p2
    return Difference(
        difference=float(d),
        low=float(d - np.sqrt((p1 - low_1) ** 2 + (high_2 - p2) ** 2)),
        high=float(d + np.sqrt((high_1 - p1) ** 2 + (p2 - low_2) ** 2)),
    )


def mean_difference(
    n_1: float,
    sum_1: float,
    sum_squares_1: float,
    n_2: float,
    sum_2: float,
    sum_squares_2: float,
    z: float = Z_95,
) -> Difference:
    """mean1 - mean2 from sufficient statistics (count, sum, sum of squares), with the normal
    interval on Welch's unequal-variance standard error (sample variances, ddof = 1)."""
    mean_1, mean_2 = sum_1 / n_1, sum_2 / n_2
    variance_1 = max(sum_squares_1 - n_1 * mean_1 * mean_1, 0.0) / max(n_1 - 1.0, 1.0)
    variance_2 = max(sum_squares_2 - n_2 * mean_2 * mean_2, 0.0) / max(n_2 - 1.0, 1.0)
    half = z * np.sqrt(variance_1 / n_1 + variance_2 / n_2)
    d = mean_1 - mean_2
    return Difference(float(d), float(d - half), float(d + half))


# ---------------------------------------------------------------------------------------------
# Orders -> customers -> groups
# ---------------------------------------------------------------------------------------------
def redeemed_order_economics(
    terms: CouponTerms, net_revenue: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(gross order value, coupon cost) of orders on which a coupon with these terms was
    redeemed, from their net revenue (what the customer paid).

    A redeemed coupon is taken to have applied its discount wherever the order allows it:
    percent off and member price: gross = net / (1 - value / 100); amount off, threshold off:
    gross = net + value; free shipping: gross = net + the fee (the simulator and the economics
    module count the absorbed fee as discount too). Where the discount could not have applied
    (the gross would stay below the minimum spend, or reach the free-shipping level), the order
    had no discount: gross = net and only the fixed cost remains. An amount-off order of net 0
    could have been anything up to the coupon's value: it is taken at that value (the cost's
    upper bound). The cost is then ``economics.realized_coupon_cost`` of the gross.
    """
    net = np.maximum(np.asarray(net_revenue, dtype=np.float64), 0.0)
    v, s = terms.value, terms.min_spend
    if terms.kind in ("percent_off", "member_price"):
        keep = 1.0 - v / 100.0
        gross_if_applied = net / keep if keep > 0 else net
        applied = gross_if_applied >= s
    elif terms.kind == "free_shipping":
        gross_if_applied = net + v
        applied = gross_if_applied < s
    else:  # amount_off, threshold_off
        gross_if_applied = net + v
        applied = gross_if_applied >= s
    gross = np.where(applied, gross_if_applied, net)
    cost = np.where(applied, realized_coupon_cost(terms, gross), terms.fixed_cost)
    return gross, cost


@dataclass(frozen=True)
class CustomerOutcomes:
    """Per customer of a strategy (one row per assignment), what their orders came to."""

    kind: np.ndarray  # int8: TREATMENT, HOLDOUT or EXPLORATION
    arm: np.ndarray  # int: index into the strategy's arms, 0 = no coupon
    converted: np.ndarray  # bool: at least one order counted
    revenue: np.ndarray  # float64: net revenue
    profit: np.ndarray  # float64: margin x gross order value - coupon cost
    cost: np.ndarray  # float64: cost of the strategy's coupons redeemed
    redemptions: np.ndarray  # int64: orders that redeemed the strategy's coupon

    @property
    def n(self) -> int:
        return int(self.kind.size)


def customer_outcomes(
    *,
    kind: np.ndarray,
    arm: np.ndarray,
    order_customer: np.ndarray,
    order_net: np.ndarray,
    order_gross: np.ndarray,
    order_cost: np.ndarray,
    order_redeemed: np.ndarray,
    margin_rate: float,
) -> CustomerOutcomes:
    """Fold orders (each given as the row of its customer, ``order_customer``) into customers."""
    n = int(np.asarray(kind).size)
    order_customer = np.asarray(order_customer, dtype=np.int64)
    orders = np.bincount(order_customer, minlength=n)
    revenue = np.bincount(order_customer, weights=order_net, minlength=n)
    gross = np.bincount(order_customer, weights=order_gross, minlength=n)
    cost = np.bincount(order_customer, weights=order_cost, minlength=n)
    redemptions = np.bincount(order_customer, weights=order_redeemed, minlength=n)
    return CustomerOutcomes(
        kind=np.asarray(kind, dtype=np.int8),
        arm=np.asarray(arm, dtype=np.int64),
        converted=orders > 0,
        revenue=revenue.astype(np.float64),
        profit=(margin_rate * gross - cost).astype(np.float64),
        cost=cost.astype(np.float64),
        redemptions=np.rint(redemptions).astype(np.int64),
    )


@dataclass(frozen=True)
class GroupStats:
    """Sufficient statistics of one group of customers."""

    customers: int
    conversions: int
    revenue: float
    revenue_squares: float
    profit: float
    profit_squares: float
    cost: float
    redemptions: int

    def rate(self, total: float) -> float | None:
        return total / self.customers if self.customers else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "customers": self.customers,
            "conversions": self.conversions,
            "conversion_rate": self.rate(self.conversions),
            "revenue_per_customer": self.rate(self.revenue),
            "profit_per_customer": self.rate(self.profit),
            "revenue": self.revenue,
            "coupon_cost": self.cost,
            "redemptions": self.redemptions,
        }


def stats_by_label(
    outcomes: CustomerOutcomes, labels: np.ndarray, n_labels: int, mask: np.ndarray
) -> list[GroupStats]:
    """``GroupStats`` of the masked customers per label 0 .. n_labels - 1 (labels < 0 are left
    out), in a few vectorized passes."""
    labels = np.asarray(labels, dtype=np.int64)
    keep = np.asarray(mask, dtype=bool) & (labels >= 0) & (labels < n_labels)
    group = labels[keep]

    def total(values: np.ndarray | None = None) -> np.ndarray:
        weights = None if values is None else np.asarray(values, dtype=np.float64)[keep]
        return np.bincount(group, weights=weights, minlength=n_labels)

    customers = total()
    conversions = total(outcomes.converted)
    revenue, profit = outcomes.revenue, outcomes.profit
    sums = {
        "revenue": total(revenue),
        "revenue_squares": total(revenue * revenue),
        "profit": total(profit),
        "profit_squares": total(profit * profit),
        "cost": total(outcomes.cost),
        "redemptions": total(outcomes.redemptions),
    }
    return [
        GroupStats(
            customers=int(customers[g]),
            conversions=int(np.rint(conversions[g])),
            revenue=float(sums["revenue"][g]),
            revenue_squares=float(sums["revenue_squares"][g]),
            profit=float(sums["profit"][g]),
            profit_squares=float(sums["profit_squares"][g]),
            cost=float(sums["cost"][g]),
            redemptions=int(np.rint(sums["redemptions"][g])),
        )
        for g in range(n_labels)
    ]


def group_stats(outcomes: CustomerOutcomes, mask: np.ndarray) -> GroupStats:
    """``GroupStats`` of the masked customers."""
    return stats_by_label(outcomes, np.zeros(outcomes.n, dtype=np.int64), 1, mask)[0]


@dataclass(frozen=True)
class Comparison:
    """Treated side against control side: differences per customer with intervals, and the
    totals they imply for the treated side. ``enough`` is False (and every number None) when
    either side has fewer than the minimum number of customers."""

    treated: GroupStats
    control: GroupStats
    enough: bool
    conversion_rate: Difference | None = None
    revenue_per_customer: Difference | None = None
    profit_per_customer: Difference | None = None
    incremental_conversions: Difference | None = None
    incremental_revenue: Difference | None = None
    incremental_profit: Difference | None = None

    @property
    def coupon_cost(self) -> float:
        """The coupon cost incurred on the treated side (the control side had no coupons of
        the strategy's, or their cost is not incremental)."""
        return self.treated.cost - self.control.cost

    @property
    def roi(self) -> float | None:
        """Incremental profit per unit of coupon cost (as the strategy's expected ROI)."""
        if not self.enough or self.incremental_profit is None or self.coupon_cost <= 0:
            return None
        return self.incremental_profit.difference / self.coupon_cost

    @property
    def cost_per_incremental_conversion(self) -> float | None:
        if not self.enough or self.incremental_conversions is None or self.coupon_cost <= 0:
            return None
        conversions = self.incremental_conversions.difference
        return self.coupon_cost / conversions if conversions > 0 else None

    def as_dict(self) -> dict:
        def diff(value: Difference | None) -> dict | None:
            return None if value is None else value.as_dict()

        return {
            "treated": self.treated.as_dict(),
            "control": self.control.as_dict(),
            "enough": self.enough,
            "conversion_rate": diff(self.conversion_rate),
            "revenue_per_customer": diff(self.revenue_per_customer),
            "profit_per_customer": diff(self.profit_per_customer),
            "incremental_conversions": diff(self.incremental_conversions),
            "incremental_revenue": diff(self.incremental_revenue),
            "incremental_profit": diff(self.incremental_profit),
            "coupon_cost": float(self.coupon_cost),
            "roi": self.roi,
            "cost_per_incremental_conversion": self.cost_per_incremental_conversion,
        }


def compare_groups(
    treated: GroupStats,
    control: GroupStats,
    *,
    min_customers: int = MIN_GROUP_CUSTOMERS,
    z: float = Z_95,
) -> Comparison:
    """Treated against control (see the module doc for the intervals and the minimum size)."""
    if treated.customers < max(min_customers, 2) or control.customers < max(min_customers, 2):
        return Comparison(treated=treated, control=control, enough=False)
    conversion = newcombe_difference(
        treated.conversions, treated.customers, control.conversions, control.customers, z
    )
    revenue = mean_difference(
        treated.customers,
        treated.revenue,
        treated.revenue_squares,
        control.customers,
        control.revenue,
        control.revenue_squares,
        z,
    )
    profit = mean_difference(
        treated.customers,
        treated.profit,
        treated.profit_squares,
        control.customers,
        control.profit,
        control.profit_squares,
        z,
    )
    size = float(treated.customers)
    return Comparison(
        treated=treated,
        control=control,
        enough=True,
        conversion_rate=conversion,
        revenue_per_customer=revenue,
        profit_per_customer=profit,
        incremental_conversions=conversion.scaled(size),
        incremental_revenue=revenue.scaled(size),
        incremental_profit=profit.scaled(size),
    )


# ---------------------------------------------------------------------------------------------
# The whole breakdown
# ---------------------------------------------------------------------------------------------
def realized_breakdown(
    outcomes: CustomerOutcomes,
    *,
    arms: list[str],
    segments: Mapping[str, tuple[np.ndarray, list]],
    min_customers: int = MIN_GROUP_CUSTOMERS,
) -> dict:
    """Every comparison of the module doc, as plain data:

    ``{"overall": comparison, "coupons": [{"arm": code, **comparison, "given": group}, ...],
    "segments": {name: [{"label": label, **comparison}, ...]}}``, a comparison being
    ``Comparison.as_dict()`` and ``given`` the ``GroupStats`` of every customer given the coupon
    (model and exploration: the coupon's actual redemptions and cost). ``segments`` maps a
    breakdown's name to (label index per customer, -1 = unknown; the labels)."""
    holdout = outcomes.kind == HOLDOUT
    not_held_out = ~holdout
    explored = outcomes.kind == EXPLORATION
    randomized_none = holdout | (explored & (outcomes.arm == 0))
    overall = compare_groups(
        group_stats(outcomes, not_held_out),
        group_stats(outcomes, holdout),
        min_customers=min_customers,
    )
    control = group_stats(outcomes, randomized_none)
    by_arm = stats_by_label(outcomes, outcomes.arm, len(arms), explored)
    given = stats_by_label(outcomes, outcomes.arm, len(arms), not_held_out)
    coupons = []
    for index, arm in enumerate(arms):
        if index == 0:
            continue
        comparison = compare_groups(by_arm[index], control, min_customers=min_customers)
        coupons.append({"arm": arm, **comparison.as_dict(), "given": given[index].as_dict()})
    breakdowns: dict[str, list[dict]] = {}
    for name, (labels, names) in segments.items():
        treated_side = stats_by_label(outcomes, labels, len(names), not_held_out)
        control_side = stats_by_label(outcomes, labels, len(names), holdout)
        breakdowns[name] = [
            {
                "label": label,
                **compare_groups(
                    treated_side[g], control_side[g], min_customers=min_customers
                ).as_dict(),
            }
            for g, label in enumerate(names)
        ]
    return {"overall": overall.as_dict(), "coupons": coupons, "segments": breakdowns}
