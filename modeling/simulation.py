"""Ground-truth simulator: merchants whose true per-customer, per-arm response is known.

A simulated merchant has customers with latent traits (persona, price sensitivity, purchase
propensity, category affinity, lifecycle stage), about 90 days of behaviour events built from
sessions (search -> view -> cart -> purchase funnels, favourites, refunds, reviews), and a
historical randomized coupon experiment assigned at the end of that window.

The true response at assignment time (``GroundTruth``) is computed from the *generated event
sequence* (``ground_truth_from_events``) plus latent noise, so a model can only recover it from
what the data shows. Order and timing matter, not only totals:

- a cart not followed by a purchase in the last few days raises the response to free shipping
  (cart below the free-shipping level) and to a spend-threshold discount (cart just below the
  threshold);
- a lapsing buyer (a purchase before, none for 30+ days, recent views) responds to amount off;
- price-sensitive customers (many searches, cheap items viewed) respond to percent off;
- members respond to member price; new customers a little to welcome-style offers;
- frequent full-price buyers convert anyway: a coupon only costs margin;
- coupon-averse customers ("sleeping dogs") convert less when sent any coupon;
- the time since the last activity decays everything.

Everything is numpy and vectorized over customers. Customers are generated in fixed blocks of
``BLOCK_SIZE``, each seeded from ``(seed, block index)``, so a merchant is reproducible from its
seed and memory is bounded by the block during generation. ``write_csvs`` streams rows in chunks;
its output does not depend on the chunk size.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modeling.economics import (
    ORDER_SIGMA,
    coupon_terms_from_specs,
    expected_coupon_cost,
    realized_coupon_cost,
)
from modeling.economics import p_at_least as _p_at_least

__all__ = [
    "ARMS_CONTROL",
    "BLOCK_SIZE",
    "CATEGORIES",
    "DEFAULT_COUPONS",
    "EVENT_TYPES",
    "OUTCOMES_HEADER",
    "PERSONAS",
    "CouponSpec",
    "GroundTruth",
    "NextPeriod",
    "OraclePolicy",
    "SimulatedMerchant",
    "draw_outcomes",
    "ground_truth_from_events",
    "load_ground_truth",
    "oracle_incremental_profit",
    "play_next_period",
    "simulate_merchant",
    "write_csvs",
    "write_outcomes_csv",
]

ARMS_CONTROL = "control"
EVENT_TYPES = ("view", "search", "cart", "purchase", "refund", "review", "favorite")
COUPON_KINDS = ("percent_off", "amount_off", "threshold_off", "free_shipping", "member_price")

_VIEW, _SEARCH, _CART, _PURCHASE, _REFUND, _REVIEW, _FAVORITE = range(len(EVENT_TYPES))

_DAY = 86_400
# The experiment's assignment time (= end of the behaviour window): 10:00 in Shanghai.
DEFAULT_END = np.datetime64("2025-06-02T02:00:00", "s")
# Customers are generated in blocks of this many, each from its own seed (seed, block index).
# Changing it changes every merchant, so it is fixed; 10k customers is about 250k events per
# block: big enough for numpy to run at full speed, small enough to keep temporaries small.
BLOCK_SIZE = 10_000


@dataclass(frozen=True)
class CouponSpec:
    code: str
    name: str
    kind: str  # one of COUPON_KINDS
    value: float  # percent (10.0 = 10 %) for percent_off/member_price, else currency
    min_spend: float  # order value needed for threshold_off (and optionally amount_off)
    validity_days: int
    per_customer_limit: int

    def __post_init__(self) -> None:
        if self.kind not in COUPON_KINDS:
            raise ValueError(f"unknown coupon kind {self.kind!r}; expected one of {COUPON_KINDS}")
        if self.code == ARMS_CONTROL:
            raise ValueError(f"{ARMS_CONTROL!r} is reserved for the no-coupon arm")


DEFAULT_COUPONS: tuple[CouponSpec, ...] = (
    CouponSpec("PCT10", "10% off", "percent_off", 10.0, 0.0, 7, 1),
    CouponSpec("AMT20", "20 off", "amount_off", 20.0, 0.0, 7, 1),
    CouponSpec("SPEND199_30", "30 off orders of 199+", "threshold_off", 30.0, 199.0, 7, 1),
    CouponSpec("FREESHIP", "Free shipping", "free_shipping", 0.0, 0.0, 7, 1),
    CouponSpec("MEMBER", "Member price: 8% off", "member_price", 8.0, 0.0, 7, 1),
)

# ---------------------------------------------------------------------------------------------
# Catalogue and population parameters
# ---------------------------------------------------------------------------------------------
CATEGORIES = ("fashion", "beauty", "home", "digital", "food", "baby", "sports", "books")
_CATEGORY_PRICE_LEVEL = np.array([149.0, 119.0, 189.0, 599.0, 39.0, 89.0, 169.0, 45.0])
_CATEGORY_POPULARITY = np.array([0.22, 0.16, 0.14, 0.10, 0.16, 0.07, 0.08, 0.07])
_ITEMS_PER_CATEGORY = 500
_ITEM_PRICE_SPREAD = 0.55  # lognormal sigma of item prices around the category level

PERSONAS = (
    "sure_thing",
    "price_sensitive",
    "cart_abandoner",
    "lapsing",
    "coupon_averse",
    "lost_cause",
    "casual",
    "new",
)
LIFECYCLE_STAGES = ("active", "new", "lapsing", "lost")
_ACTIVE, _NEW, _LAPSING, _LOST = range(len(LIFECYCLE_STAGES))
MEMBER_LEVELS = ("none", "silver", "gold")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("female", "male", "unknown")

_PERSONA_SHARE = np.array([0.08, 0.17, 0.12, 0.12, 0.07, 0.19, 0.20, 0.05])
# Per persona, in PERSONAS order.
_SESSION_RATE = np.array([0.15, 0.10, 0.12, 0.10, 0.10, 0.05, 0.06, 0.25])  # sessions/day
_CART_P = np.array([0.45, 0.30, 0.55, 0.30, 0.40, 0.15, 0.20, 0.30])  # per session
_BUY_GIVEN_CART = np.array([0.80, 0.45, 0.22, 0.55, 0.70, 0.30, 0.40, 0.35])
_FAVORITE_P = np.array([0.08, 0.10, 0.12, 0.10, 0.20, 0.05, 0.08, 0.12])
_REVIEW_P = np.array([0.20, 0.06, 0.08, 0.08, 0.40, 0.05, 0.08, 0.10])  # per purchase
_REFUND_P = np.array([0.03, 0.08, 0.06, 0.06, 0.04, 0.08, 0.05, 0.05])  # per purchase
_PRICE_SENS_BETA = np.array(
    [[1.5, 8], [7, 2], [3, 3], [3, 3], [1.2, 8], [2, 3], [2.5, 3.5], [3, 3]], dtype=float
)
_STAGE_P = np.array(  # active, new, lapsing, lost
    [
        [1.00, 0.00, 0.00, 0.00],
        [0.85, 0.05, 0.10, 0.00],
        [0.90, 0.10, 0.00, 0.00],
        [0.00, 0.00, 1.00, 0.00],
        [0.90, 0.00, 0.10, 0.00],
        [0.00, 0.00, 0.00, 1.00],
        [0.75, 0.10, 0.15, 0.00],
        [0.00, 1.00, 0.00, 0.00],
    ]
)
_MEMBER_P = np.array(  # none, silver, gold
    [
        [0.35, 0.35, 0.30],
        [0.75, 0.20, 0.05],
        [0.70, 0.22, 0.08],
        [0.65, 0.25, 0.10],
        [0.40, 0.30, 0.30],
        [0.85, 0.12, 0.03],
        [0.70, 0.22, 0.08],
        [0.90, 0.08, 0.02],
    ]
)
_CITY_TIER_P = np.array([0.18, 0.32, 0.30, 0.20])
_CITY_TIER_BASKET = np.array([1.15, 1.05, 0.95, 0.90])
_AGE_P = np.array([0.18, 0.34, 0.26, 0.14, 0.08])
_GENDER_P = np.array([0.55, 0.40, 0.05])
_QUANTITY_CUT = (0.75, 0.93)  # quantity 1 below the first cut, 2 below the second, else 3

# ---------------------------------------------------------------------------------------------
# Response model (logit scale). Baseline: the 7-day purchase chance without a coupon.
# ---------------------------------------------------------------------------------------------
# The daily purchase hazard without a coupon follows the customer's recent purchase rate
# (purchases weighted by exp(-age / 30 days), per 30 days), regressed a little, times latent
# propensity, damped by days since the last activity; some abandoned carts come back on their own.
_BASE_FLOOR_PER_DAY = 0.002
_BASE_RATE_SCALE = 0.55
_BASE_PROPENSITY_POWER = 0.5
_BASE_NOISE = 0.30
_BASE_ABANDONED_CART_PER_DAY = 0.012
_BASE_GOLD = 1.2
_ABANDON_DECAY_DAYS = 2.0  # an abandoned cart's pull halves in about a day and a half
_RECENCY_DECAY_DAYS = 20.0  # coupon effects fade with time since last activity
_LAPSE_DAYS = 30.0
_ARM_EFFECT_NOISE = 0.3  # per (customer, coupon): how much of the effect lands
_ARM_NOISE = 0.04  # per (customer, coupon): a little response with no reason in the data


@dataclass
class GroundTruth:
    """True response of every customer to every arm at assignment time.

    ``p_convert[i, a]``: P(purchase within the outcome window | arm a);
    ``order_value[i, a]``: expected order value given conversion under arm a, before discount;
    ``discount_cost[i, a]``: expected cost of the coupon to the merchant given conversion.
    Column 0 is always ``control``.
    """

    arms: tuple[str, ...]
    p_convert: np.ndarray
    order_value: np.ndarray
    discount_cost: np.ndarray
    latent: dict[str, np.ndarray]
    drivers: dict[str, np.ndarray] = field(default_factory=dict)
    coupons: tuple[CouponSpec, ...] = DEFAULT_COUPONS
    shipping_fee: float = 12.0
    free_shipping_level: float = 99.0
    outcome_window_days: int = 7
    customer_id: np.ndarray | None = None

    @property
    def n_customers(self) -> int:
        return int(self.p_convert.shape[0])

    def arm_index(self, arm: str) -> int:
        return self.arms.index(arm)

    def conversion_uplift(self) -> np.ndarray:
        """P(convert | arm) - P(convert | control), (n_customers, n_arms); column 0 is 0."""
        p = self.p_convert.astype(np.float64)
        return p - p[:, :1]

    def expected_cost(self) -> np.ndarray:
        """Expected coupon spend per customer and arm: P(convert | arm) x cost given conversion."""
        return self.p_convert.astype(np.float64) * self.discount_cost

    def uplift(self, margin_rate: float) -> np.ndarray:
        """True incremental profit per (customer, arm) against control; column 0 is 0.

        ``p_a * (order_value_a * margin - discount_cost_a) - p_c * order_value_c * margin``.
        """
        p = self.p_convert.astype(np.float64)
        ov = self.order_value.astype(np.float64)
        profit = p * (ov * margin_rate - self.discount_cost)
        return profit - p[:, :1] * ov[:, :1] * margin_rate


@dataclass
class SimulatedMerchant:
    seed: int
    start: np.datetime64
    end: np.datetime64  # assignment time of the experiment = end of the behaviour window
    currency: str
    shipping_fee: float
    free_shipping_level: float
    coupons: tuple[CouponSpec, ...]
    customers: dict[str, np.ndarray]
    # Events' string columns (event_type, item_id, category) are object arrays of shared str
    # objects, to keep 20-30M events small; besides them, events carry integer codes for fast
    # use: "event_code" (into EVENT_TYPES), "category_code" (into CATEGORIES, -1 = none),
    # "item_code" (into ``item_ids``, -1 = none).
    events: dict[str, np.ndarray]
    treatments: dict[str, np.ndarray]
    truth: GroundTruth
    item_ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))

    @property
    def n_customers(self) -> int:
        return len(self.customers["customer_id"])

    @property
    def n_events(self) -> int:
        return len(self.events["customer_index"])


@dataclass
class OraclePolicy:
    """The best arm per customer by true incremental profit (index 0 / "control" = no coupon)."""

    choice: np.ndarray  # arm index per customer
    arm: np.ndarray  # arm name per customer
    profit: np.ndarray  # true incremental profit of the choice per customer
    total_profit: float
    total_cost: float  # expected coupon spend of the choice
    n_treated: int


# ---------------------------------------------------------------------------------------------
# Small numerical helpers
# ---------------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` (rows sum to 1), vectorized by inverse CDF."""
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(probs.shape[:-1])[..., None] * cdf[..., -1:]
    return np.minimum((u >= cdf).sum(axis=-1), probs.shape[-1] - 1)


def _last_by_customer(
    customer: np.ndarray, values: np.ndarray, mask: np.ndarray, n: int, fill: float
) -> np.ndarray:
    """Value of the last masked event of each customer (events sorted by customer, then time)."""
    out = np.full(n, fill, dtype=np.float64)
    c = customer[mask]
    if c.size:
        last = np.flatnonzero(np.r_[c[1:] != c[:-1], True])
        out[c[last]] = values[mask][last]
    return out


def _iso_utc(ts: np.ndarray):
    """datetime64 -> pyarrow strings like 2025-06-02T02:00:00Z (UTC, whole seconds).

    Built from a table of dates and one of the 86,400 times of day: about 4x faster than
    ``pyarrow.compute.strftime`` on tens of millions of rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    seconds = ts.astype("datetime64[s]").astype(np.int64)
    if seconds.size == 0:
        return pa.array([], type=pa.string())
    days, time_of_day = np.divmod(seconds, _DAY)
    first = days.min()
    dates = pa.array(
        np.datetime_as_string(np.arange(first, days.max() + 1).astype("datetime64[D]"))
    )
    return pc.binary_join_element_wise(
        pc.take(dates, pa.array(days - first)), pc.take(_times_of_day(), pa.array(time_of_day)), ""
    )


@functools.cache
def _times_of_day():
    import pyarrow as pa

    return pa.array(
        [f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)]
    )


# ---------------------------------------------------------------------------------------------
# Coupon economics: expected order value and discount cost by coupon kind
# ---------------------------------------------------------------------------------------------
def _basket_factor(coupon: CouponSpec, base_order_value: np.ndarray) -> np.ndarray:
    """How a coupon changes the expected basket: coupons change what people buy."""
    if coupon.kind == "percent_off":
        return np.full_like(base_order_value, 1.0 + 0.006 * coupon.value)
    if coupon.kind == "amount_off":
        return np.full_like(base_order_value, 1.02)
    if coupon.kind == "threshold_off":
        # Customers whose usual basket is somewhat below the threshold top it up.
        r = np.log(np.maximum(base_order_value, 1e-6) / max(coupon.min_spend, 1e-6))
        return 1.0 + 0.2 * np.exp(-0.5 * ((r + 0.25) / 0.2) ** 2)
    if coupon.kind == "free_shipping":
        return np.full_like(base_order_value, 0.97)  # no need to pad the basket to the level
    return np.full_like(base_order_value, 1.04)  # member_price


def _expected_discount(
    coupon: CouponSpec, order_value: np.ndarray, shipping_fee: float, free_level: float
) -> np.ndarray:
    """Expected cost to the merchant given a conversion, for orders ~ lognormal(order_value):
    ``economics.expected_coupon_cost`` of the coupon's terms (free shipping: the merchant's fee
    and level)."""
    (terms,) = coupon_terms_from_specs(
        (coupon,), shipping_fee=shipping_fee, free_shipping_level=free_level
    )
    return expected_coupon_cost(terms, order_value)


def _realized_discount(
    coupon: CouponSpec, order: np.ndarray, shipping_fee: float, free_level: float
) -> np.ndarray:
    """The cost of one redemption on these orders: ``economics.realized_coupon_cost``."""
    (terms,) = coupon_terms_from_specs(
        (coupon,), shipping_fee=shipping_fee, free_shipping_level=free_level
    )
    return realized_coupon_cost(terms, order)


# ---------------------------------------------------------------------------------------------
# The response: a function of the visible sequence plus latent noise
# ---------------------------------------------------------------------------------------------
def _strictly_increasing(customer: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Seconds made strictly increasing within each customer (rows sorted by customer, time):
    a tie moves the later event on by a second. Two identical events in one second would be
    a repeated row, which the import rightly rejects."""
    if len(ts) == 0:
        return ts
    position = np.arange(len(ts), dtype=np.int64)
    slack = ts - position  # non-decreasing within a customer <=> ts strictly increasing
    low = slack.min()
    span = np.int64(slack.max() - low + 1)
    lifted = customer.astype(np.int64) * span + (slack - low)
    return np.maximum.accumulate(lifted) - customer.astype(np.int64) * span + low + position


def _sequence_drivers(
    *,
    customer: np.ndarray,
    ts: np.ndarray,
    kind: np.ndarray,
    category: np.ndarray,
    price: np.ndarray,
    quantity: np.ndarray,
    n: int,
    end_s: int,
    window_days: float,
) -> dict[str, np.ndarray]:
    """Per-customer quantities the true response is made of, from events sorted by (customer,
    time). ``ts`` in seconds since the epoch; ``kind`` and ``category`` as codes."""
    age_days = (end_s - ts) / _DAY
    counts = np.bincount(customer, minlength=n)
    last_event = _last_by_customer(customer, ts, np.ones_like(customer, dtype=bool), n, np.nan)
    recency = np.where(np.isnan(last_event), window_days + 30.0, (end_s - last_event) / _DAY)

    is_purchase = kind == _PURCHASE
    is_view = kind == _VIEW
    is_cart = kind == _CART
    n_purchases = np.bincount(customer[is_purchase], minlength=n)
    intensity = np.bincount(
        customer[is_purchase], weights=np.exp(-age_days[is_purchase] / 30.0), minlength=n
    )
    last_purchase = _last_by_customer(customer, ts, is_purchase, n, -np.inf)
    last_cart = _last_by_customer(customer, ts, is_cart, n, -np.inf)
    cart_value_all = np.nan_to_num(price * quantity)
    last_cart_value = _last_by_customer(customer, cart_value_all, is_cart, n, 0.0)
    # A cart that no later purchase followed, weighted by how fresh it is.
    abandoned = (last_cart > last_purchase) & np.isfinite(last_cart)
    cart_age = np.where(abandoned, (end_s - last_cart) / _DAY, np.inf)
    abandon_strength = np.where(abandoned, np.exp(-cart_age / _ABANDON_DECAY_DAYS), 0.0)
    days_since_purchase = np.where(
        np.isfinite(last_purchase), (end_s - last_purchase) / _DAY, np.inf
    )
    views_14d = np.bincount(customer[is_view & (age_days <= 14.0)], minlength=n)
    n_views = np.bincount(customer[is_view], minlength=n)
    n_search = np.bincount(customer[kind == _SEARCH], minlength=n)
    search_share = (n_search + 0.16) / (counts + 2.0)  # shrunk towards the population's share
    view_cat = np.maximum(category[is_view], 0)
    rel_price = np.log(price[is_view] / _CATEGORY_PRICE_LEVEL[view_cat])
    cheap_index = -np.bincount(customer[is_view], weights=rel_price, minlength=n) / (n_views + 3.0)
    ps_observed = _sigmoid(14.0 * (search_share - 0.10) + 3.0 * (cheap_index - 0.05))
    has_bought = np.isfinite(last_purchase)
    lapse = (
        has_bought
        * _sigmoid((days_since_purchase - _LAPSE_DAYS) / 3.0)
        * np.minimum(1.0, views_14d / 2.0)
    )
    cart_count = np.bincount(customer[is_cart], minlength=n)
    log_cart_value_sum = np.bincount(
        customer[is_cart], weights=np.log(np.maximum(cart_value_all[is_cart], 1.0)), minlength=n
    )
    return {
        "recency_days": recency.astype(np.float32),
        "n_events": counts.astype(np.int32),
        "n_purchases": n_purchases.astype(np.int32),
        "purchase_intensity": intensity.astype(np.float32),
        "days_since_purchase": np.minimum(days_since_purchase, 9999.0).astype(np.float32),
        "views_14d": views_14d.astype(np.int32),
        "abandoned_cart": abandon_strength.astype(np.float32),
        "last_cart_value": last_cart_value.astype(np.float32),
        "search_share": search_share.astype(np.float32),
        "cheap_index": cheap_index.astype(np.float32),
        "price_sensitivity_observed": ps_observed.astype(np.float32),
        "lapse": lapse.astype(np.float32),
        "cart_count": cart_count.astype(np.int32),
        "log_cart_value_sum": log_cart_value_sum.astype(np.float32),
    }


def _response(
    *,
    drivers: dict[str, np.ndarray],
    latent: dict[str, np.ndarray],
    member_level: np.ndarray,
    tenure_days: np.ndarray,
    coupons: tuple[CouponSpec, ...],
    shipping_fee: float,
    free_level: float,
    window_days: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    d = {k: v.astype(np.float64) for k, v in drivers.items()}
    latent = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in latent.items()}
    recency = d["recency_days"]
    abandon = d["abandoned_cart"]
    cart_value = d["last_cart_value"]
    ps = 0.5 * d["price_sensitivity_observed"] + 0.5 * latent["price_sensitivity"]
    member = np.select([member_level == "gold", member_level == "silver"], [1.0, 0.6], 0.0)
    newness = np.exp(-np.maximum(tenure_days, 0.0) / 20.0)
    activity_weight = np.exp(-recency / _RECENCY_DECAY_DAYS)
    # Frequent full-price buyers buy anyway; coupons barely move them.
    loyalty = _sigmoid(5.0 * (d["purchase_intensity"] - 1.0)) * (1.0 - ps) ** 0.3

    hazard = (_BASE_FLOOR_PER_DAY + _BASE_RATE_SCALE * d["purchase_intensity"] / 30.0) * latent[
        "purchase_propensity"
    ] ** _BASE_PROPENSITY_POWER * np.exp(_BASE_NOISE * latent["baseline_noise"]) * (
        0.35 + 0.65 * np.exp(-recency / 14.0)
    ) * np.where(member_level == "gold", _BASE_GOLD, 1.0) + _BASE_ABANDONED_CART_PER_DAY * abandon
    base_logit = _logit(1.0 - np.exp(-7.0 * hazard))
    # Expected basket: the customer's own carts, shrunk towards the latent basket size.
    prior_weight = 2.0
    base_ov = np.exp(
        (prior_weight * np.log(latent["basket_value"]) + d["log_cart_value_sum"])
        / (prior_weight + d["cart_count"])
    )

    n, n_arms = len(recency), len(coupons) + 1
    p = np.empty((n, n_arms))
    ov = np.empty((n, n_arms))
    cost = np.zeros((n, n_arms))
    scale = 7.0 / window_days
    p[:, 0] = _sigmoid(base_logit)
    ov[:, 0] = base_ov
    gain = latent["responsiveness"] * (1.0 - loyalty) * activity_weight
    for a, coupon in enumerate(coupons, start=1):
        if coupon.kind == "percent_off":
            raw = min(coupon.value / 10.0, 2.0) * (1.5 * ps**1.5 + 0.2 * abandon)
        elif coupon.kind == "amount_off":
            strength = min(coupon.value / 20.0, 2.0)
            raw = strength * (1.1 * d["lapse"] + 0.4 * ps + 0.4 * newness + 0.2 * abandon)
        elif coupon.kind == "threshold_off":
            strength = min((coupon.value / max(coupon.min_spend, 1.0)) / (30.0 / 199.0), 2.0)
            lo = 0.7 * coupon.min_spend
            just_below = _sigmoid((cart_value - lo) / 8.0) * _sigmoid(
                (coupon.min_spend - cart_value) / 4.0
            )
            above = _sigmoid((cart_value - coupon.min_spend) / 4.0)
            # Without a cart in hand, only those whose orders can reach the threshold care.
            reach = _p_at_least(base_ov, coupon.min_spend)
            raw = strength * (abandon * (2.0 * just_below + 0.5 * above) + 0.3 * ps * reach)
        elif coupon.kind == "free_shipping":
            strength = shipping_fee / 12.0
            below_level = _sigmoid((free_level - cart_value) / 6.0)
            below = 1.0 - _p_at_least(base_ov, free_level)
            raw = strength * (2.0 * abandon * below_level + (0.3 * ps + 0.4 * newness) * below)
        else:  # member_price
            raw = min(coupon.value / 8.0, 2.0) * (1.1 * member + 0.15 * ps * member)
        noise = latent["arm_noise"][:, a - 1]
        logit = (
            base_logit
            + gain * raw * np.exp(_ARM_EFFECT_NOISE * noise)
            - latent["coupon_aversion"]
            + _ARM_NOISE * noise
        )
        p[:, a] = _sigmoid(logit)
        ov[:, a] = base_ov * _basket_factor(coupon, base_ov)
        cost[:, a] = _expected_discount(coupon, ov[:, a], shipping_fee, free_level)
    if scale != 1.0:
        # Same weekly hazard, other window length.
        p = 1.0 - (1.0 - p) ** (1.0 / scale)
    extra = {
        "price_sensitivity_effective": ps.astype(np.float32),
        "loyalty": loyalty.astype(np.float32),
        "activity_weight": activity_weight.astype(np.float32),
        "tenure_days": tenure_days.astype(np.float32),
    }
    return p.astype(np.float32), ov.astype(np.float32), cost.astype(np.float32), extra


def ground_truth_from_events(
    *,
    events: dict[str, np.ndarray],
    customers: dict[str, np.ndarray],
    latent: dict[str, np.ndarray],
    end: np.datetime64,
    coupons: tuple[CouponSpec, ...] = DEFAULT_COUPONS,
    shipping_fee: float = 12.0,
    free_shipping_level: float = 99.0,
    outcome_window_days: int = 7,
    window_days: float = 90.0,
) -> GroundTruth:
    """The true response at ``end`` for the given event sequences and latent traits.

    This is what the simulator uses; it is public so that a sequence can be edited (reorder two
    events, drop a purchase) and the truth recomputed: the response depends on order and timing.
    ``events`` needs customer_index, timestamp, event_type, category, price, quantity (strings as
    in ``SimulatedMerchant.events``); it need not be sorted; events at or after ``end`` are
    ignored.
    """
    n = len(customers["customer_id"])
    end_s = int(np.datetime64(end, "s").astype(np.int64))
    customer = np.asarray(events["customer_index"], dtype=np.int64)
    ts = np.asarray(events["timestamp"]).astype("datetime64[s]").astype(np.int64)
    kind = _codes(np.asarray(events["event_type"]), EVENT_TYPES)
    category = _codes(np.asarray(events["category"]), CATEGORIES)
    # Only what happened before the assignment is visible.
    keep = np.flatnonzero(ts < end_s)
    order = keep[np.lexsort((ts[keep], customer[keep]))]
    drivers = _sequence_drivers(
        customer=customer[order],
        ts=ts[order],
        kind=kind[order],
        category=category[order],
        price=np.asarray(events["price"], dtype=np.float64)[order],
        quantity=np.asarray(events["quantity"], dtype=np.float64)[order],
        n=n,
        end_s=end_s,
        window_days=window_days,
    )
    tenure = (end_s - customers["signup_at"].astype("datetime64[s]").astype(np.int64)) / _DAY
    p, ov, cost, extra = _response(
        drivers=drivers,
        latent=latent,
        member_level=np.asarray(customers["member_level"]),
        tenure_days=tenure,
        coupons=coupons,
        shipping_fee=shipping_fee,
        free_level=free_shipping_level,
        window_days=outcome_window_days,
    )
    return GroundTruth(
        arms=(ARMS_CONTROL, *(c.code for c in coupons)),
        p_convert=p,
        order_value=ov,
        discount_cost=cost,
        latent=latent,
        drivers={**drivers, **extra},
        coupons=tuple(coupons),
        shipping_fee=shipping_fee,
        free_shipping_level=free_shipping_level,
        outcome_window_days=outcome_window_days,
        customer_id=np.asarray(customers["customer_id"]),
    )


def _codes(values: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Strings -> index into ``vocabulary`` ("" and unknown -> -1), vectorized."""
    vocab = np.array(vocabulary)
    order = np.argsort(vocab)
    pos = np.clip(np.searchsorted(vocab[order], values), 0, len(vocab) - 1)
    code = order[pos]
    return np.where(vocab[code] == values, code, -1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Catalogue:
    price: np.ndarray  # (n_categories * items,) ascending within each category
    item_ids: np.ndarray  # str, shuffled so an id says nothing about the price


def _catalogue(seed: int) -> _Catalogue:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    k = _ITEMS_PER_CATEGORY
    raw = _CATEGORY_PRICE_LEVEL[:, None] * np.exp(
        _ITEM_PRICE_SPREAD * rng.standard_normal((len(CATEGORIES), k))
    )
    price = np.sort(np.maximum(np.round(raw), 3.0) - 0.1, axis=1).ravel()
    ids = rng.permutation(price.size) + 1
    return _Catalogue(price=price, item_ids=np.array([f"I{i:05d}" for i in ids]))


def _block(
    *,
    seed: int,
    block: int,
    n: int,
    start_s: int,
    end_s: int,
    days: int,
    catalogue: _Catalogue,
    coupons: tuple[CouponSpec, ...],
    shipping_fee: float,
    free_level: float,
    experiment_share: float,
    outcome_window_days: int,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, block)))
    # Customers and their latent traits.
    persona = rng.choice(len(PERSONAS), size=n, p=_PERSONA_SHARE)
    stage = _categorical(rng, _STAGE_P[persona])
    price_sens = rng.beta(_PRICE_SENS_BETA[persona, 0], _PRICE_SENS_BETA[persona, 1])
    activity = np.exp(0.5 * rng.standard_normal(n))
    propensity = np.exp(0.4 * rng.standard_normal(n))
    trend = np.exp(0.35 * rng.standard_normal(n))  # <1: activity picks up towards the end
    # Sure things buy at full price whatever arrives in their inbox.
    indifferent = np.where(persona == PERSONAS.index("sure_thing"), 0.25, 1.0)
    responsiveness = indifferent * np.exp(0.35 * rng.standard_normal(n))
    averse = persona == PERSONAS.index("coupon_averse")
    mild = rng.random(n) < 0.03
    aversion = np.where(
        averse, rng.uniform(0.3, 0.9, n), np.where(mild, rng.uniform(0.2, 0.6, n), 0)
    )
    affinity = rng.dirichlet(3.0 * _CATEGORY_POPULARITY, size=n)
    member = _categorical(rng, _MEMBER_P[persona])
    city_tier = _categorical(rng, np.broadcast_to(_CITY_TIER_P, (n, 4))) + 1
    age_band = _categorical(rng, np.broadcast_to(_AGE_P, (n, len(AGE_BANDS))))
    gender = _categorical(rng, np.broadcast_to(_GENDER_P, (n, len(GENDERS))))
    price_skew = np.exp(1.6 * (price_sens - 0.4))  # >1: cheap items, <1: expensive ones
    baseline_noise = rng.standard_normal(n)
    arm_noise = rng.standard_normal((n, len(coupons)))

    # Activity phases: A (buying) and, for lapsing customers, B (browsing only).
    window = days * _DAY
    is_new, is_lapsing, is_lost = stage == _NEW, stage == _LAPSING, stage == _LOST
    signup = np.where(
        is_new,
        end_s - rng.uniform(1.0, min(35.0, days - 1.0), n) * _DAY,
        start_s - rng.uniform(1.0, 900.0, n) * _DAY,
    ).astype(np.int64)
    t0a = np.where(is_new, signup, start_s).astype(np.float64)
    cutoff = end_s - np.minimum(rng.uniform(30.0, 60.0, n), 0.8 * days) * _DAY
    churn = end_s - np.minimum(rng.uniform(30.0, 85.0, n), 0.9 * days) * _DAY
    t1a = np.select([is_lapsing, is_lost], [cutoff, churn], end_s).astype(np.float64)
    rate = _SESSION_RATE[persona] * activity
    n_a = rng.poisson(rate * (t1a - t0a) / _DAY)
    n_b = rng.poisson(np.where(is_lapsing, 0.5 * rate * (end_s - cutoff) / _DAY, 0.0))
    s_cust = np.concatenate([np.repeat(np.arange(n), n_a), np.repeat(np.arange(n), n_b)])
    in_b = np.concatenate([np.zeros(n_a.sum(), bool), np.ones(n_b.sum(), bool)])
    s0 = np.where(in_b, cutoff[s_cust], t0a[s_cust])
    s1 = np.where(in_b, end_s, t1a[s_cust])
    n_sess = len(s_cust)
    s_start = s0 + rng.random(n_sess) ** trend[s_cust] * (s1 - s0)

    # Session contents: searches, views, then favourite / cart / purchase; refund, review later.
    sp = price_sens[s_cust]
    sp_search = np.clip(0.08 + 0.8 * sp**1.5, 0.02, 0.95)
    n_search = (rng.random(n_sess) < sp_search).astype(np.int64) + (
        rng.random(n_sess) < 0.4 * sp_search
    )
    n_view = 1 + rng.poisson(0.6 + 2.4 * sp)
    sper = persona[s_cust]
    fav = rng.random(n_sess) < _FAVORITE_P[sper]
    cart_p = np.clip(
        _CART_P[sper] * np.sqrt(propensity[s_cust]) * np.where(in_b, 0.5, 1.0), 0, 0.95
    )
    cart = rng.random(n_sess) < cart_p
    buy_p = np.clip(_BUY_GIVEN_CART[sper] * propensity[s_cust], 0, 0.97) * ~in_b
    buy = cart & (rng.random(n_sess) < buy_p)
    refund = buy & (rng.random(n_sess) < _REFUND_P[sper])
    review = buy & (rng.random(n_sess) < _REVIEW_P[sper])
    s_cat = _categorical(rng, affinity[s_cust])
    u_qty = rng.random(n_sess)
    s_qty = 1.0 + (u_qty > _QUANTITY_CUT[0]) + (u_qty > _QUANTITY_CUT[1])

    bounds = np.cumsum(
        np.stack([n_search, n_view, fav, cart, buy, refund, review], axis=1), axis=1
    )  # (n_sess, 7): end position of each part within the session
    n_ev = bounds[:, -1]
    first = np.cumsum(n_ev) - n_ev
    e_sess = np.repeat(np.arange(n_sess), n_ev)
    n_events = len(e_sess)
    pos = np.arange(n_events) - first[e_sess]
    part = np.zeros(n_events, dtype=np.int64)
    for j in range(6):
        part += pos >= bounds[e_sess, j]
    part_kind = np.array([_SEARCH, _VIEW, _FAVORITE, _CART, _PURCHASE, _REFUND, _REVIEW])
    kind = part_kind[part]

    # Times: in-session gaps of seconds to minutes; refunds and reviews days after the purchase.
    gaps = 1.0 + rng.exponential(70.0, n_events)
    cs = np.cumsum(gaps)
    ts = s_start[e_sess] + cs - (cs[first] - gaps[first])[e_sess]
    purchase_at = ts[np.minimum(first + bounds[:, 4] - 1, n_events - 1)]
    delay = np.where(
        kind == _REFUND, rng.uniform(1.0, 12.0, n_events), rng.uniform(2.0, 15.0, n_events)
    )
    later = (kind == _REFUND) | (kind == _REVIEW)
    ts = np.where(later, purchase_at[e_sess] + delay * _DAY, ts)

    # Items and prices: viewed items from the session's category, cheap or dear by the customer's
    # price skew; favourite, cart, purchase, refund and review are about the last viewed item.
    e_cust = s_cust[e_sess]
    rank = np.minimum(
        (rng.random(n_events) ** price_skew[e_cust] * _ITEMS_PER_CATEGORY).astype(np.int64),
        _ITEMS_PER_CATEGORY - 1,
    )
    item = s_cat[e_sess] * _ITEMS_PER_CATEGORY + rank
    sale = rng.random(n_events) < 0.1
    price = np.where(sale, np.round(catalogue.price[item] * 0.85) - 0.1, catalogue.price[item])
    price = np.maximum(price, 1.9)
    last_view = first + bounds[:, 1] - 1
    about_item = kind >= _CART  # cart, purchase, refund, review, favorite
    item = np.where(about_item, item[last_view][e_sess], item)
    price = np.where(about_item, price[last_view][e_sess], price)
    category = np.where(kind == _SEARCH, -1, s_cat[e_sess])
    item = np.where(kind == _SEARCH, -1, item)
    has_price = (kind == _VIEW) | (kind == _CART) | (kind == _PURCHASE) | (kind == _REFUND)
    price = np.where(has_price, price, np.nan)
    quantity = np.where(
        (kind == _CART) | (kind == _PURCHASE) | (kind == _REFUND), s_qty[e_sess], np.nan
    )

    # Only what happened before the assignment time is visible; then sort by customer and time.
    ts = np.floor(ts).astype(np.int64)
    keep = np.flatnonzero(ts < end_s)
    order = keep[np.argsort((e_cust[keep] << 32) + (ts[keep] - start_s + window), kind="stable")]
    ev_cust, ev_ts = e_cust[order], _strictly_increasing(e_cust[order], ts[order])
    order = order[ev_ts < end_s]
    ev_cust, ev_ts = ev_cust[ev_ts < end_s], ev_ts[ev_ts < end_s]
    ev = {
        "customer": ev_cust,
        "ts": ev_ts,
        "kind": kind[order],
        "item": item[order],
        "category": category[order],
        "price": price[order],
        "quantity": quantity[order],
    }

    # Latent basket size: the geometric mean of a few carts this customer would fill.
    draws = 8
    hyp_cat = _categorical(rng, np.repeat(affinity, draws, axis=0))
    hyp_rank = np.minimum(
        (rng.random(n * draws) ** np.repeat(price_skew, draws) * _ITEMS_PER_CATEGORY).astype(int),
        _ITEMS_PER_CATEGORY - 1,
    )
    hyp_value = catalogue.price[hyp_cat * _ITEMS_PER_CATEGORY + hyp_rank] * 1.35
    basket = np.exp(np.log(hyp_value).reshape(n, draws).mean(axis=1))
    basket *= _CITY_TIER_BASKET[city_tier - 1] * np.exp(0.2 * rng.standard_normal(n))

    latent = {
        "persona": np.array(PERSONAS)[persona],
        "lifecycle": np.array(LIFECYCLE_STAGES)[stage],
        "price_sensitivity": price_sens.astype(np.float32),
        "purchase_propensity": propensity.astype(np.float32),
        "activity": activity.astype(np.float32),
        "coupon_aversion": aversion.astype(np.float32),
        "responsiveness": responsiveness.astype(np.float32),
        "basket_value": basket.astype(np.float32),
        "baseline_noise": baseline_noise.astype(np.float32),
        "arm_noise": arm_noise.astype(np.float32),
        "category_affinity": affinity.astype(np.float32),
    }
    member_level = np.array(MEMBER_LEVELS)[member]
    drivers = _sequence_drivers(
        customer=ev["customer"],
        ts=ev["ts"],
        kind=ev["kind"],
        category=ev["category"],
        price=ev["price"],
        quantity=ev["quantity"],
        n=n,
        end_s=end_s,
        window_days=float(days),
    )
    p, ov, cost, extra = _response(
        drivers=drivers,
        latent={k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in latent.items()},
        member_level=member_level,
        tenure_days=(end_s - signup) / _DAY,
        coupons=coupons,
        shipping_fee=shipping_fee,
        free_level=free_level,
        window_days=outcome_window_days,
    )

    # The historical experiment: uniform over control and every coupon.
    n_arms = len(coupons) + 1
    in_experiment = np.flatnonzero(rng.random(n) < experiment_share)
    arm = rng.integers(0, n_arms, size=len(in_experiment))
    converted, revenue = _draw(
        p[in_experiment, arm],
        ov[in_experiment, arm],
        arm,
        coupons,
        shipping_fee,
        free_level,
        rng,
    )

    out = {
        "c_signup": signup,
        "c_city_tier": city_tier.astype(np.int8),
        "c_age_band": age_band.astype(np.int8),
        "c_gender": gender.astype(np.int8),
        "c_member": member.astype(np.int8),
        "e_customer": ev["customer"].astype(np.int32),
        "e_ts": ev["ts"],
        "e_kind": ev["kind"].astype(np.int8),
        "e_item": ev["item"].astype(np.int32),
        "e_category": ev["category"].astype(np.int8),
        "e_price": ev["price"],
        "e_quantity": ev["quantity"],
        "t_customer": in_experiment.astype(np.int32),
        "t_arm": arm.astype(np.int16),
        "t_converted": converted,
        "t_revenue": revenue,
        "g_p": p,
        "g_ov": ov,
        "g_cost": cost,
    }
    out.update({f"l_{k}": v for k, v in latent.items()})
    out.update({f"d_{k}": v for k, v in {**drivers, **extra}.items()})
    return out


# Event columns are allocated for this many events per customer (about 29 on average) and grow
# when a merchant needs more; pages never written are never resident.
_EVENTS_PER_CUSTOMER_GUESS = 36


class _Columns:
    """Blocks appended into preallocated columns.

    Collecting blocks in lists and concatenating them leaves the allocator holding the freed
    small block arrays (about 1 GiB of resident slack at 1M customers); one large allocation
    per column does not."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(int(capacity), 1)
        self.size = 0
        self.data: dict[str, np.ndarray] = {}

    def append(self, arrays: dict[str, np.ndarray]) -> None:
        rows = len(next(iter(arrays.values())))
        needed = self.size + rows
        if needed > self.capacity:
            self.capacity = max(needed, 2 * self.capacity)
            for key, old in self.data.items():
                grown = np.empty((self.capacity, *old.shape[1:]), old.dtype)
                grown[: self.size] = old[: self.size]
                self.data[key] = grown
        for key, value in arrays.items():
            if key not in self.data:
                self.data[key] = np.empty((self.capacity, *value.shape[1:]), value.dtype)
            self.data[key][self.size : needed] = value
        self.size = needed

    def result(self) -> dict[str, np.ndarray]:
        return {key: value[: self.size] for key, value in self.data.items()}


def _shared_strings(vocabulary: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    # An object array whose elements are the vocabulary's own str objects: 8 bytes per event
    # instead of 24-32 for fixed-width unicode (about 2 GiB less at 1M customers), and pandas
    # and pyarrow take it as it is.
    return np.array(vocabulary, dtype=object)[codes]


def _draw(
    p: np.ndarray,
    order_value: np.ndarray,
    arm: np.ndarray,
    coupons: tuple[CouponSpec, ...],
    shipping_fee: float,
    free_level: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes for rows with the given arm index (0 = control): converted and net revenue."""
    converted, order, discount = _draw_orders(
        p, order_value, arm, coupons, shipping_fee, free_level, rng
    )
    revenue = np.where(converted, np.round(order - discount, 2), 0.0)
    return converted, revenue


def _draw_orders(
    p: np.ndarray,
    order_value: np.ndarray,
    arm: np.ndarray,
    coupons: tuple[CouponSpec, ...],
    shipping_fee: float,
    free_level: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether each row converts, its gross order (lognormal around ``order_value``) and the
    coupon's realized cost on it (0 under control, and where the coupon's terms are not met)."""
    converted = rng.random(len(p)) < p
    order = order_value * np.exp(ORDER_SIGMA * rng.standard_normal(len(p)) - 0.5 * ORDER_SIGMA**2)
    discount = np.zeros(len(p))
    for a, coupon in enumerate(coupons, start=1):
        rows = arm == a
        discount[rows] = _realized_discount(coupon, order[rows], shipping_fee, free_level)
    return converted, order, discount


def simulate_merchant(
    n_customers: int,
    seed: int,
    *,
    days: int = 90,
    coupons: tuple[CouponSpec, ...] = DEFAULT_COUPONS,
    experiment_share: float = 1.0,
    outcome_window_days: int = 7,
    shipping_fee: float = 12.0,
    free_shipping_level: float = 99.0,
    end: np.datetime64 = DEFAULT_END,
) -> SimulatedMerchant:
    """A merchant with ``n_customers`` customers, ``days`` of behaviour before ``end`` and a
    randomized experiment at ``end`` covering ``experiment_share`` of the customers."""
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if days < 14:
        raise ValueError("days must be at least 14")
    if not 0.0 <= experiment_share <= 1.0:
        raise ValueError("experiment_share must be within [0, 1]")
    coupons = tuple(coupons)
    if len({c.code for c in coupons}) != len(coupons):
        raise ValueError("coupon codes must be unique")
    end = np.datetime64(end, "s")
    end_s = int(end.astype(np.int64))
    start_s = end_s - days * _DAY
    catalogue = _catalogue(seed)

    per_customer = _Columns(n_customers)
    per_event = _Columns(_EVENTS_PER_CUSTOMER_GUESS * n_customers)
    per_treatment = _Columns(n_customers)
    for block, first in enumerate(range(0, n_customers, BLOCK_SIZE)):
        size = min(BLOCK_SIZE, n_customers - first)
        out = _block(
            seed=seed,
            block=block,
            n=size,
            start_s=start_s,
            end_s=end_s,
            days=days,
            catalogue=catalogue,
            coupons=coupons,
            shipping_fee=shipping_fee,
            free_level=free_shipping_level,
            experiment_share=experiment_share,
            outcome_window_days=outcome_window_days,
        )
        out["e_customer"] += first
        out["t_customer"] += first
        per_event.append({k: v for k, v in out.items() if k.startswith("e_")})
        per_treatment.append({k: v for k, v in out.items() if k.startswith("t_")})
        per_customer.append({k: v for k, v in out.items() if k[:2] not in ("e_", "t_")})
    joined = {**per_customer.result(), **per_event.result(), **per_treatment.result()}

    width = max(7, len(str(n_customers)))
    customer_id = np.char.add("C", np.char.zfill(np.arange(1, n_customers + 1).astype(str), width))
    customers = {
        "customer_id": customer_id,
        "signup_at": joined.pop("c_signup").view("datetime64[s]"),
        "city_tier": joined.pop("c_city_tier"),
        "age_band": np.array(AGE_BANDS)[joined.pop("c_age_band")],
        "member_level": np.array(MEMBER_LEVELS)[joined.pop("c_member")],
        "gender": np.array(GENDERS)[joined.pop("c_gender")],
    }
    kind = joined.pop("e_kind")
    category = joined.pop("e_category")
    item = joined.pop("e_item")
    events = {
        "customer_index": joined.pop("e_customer"),
        "timestamp": joined.pop("e_ts").view("datetime64[s]"),
        "event_type": _shared_strings(EVENT_TYPES, kind),
        "item_id": _shared_strings((*catalogue.item_ids, ""), item),
        "category": _shared_strings((*CATEGORIES, ""), category),
        "price": joined.pop("e_price"),
        "quantity": joined.pop("e_quantity"),
        "event_code": kind,
        "category_code": category,
        "item_code": item,
    }
    arms = (ARMS_CONTROL, *(c.code for c in coupons))
    t_arm = joined.pop("t_arm")
    treatments = {
        "customer_index": joined.pop("t_customer"),
        "arm": np.array(arms)[t_arm],
        "assigned_at": np.full(len(t_arm), end),
        "propensity": np.full(len(t_arm), 1.0 / len(arms)),
        "converted": joined.pop("t_converted"),
        "revenue": joined.pop("t_revenue"),
    }
    truth = GroundTruth(
        arms=arms,
        p_convert=joined.pop("g_p"),
        order_value=joined.pop("g_ov"),
        discount_cost=joined.pop("g_cost"),
        latent={k[2:]: v for k, v in joined.items() if k.startswith("l_")},
        drivers={k[2:]: v for k, v in joined.items() if k.startswith("d_")},
        coupons=coupons,
        shipping_fee=shipping_fee,
        free_shipping_level=free_shipping_level,
        outcome_window_days=outcome_window_days,
        customer_id=customer_id,
    )
    return SimulatedMerchant(
        seed=seed,
        start=np.datetime64(start_s, "s"),
        end=end,
        currency="CNY",
        shipping_fee=shipping_fee,
        free_shipping_level=free_shipping_level,
        coupons=coupons,
        customers=customers,
        events=events,
        treatments=treatments,
        truth=truth,
        item_ids=catalogue.item_ids,
    )


# ---------------------------------------------------------------------------------------------
# Playing the next period, and the oracle
# ---------------------------------------------------------------------------------------------
def draw_outcomes(
    truth: GroundTruth,
    customer_index: np.ndarray,
    arms: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw what happens when ``customer_index[i]`` gets ``arms[i]`` (arm names or indices).

    Returns (converted bool, revenue float64): revenue is the order value (lognormal around the
    expected order value under the arm) minus the realized discount, and 0 when not converted.
    """
    customer_index = np.asarray(customer_index, dtype=np.int64)
    arms = np.asarray(arms)
    arm = (
        _codes(arms.astype(str), truth.arms) if arms.dtype.kind in "UOS" else arms.astype(np.int64)
    )
    if np.any(arm < 0) or np.any(arm >= len(truth.arms)):
        raise ValueError(f"unknown arm; expected one of {truth.arms}")
    return _draw(
        truth.p_convert[customer_index, arm].astype(np.float64),
        truth.order_value[customer_index, arm].astype(np.float64),
        arm,
        truth.coupons,
        truth.shipping_fee,
        truth.free_shipping_level,
        rng,
    )


@dataclass
class NextPeriod:
    """The period after a strategy was applied, played from the ground truth.

    Per assigned customer, in the order given: the arm (index into ``GroundTruth.arms``) and
    code, whether they ordered (``converted``), the gross ``order`` value, the coupon's realized
    cost on it (``discount``: 0 under control and where the coupon's terms are not met), whether
    the code was ``redeemed`` (converted under a coupon whose terms the order met), the net
    ``revenue`` (order less discount, rounded to cents; 0 without an order), when it was ordered
    and its ``order_id`` ("" without an order).

    And the truth to compare a measurement with: per customer the TRUE expected incremental
    profit, conversions, revenue and coupon cost of the arm they got against no coupon
    (``GroundTruth.uplift`` and friends; 0 for control), at ``margin_rate``.
    """

    customer_id: np.ndarray
    arm: np.ndarray
    code: np.ndarray
    converted: np.ndarray
    order: np.ndarray
    discount: np.ndarray
    redeemed: np.ndarray
    revenue: np.ndarray
    ordered_at: np.ndarray  # datetime64[s]
    order_id: np.ndarray
    true_profit: np.ndarray
    true_conversions: np.ndarray
    true_revenue: np.ndarray
    true_cost: np.ndarray
    margin_rate: float

    @property
    def n_orders(self) -> int:
        return int(self.converted.sum())

    @property
    def true_incremental_profit(self) -> float:
        """The strategy's TRUE expected incremental profit against giving everyone no coupon."""
        return float(self.true_profit.sum())

    def true_totals(self, rows: np.ndarray | None = None) -> dict[str, float]:
        """True expected incremental profit, conversions, revenue and coupon cost, summed over
        ``rows`` (a mask or indices; all customers by default), and how many customers."""
        pick = slice(None) if rows is None else rows
        return {
            "customers": int(np.ones(len(self.arm), dtype=bool)[pick].sum()),
            "profit": float(self.true_profit[pick].sum()),
            "conversions": float(self.true_conversions[pick].sum()),
            "revenue": float(self.true_revenue[pick].sum()),
            "cost": float(self.true_cost[pick].sum()),
        }


def _truth_rows(truth: GroundTruth, customer_id: np.ndarray) -> np.ndarray:
    """Row of ``truth`` per customer id (external ids as strings, or row indices)."""
    if customer_id.dtype.kind in "iu":
        index = customer_id.astype(np.int64)
        if np.any((index < 0) | (index >= truth.n_customers)):
            raise ValueError("customer index outside the ground truth")
        return index
    if truth.customer_id is None:
        raise ValueError("this ground truth carries no customer ids; pass row indices")
    known = np.asarray(truth.customer_id).astype(str)
    wanted = customer_id.astype(str)
    order = np.argsort(known, kind="stable")
    position = np.clip(np.searchsorted(known[order], wanted), 0, max(len(known) - 1, 0))
    index = order[position] if len(known) else np.zeros(len(wanted), dtype=np.int64)
    missing = wanted[known[index] != wanted] if len(known) else wanted
    if missing.size:
        raise ValueError(f"{missing.size} customers are not in the ground truth, e.g. {missing[0]}")
    return index.astype(np.int64)


def _terms_met(coupon: CouponSpec, order: np.ndarray, free_level: float) -> np.ndarray:
    """Whether an order of this gross value gets the coupon (``realized_coupon_cost``'s rule):
    free shipping below the free-shipping level, every other kind from its minimum spend."""
    if coupon.kind == "free_shipping":
        return order < free_level
    return order >= coupon.min_spend


def play_next_period(
    truth: GroundTruth,
    customer_id: np.ndarray,
    arms: np.ndarray,
    codes: np.ndarray | None = None,
    *,
    start: np.datetime64,
    margin_rate: float,
    seed: int,
    days: int | None = None,
    order_prefix: str | None = None,
) -> NextPeriod:
    """Play the period after a strategy was applied: customer ``customer_id[i]`` (an external
    id, or a row index into the truth) got ``arms[i]`` (an arm name or index; ``control`` for
    the holdout and no coupon) with coupon code ``codes[i]``.

    Each customer converts with the true P(convert | arm) within ``days`` (default: the truth's
    outcome window) from ``start``, orders once, for a gross value lognormal around the true
    expected order value under the arm (``ORDER_SIGMA``, as the historical experiment draws),
    and redeems the code when the order meets the coupon's terms, which then costs
    ``economics.realized_coupon_cost``; the net revenue is the order less that cost, as in the
    historical experiment. Order times are uniform over the period, order ids
    ``<order_prefix><n>`` (default prefix ``P<seed>-``). Deterministic by ``seed``."""
    customer_id = np.asarray(customer_id)
    arms = np.asarray(arms)
    n = len(customer_id)
    if len(arms) != n:
        raise ValueError(f"{len(arms)} arms for {n} customers")
    arm = (
        _codes(arms.astype(str), truth.arms) if arms.dtype.kind in "UOS" else arms.astype(np.int64)
    )
    if np.any(arm < 0) or np.any(arm >= len(truth.arms)):
        raise ValueError(f"unknown arm; expected one of {truth.arms}")
    codes = np.full(n, "", dtype=object) if codes is None else np.asarray(codes, dtype=object)
    if len(codes) != n:
        raise ValueError(f"{len(codes)} codes for {n} customers")
    codes = np.array(["" if c is None else str(c) for c in codes], dtype=object)
    if np.any((arm > 0) & (codes == "")):
        raise ValueError("every customer given a coupon needs its code")
    rows = _truth_rows(truth, customer_id)
    days = truth.outcome_window_days if days is None else int(days)
    if days < 1:
        raise ValueError("days must be at least 1")

    rng = np.random.default_rng(seed)
    p = truth.p_convert[rows, arm].astype(np.float64)
    value = truth.order_value[rows, arm].astype(np.float64)
    converted, order, discount = _draw_orders(
        p, value, arm, truth.coupons, truth.shipping_fee, truth.free_shipping_level, rng
    )
    offsets = rng.integers(0, days * _DAY, size=n)
    met = np.zeros(n, dtype=bool)
    for a, coupon in enumerate(truth.coupons, start=1):
        on_arm = arm == a
        met[on_arm] = _terms_met(coupon, order[on_arm], truth.free_shipping_level)
    redeemed = converted & (arm > 0) & met
    discount = np.where(redeemed, discount, 0.0)
    revenue = np.where(converted, np.round(order - discount, 2), 0.0)
    ordered_at = np.datetime64(start, "s") + offsets.astype("timedelta64[s]")
    ordered_at = np.where(converted, ordered_at, np.datetime64("NaT", "s"))
    prefix = f"P{seed}-" if order_prefix is None else order_prefix
    order_id = np.full(n, "", dtype=object)
    numbers = np.arange(1, int(converted.sum()) + 1).astype(str)
    order_id[converted] = np.char.add(prefix, np.char.zfill(numbers, 8)).astype(object)

    p_all = truth.p_convert[rows].astype(np.float64)
    ov_all = truth.order_value[rows].astype(np.float64)
    cost_all = truth.discount_cost[rows].astype(np.float64)
    picked = np.arange(n), arm
    p0, ov0 = p_all[:, 0], ov_all[:, 0]
    pa_, ova, costa = p_all[picked], ov_all[picked], cost_all[picked]
    return NextPeriod(
        customer_id=customer_id,
        arm=arm,
        code=codes,
        converted=converted,
        order=np.where(converted, order, 0.0),
        discount=discount,
        redeemed=redeemed,
        revenue=revenue,
        ordered_at=ordered_at,
        order_id=order_id,
        true_profit=pa_ * (ova * margin_rate - costa) - p0 * ov0 * margin_rate,
        true_conversions=pa_ - p0,
        true_revenue=pa_ * (ova - costa) - p0 * ov0,
        true_cost=pa_ * costa,
        margin_rate=float(margin_rate),
    )


def oracle_incremental_profit(
    truth: GroundTruth, margin_rate: float, budget: float | None = None
) -> OraclePolicy:
    """The best arm per customer by true incremental profit, optionally under a budget.

    Without a budget every customer gets the coupon with the highest positive incremental profit
    (or none). With one, customers are taken greedily by profit per unit of expected coupon spend
    until the budget is used up — a simple reference; the real optimizer lives elsewhere.
    """
    profit_all = truth.uplift(margin_rate)
    best = np.argmax(profit_all[:, 1:], axis=1) + 1
    rows = np.arange(truth.n_customers)
    best_profit = profit_all[rows, best]
    spend = truth.expected_cost()[rows, best]
    choice = np.where(best_profit > 0, best, 0)
    if budget is not None:
        candidates = np.flatnonzero(choice > 0)
        ratio = best_profit[candidates] / np.maximum(spend[candidates], 1e-12)
        ranked = candidates[np.argsort(-ratio, kind="stable")]
        fits = np.cumsum(spend[ranked]) <= budget
        choice = np.zeros_like(choice)
        choice[ranked[fits]] = best[ranked[fits]]
    treated = choice > 0
    profit = np.where(treated, profit_all[rows, choice], 0.0)
    return OraclePolicy(
        choice=choice,
        arm=np.array(truth.arms)[choice],
        profit=profit,
        total_profit=float(profit.sum()),
        total_cost=float(spend[treated].sum()),
        n_treated=int(treated.sum()),
    )


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
EVENTS_HEADER = (
    "customer_id",
    "timestamp",
    "event_type",
    "item_id",
    "category",
    "price",
    "quantity",
)
TREATMENTS_HEADER = ("customer_id", "arm", "assigned_at", "propensity", "converted", "revenue")
COUPON_TYPES_HEADER = (
    "code",
    "name",
    "kind",
    "value",
    "min_spend",
    "validity_days",
    "per_customer_limit",
)


def write_csvs(
    sim: SimulatedMerchant, directory: Path, *, chunk_rows: int = 1_000_000
) -> dict[str, Path]:
    """Write customers.csv, events.csv, treatments.csv, coupon_types.csv (the formats of
    DESIGN.md "Data it accepts", UTC timestamps with Z) and ground_truth.npz. Rows are written in
    chunks of ``chunk_rows``; the files do not depend on it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids = pa.array(sim.customers["customer_id"])

    def ids_of(index: np.ndarray) -> pa.Array:
        return pc.take(ids, pa.array(index.astype(np.int64)))

    def nullable(values: np.ndarray) -> pa.Array:
        return pa.array(values, from_pandas=True)  # NaN -> empty field

    c = sim.customers
    attribute_names = [k for k in c if k != "customer_id"]

    def customer_columns(lo: int, hi: int) -> list[pa.Array]:
        cols = [ids[lo:hi]]
        for name in attribute_names:
            values = c[name][lo:hi]
            cols.append(_iso_utc(values) if values.dtype.kind == "M" else pa.array(values))
        return cols

    e = sim.events

    def event_columns(lo: int, hi: int) -> list[pa.Array]:
        qty = e["quantity"][lo:hi]
        missing = np.isnan(qty)
        return [
            ids_of(e["customer_index"][lo:hi]),
            _iso_utc(e["timestamp"][lo:hi]),
            pa.array(e["event_type"][lo:hi]),
            pa.array(e["item_id"][lo:hi]),
            pa.array(e["category"][lo:hi]),
            nullable(e["price"][lo:hi]),
            pa.array(np.where(missing, 0, qty).astype(np.int64), mask=missing),
        ]

    t = sim.treatments

    def treatment_columns(lo: int, hi: int) -> list[pa.Array]:
        return [
            ids_of(t["customer_index"][lo:hi]),
            pa.array(t["arm"][lo:hi]),
            _iso_utc(t["assigned_at"][lo:hi]),
            pa.array(t["propensity"][lo:hi]),
            pa.array(t["converted"][lo:hi].astype(np.int8)),
            pa.array(t["revenue"][lo:hi]),
        ]

    paths = {
        "customers": directory / "customers.csv",
        "events": directory / "events.csv",
        "treatments": directory / "treatments.csv",
        "coupon_types": directory / "coupon_types.csv",
        "ground_truth": directory / "ground_truth.npz",
    }
    _write_csv(
        paths["customers"],
        ["customer_id", *attribute_names],
        sim.n_customers,
        customer_columns,
        chunk_rows,
    )
    _write_csv(paths["events"], EVENTS_HEADER, sim.n_events, event_columns, chunk_rows)
    _write_csv(paths["treatments"], TREATMENTS_HEADER, len(t["arm"]), treatment_columns, chunk_rows)
    with open(paths["coupon_types"], "w", newline="", encoding="utf-8") as f:
        # The csv module quotes only where needed: coupon names are free text.
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COUPON_TYPES_HEADER)
        for coupon in sim.coupons:
            writer.writerow([_plain(getattr(coupon, name)) for name in COUPON_TYPES_HEADER])
    _save_ground_truth(sim.truth, paths["ground_truth"])
    return paths


OUTCOMES_HEADER = ("customer_id", "order_id", "ordered_at", "revenue", "code")


def write_outcomes_csv(period: NextPeriod, path: Path) -> Path:
    """The period's orders in the outcomes format (``OUTCOMES_HEADER``: one row per order, UTC
    timestamps with Z, revenue net of the discount, the code where it was redeemed)."""
    import pyarrow as pa

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.flatnonzero(period.converted)
    rows = rows[np.argsort(period.ordered_at[rows], kind="stable")]
    ids = period.customer_id[rows]
    columns = [
        pa.array(ids.astype(str) if ids.dtype.kind in "iu" else ids.astype(object)),
        pa.array(period.order_id[rows].astype(object)),
        _iso_utc(period.ordered_at[rows]),
        pa.array(period.revenue[rows]),
        pa.array(np.where(period.redeemed[rows], period.code[rows], "").astype(object)),
    ]
    _write_csv(path, OUTCOMES_HEADER, len(rows), lambda lo, hi: [c[lo:hi] for c in columns], 10**6)
    return path


def _plain(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _write_csv(path: Path, header, n_rows: int, columns, chunk_rows: int) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as sink:
        sink.write((",".join(header) + "\n").encode())
        writer = None
        for lo in range(0, n_rows, max(1, chunk_rows)):
            batch = pa.record_batch(columns(lo, min(lo + chunk_rows, n_rows)), names=list(header))
            if writer is None:
                writer = pacsv.CSVWriter(sink, batch.schema, write_options=options)
            writer.write_batch(batch)
        if writer is not None:
            writer.close()


def _save_ground_truth(truth: GroundTruth, path: Path) -> None:
    arrays = {
        "arms": np.array(truth.arms),
        "p_convert": truth.p_convert,
        "order_value": truth.order_value,
        "discount_cost": truth.discount_cost,
        "customer_id": truth.customer_id if truth.customer_id is not None else np.array([], str),
        "coupons": np.array(json.dumps([c.__dict__ for c in truth.coupons])),
        "shipping_fee": np.array(truth.shipping_fee),
        "free_shipping_level": np.array(truth.free_shipping_level),
        "outcome_window_days": np.array(truth.outcome_window_days),
    }
    arrays.update({f"latent_{k}": v for k, v in truth.latent.items()})
    arrays.update({f"driver_{k}": v for k, v in truth.drivers.items()})
    np.savez(path, **arrays)


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read ground_truth.npz written by ``write_csvs``; ``customer_id`` says whose row is whose."""
    with np.load(path, allow_pickle=False) as z:
        coupons = tuple(CouponSpec(**c) for c in json.loads(str(z["coupons"])))
        ids = z["customer_id"]
        return GroundTruth(
            arms=tuple(str(a) for a in z["arms"]),
            p_convert=z["p_convert"],
            order_value=z["order_value"],
            discount_cost=z["discount_cost"],
            latent={k[len("latent_") :]: z[k] for k in z.files if k.startswith("latent_")},
            drivers={k[len("driver_") :]: z[k] for k in z.files if k.startswith("driver_")},
            coupons=coupons,
            shipping_fee=float(z["shipping_fee"]),
            free_shipping_level=float(z["free_shipping_level"]),
            outcome_window_days=int(z["outcome_window_days"]),
            customer_id=ids if ids.size else None,
        )
