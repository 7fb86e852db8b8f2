"""Coupon economics: what a coupon costs the merchant, by kind, for a given expected order value.

A coupon's cost is not a constant. It follows from its kind and the order it is redeemed on, and
orders vary: given a conversion, the order value (gross, before the discount) is modelled as
lognormal with the predicted mean and a fixed spread ``ORDER_SIGMA`` (the simulator draws its
orders the same way). For X ~ lognormal with mean m and sigma s (mu = log m - s^2 / 2):

- P(X >= t) = 1 - Phi((log t - mu) / s);
- E[X; X < t] = m * Phi((log t - mu - s^2) / s)  (the partial mean below t).

The expected cost per kind, given a conversion (``CouponTerms``; ``value`` and ``min_spend``
mean what the Django ``CouponType`` documents):

- percent off and member price: ``value`` % of the order, E[cost] = value / 100 * m (with a
  minimum spend s > 0 only orders of at least s get it: value / 100 * (m - E[X; X < s]));
- amount off: min(value, order) on orders of at least ``min_spend``;
- threshold off: ``value`` when the order reaches ``min_spend``: value * P(X >= min_spend);
- free shipping: the shipping fee ``value`` the merchant absorbs on orders below the
  free-shipping level ``min_spend`` (never more than the order itself); at or above the level
  shipping is free anyway, so the coupon costs nothing there;
- plus ``fixed_cost`` per redemption (printing, partner fees ...).

The models predict the logged revenue, which is net of the discount; ``gross_order_value``
turns it back into the gross order value the cost rules need by solving gross = net +
discount(gross) in a few steps: a fixed-point step, then secant steps kept inside a bracket
(the discount is smooth in the order value and never exceeds the coupon's value; percent off
has the closed form net / (1 - value / 100)).

Phi comes from Numerical Recipes' erfc fit (fractional error below 1.2e-7): numpy only, no
scipy in the scoring path. Everything is vectorized over customers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "COUPON_KINDS",
    "ORDER_SIGMA",
    "CouponTerms",
    "coupon_terms_from_specs",
    "erfc",
    "expected_coupon_cost",
    "gross_order_value",
    "lognormal_mu",
    "norm_cdf",
    "p_at_least",
    "partial_mean_below",
    "realized_coupon_cost",
]

COUPON_KINDS = ("percent_off", "amount_off", "threshold_off", "free_shipping", "member_price")
_PERCENT_KINDS = ("percent_off", "member_price")
# Spread of the realized order value around its expectation (lognormal sigma).
ORDER_SIGMA = 0.45


@dataclass(frozen=True)
class CouponTerms:
    """A coupon's cost rules, free of any storage: what the optimizer and the simulator price.

    ``value``: percent (10.0 = 10 %) for percent_off / member_price, a currency amount otherwise;
    for free_shipping the shipping fee the merchant absorbs. ``min_spend``: threshold_off: the
    spend that unlocks it; amount_off (and percent kinds): an optional minimum order;
    free_shipping: the free-shipping level (orders at or above it ship free anyway).
    ``fixed_cost`` is added per redemption.
    """

    code: str
    kind: str
    value: float
    min_spend: float = 0.0
    fixed_cost: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in COUPON_KINDS:
            raise ValueError(f"unknown coupon kind {self.kind!r}; expected one of {COUPON_KINDS}")
        for name in ("value", "min_spend", "fixed_cost"):
            number = float(getattr(self, name))
            if not np.isfinite(number) or number < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {number!r}")
            object.__setattr__(self, name, number)
        if self.kind in _PERCENT_KINDS and self.value > 100:
            raise ValueError(f"a {self.kind} coupon takes a percent <= 100, got {self.value}")


class _CouponLike(Protocol):
    code: str
    kind: str
    value: float
    min_spend: float


def coupon_terms_from_specs(
    coupons: Iterable[_CouponLike], *, shipping_fee: float, free_shipping_level: float
) -> tuple[CouponTerms, ...]:
    """``CouponTerms`` of the simulator's coupons (``simulation.CouponSpec``), whose free
    shipping takes its fee and level from the merchant rather than from the coupon."""
    terms = []
    for coupon in coupons:
        value, min_spend = float(coupon.value), float(coupon.min_spend)
        if coupon.kind == "free_shipping":
            value, min_spend = float(shipping_fee), float(free_shipping_level)
        terms.append(CouponTerms(coupon.code, coupon.kind, value, min_spend))
    return tuple(terms)


# ---------------------------------------------------------------------------------------------
# The normal CDF and lognormal moments
# ---------------------------------------------------------------------------------------------
_ERFC_COEFFICIENTS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)  # fmt: skip


def erfc(x: np.ndarray) -> np.ndarray:
    """The complementary error function (Numerical Recipes' Chebyshev fit ``erfcc``):
    fractional error below 1.2e-7 everywhere."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.zeros_like(t)
    for c in reversed(_ERFC_COEFFICIENTS):
        poly = c + t * poly
    r = t * np.exp(-z * z + poly)
    return np.where(x >= 0, r, 2.0 - r)


def norm_cdf(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF."""
    return 0.5 * erfc(-z / np.sqrt(2.0))


def lognormal_mu(mean: np.ndarray, sigma: float = ORDER_SIGMA) -> np.ndarray:
    """mu of the lognormal with the given mean and sigma."""
    return np.log(np.maximum(mean, 1e-6)) - 0.5 * sigma**2


def p_at_least(mean: np.ndarray, level: float, sigma: float = ORDER_SIGMA) -> np.ndarray:
    """P(X >= level) for X lognormal with the given mean."""
    if level <= 0:
        return np.ones_like(mean)
    return 1.0 - norm_cdf((np.log(level) - lognormal_mu(mean, sigma)) / sigma)


def partial_mean_below(mean: np.ndarray, level: float, sigma: float = ORDER_SIGMA) -> np.ndarray:
    """E[X; X < level] for X lognormal with the given mean."""
    if level <= 0:
        return np.zeros_like(mean)
    return mean * norm_cdf((np.log(level) - lognormal_mu(mean, sigma) - sigma**2) / sigma)


# ---------------------------------------------------------------------------------------------
# Cost of a coupon
# ---------------------------------------------------------------------------------------------
def _expected_discount(terms: CouponTerms, mean: np.ndarray, sigma: float) -> np.ndarray:
    """What the customer does not pay (or, for free shipping, the fee the merchant absorbs),
    expected given a conversion; no fixed cost."""
    v, s = terms.value, terms.min_spend
    if terms.kind in _PERCENT_KINDS:
        if s > 0:
            return v / 100.0 * (mean - partial_mean_below(mean, s, sigma))
        return v / 100.0 * mean
    if terms.kind == "threshold_off":
        return v * p_at_least(mean, s, sigma)
    if terms.kind == "free_shipping":
        # The fee on orders below the free-shipping level (never more than the order itself).
        a = min(v, s)
        fee_part = v * (p_at_least(mean, a, sigma) - p_at_least(mean, s, sigma))
        return partial_mean_below(mean, a, sigma) + fee_part
    # amount_off: min(value, order) on orders of at least min_spend.
    if s >= v:
        return v * p_at_least(mean, s, sigma)
    below_v = partial_mean_below(mean, v, sigma) - partial_mean_below(mean, s, sigma)
    return below_v + v * p_at_least(mean, v, sigma)


def expected_coupon_cost(
    terms: CouponTerms, order_value: np.ndarray, *, order_sigma: float = ORDER_SIGMA
) -> np.ndarray:
    """Expected cost to the merchant of one redemption, given a conversion, for orders ~
    lognormal with mean ``order_value`` (gross, before the discount), plus ``fixed_cost``."""
    mean = np.asarray(order_value)
    if mean.dtype.kind != "f":
        mean = mean.astype(np.float64)
    cost = _expected_discount(terms, mean, order_sigma)
    if terms.fixed_cost:
        cost = cost + terms.fixed_cost
    return cost


def realized_coupon_cost(terms: CouponTerms, order: np.ndarray) -> np.ndarray:
    """The cost of one redemption on orders of the given (gross) value, plus ``fixed_cost``:
    what ``expected_coupon_cost`` takes the expectation of."""
    order = np.asarray(order, dtype=np.float64)
    v, s = terms.value, terms.min_spend
    reaches = order >= s
    if terms.kind in _PERCENT_KINDS:
        cost = np.where(reaches, v / 100.0 * order, 0.0)
    elif terms.kind == "threshold_off":
        cost = np.where(reaches, v, 0.0)
    elif terms.kind == "free_shipping":
        cost = np.where(reaches, 0.0, np.minimum(v, order))
    else:
        cost = np.where(reaches, np.minimum(v, order), 0.0)
    return cost + terms.fixed_cost


def gross_order_value(
    terms: CouponTerms,
    net_value: np.ndarray,
    *,
    iterations: int = 4,
    order_sigma: float = ORDER_SIGMA,
) -> np.ndarray:
    """The expected gross order value (before the discount) whose expected net value (after
    the discount) is ``net_value``: the root of gross - discount(gross) = net.

    ``iterations`` evaluations of the discount: a fixed-point step from gross = net, then secant
    steps, kept within [net, net + the largest possible discount]. Plain fixed-point steps
    converge at the rate d discount / d gross, which is close to 1 where the coupon takes
    most of a small order (20 off a 25 basket); the secant steps do not slow down there. The
    fixed cost is not part of it: the customer does not pay it. Percent kinds without a
    minimum spend are solved exactly: gross = net / (1 - value / 100). Negative net values
    count as 0."""
    net = np.maximum(np.asarray(net_value, dtype=np.float64), 0.0)
    if terms.kind in _PERCENT_KINDS:
        keep = 1.0 - terms.value / 100.0
        upper = net / keep if keep > 0 else np.where(net > 0, np.inf, 0.0)
        if terms.min_spend <= 0:
            return upper
    else:
        upper = net + terms.value  # the discount never exceeds the coupon's value
    # r(gross) = gross - discount(gross) - net rises with gross: r(net) <= 0 <= r(upper).
    low, high = net, upper
    previous, previous_residual = net, -_expected_discount(terms, net, order_sigma)
    gross = np.minimum(net - previous_residual, upper)  # the fixed-point step
    for _ in range(iterations - 1):
        residual = gross - _expected_discount(terms, gross, order_sigma) - net
        low = np.where(residual <= 0, gross, low)
        high = np.where(residual >= 0, gross, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            secant = gross - residual * (gross - previous) / (residual - previous_residual)
        inside = (secant > low) & (secant < high)  # False for nan
        previous, previous_residual = gross, residual
        gross = np.where(inside, secant, 0.5 * (low + high))
    return gross
