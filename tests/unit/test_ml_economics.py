"""Coupon economics: expected cost per coupon kind, by hand, by Monte-Carlo, and the gross order
value behind a predicted net one. Plain functions, no database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modeling import simulation
from modeling.economics import (
    ORDER_SIGMA,
    CouponTerms,
    coupon_terms_from_specs,
    expected_coupon_cost,
    gross_order_value,
    realized_coupon_cost,
)

SIGMA = ORDER_SIGMA


def phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def p_at_least(mean: float, level: float) -> float:
    mu = math.log(mean) - SIGMA**2 / 2
    return 1.0 - phi((math.log(level) - mu) / SIGMA)


def mean_below(mean: float, level: float) -> float:
    mu = math.log(mean) - SIGMA**2 / 2
    return mean * phi((math.log(level) - mu - SIGMA**2) / SIGMA)


def cost(terms: CouponTerms, mean: float) -> float:
    return float(expected_coupon_cost(terms, np.array([mean]))[0])


# --- by hand -----------------------------------------------------------------------------------
def test_percent_off_and_member_price_cost_their_share_of_the_order():
    assert cost(CouponTerms("PCT10", "percent_off", 10.0), 150.0) == pytest.approx(15.0)
    assert cost(CouponTerms("MEMBER", "member_price", 8.0), 80.0) == pytest.approx(6.4)
    # with a minimum spend only orders reaching it are discounted
    terms = CouponTerms("PCT10_100", "percent_off", 10.0, min_spend=100.0)
    assert cost(terms, 120.0) == pytest.approx(0.1 * (120.0 - mean_below(120.0, 100.0)), rel=1e-6)


def test_threshold_off_costs_its_value_times_the_chance_of_reaching_the_threshold():
    terms = CouponTerms("SPEND199_30", "threshold_off", 30.0, min_spend=199.0)
    for mean in (60.0, 180.0, 260.0):
        assert cost(terms, mean) == pytest.approx(30.0 * p_at_least(mean, 199.0), rel=1e-6)
    assert cost(terms, 180.0) > cost(terms, 60.0)


def test_amount_off_costs_at_most_the_order_and_only_above_its_minimum():
    plain = CouponTerms("AMT20", "amount_off", 20.0)
    expected = mean_below(50.0, 20.0) + 20.0 * p_at_least(50.0, 20.0)  # E[min(20, X)]
    assert cost(plain, 50.0) == pytest.approx(expected, rel=1e-6)
    assert cost(plain, 50.0) < 20.0
    with_minimum = CouponTerms("AMT5_50", "amount_off", 5.0, min_spend=50.0)
    assert cost(with_minimum, 70.0) == pytest.approx(5.0 * p_at_least(70.0, 50.0), rel=1e-6)


def test_free_shipping_costs_the_fee_on_orders_below_the_free_shipping_level():
    terms = CouponTerms("FREESHIP", "free_shipping", 12.0, min_spend=99.0)
    for mean in (30.0, 90.0, 300.0):
        # E[min(12, X); X < 99] = E[X; X < 12] + 12 P(12 <= X < 99)
        expected = mean_below(mean, 12.0) + 12.0 * (p_at_least(mean, 12.0) - p_at_least(mean, 99.0))
        assert cost(terms, mean) == pytest.approx(expected, rel=1e-6)
    assert cost(terms, 30.0) > cost(terms, 300.0)  # big baskets ship free anyway
    # with no free-shipping level every order ships free without the coupon: it costs nothing
    assert cost(CouponTerms("FS", "free_shipping", 12.0), 50.0) == 0.0


def test_fixed_cost_is_added_per_redemption():
    plain = CouponTerms("PCT10", "percent_off", 10.0)
    printed = CouponTerms("PCT10", "percent_off", 10.0, fixed_cost=0.5)
    assert cost(printed, 100.0) == pytest.approx(cost(plain, 100.0) + 0.5)
    assert realized_coupon_cost(printed, np.array([100.0]))[0] == pytest.approx(10.5)


def test_realized_cost_follows_the_rules_order_by_order():
    orders = np.array([10.0, 49.99, 50.0, 120.0, 250.0])
    rules = {
        CouponTerms("P", "percent_off", 10.0): [1.0, 4.999, 5.0, 12.0, 25.0],
        CouponTerms("A", "amount_off", 20.0): [10.0, 20.0, 20.0, 20.0, 20.0],
        CouponTerms("A50", "amount_off", 20.0, min_spend=50.0): [0.0, 0.0, 20.0, 20.0, 20.0],
        CouponTerms("T", "threshold_off", 30.0, min_spend=199.0): [0.0, 0.0, 0.0, 0.0, 30.0],
        CouponTerms("F", "free_shipping", 12.0, min_spend=99.0): [10.0, 12.0, 12.0, 0.0, 0.0],
    }
    for terms, expected in rules.items():
        np.testing.assert_allclose(
            realized_coupon_cost(terms, orders), expected, err_msg=terms.code
        )


def test_a_tight_order_spread_makes_the_cost_the_cost_of_the_mean_order():
    terms = CouponTerms("T", "threshold_off", 30.0, min_spend=199.0)
    below = expected_coupon_cost(terms, np.array([150.0]), order_sigma=1e-3)[0]
    above = expected_coupon_cost(terms, np.array([250.0]), order_sigma=1e-3)[0]
    assert below == pytest.approx(0.0, abs=1e-9)
    assert above == pytest.approx(30.0)


# --- by Monte-Carlo ----------------------------------------------------------------------------
MC_TERMS = [
    CouponTerms("PCT10", "percent_off", 10.0),
    CouponTerms("PCT15_80", "percent_off", 15.0, min_spend=80.0),
    CouponTerms("AMT20", "amount_off", 20.0),
    CouponTerms("AMT30_10", "amount_off", 30.0, min_spend=10.0),
    CouponTerms("AMT5_50", "amount_off", 5.0, min_spend=50.0, fixed_cost=0.3),
    CouponTerms("SPEND199_30", "threshold_off", 30.0, min_spend=199.0),
    CouponTerms("FREESHIP", "free_shipping", 12.0, min_spend=99.0),
    CouponTerms("MEMBER", "member_price", 8.0),
]


@pytest.mark.parametrize("terms", MC_TERMS, ids=lambda t: t.code)
def test_expected_cost_matches_the_mean_realized_cost_of_sampled_orders(terms):
    # given: gross orders lognormal around their mean, as the simulator draws them
    rng = np.random.default_rng(11)
    for mean in (25.0, 95.0, 170.0, 420.0):
        orders = mean * np.exp(SIGMA * rng.standard_normal(400_000) - 0.5 * SIGMA**2)
        # when
        realized = realized_coupon_cost(terms, orders)
        # then: within 4 standard errors (the erfc fit adds ~1e-7 relative)
        expected = cost(terms, mean)
        tolerance = 4 * realized.std() / math.sqrt(orders.size) + 1e-6 * max(expected, 1.0)
        assert abs(realized.mean() - expected) < min(tolerance, 0.01 * mean), mean


# --- the gross order value behind a net one ----------------------------------------------------
@pytest.mark.parametrize("terms", MC_TERMS, ids=lambda t: t.code)
def test_gross_order_value_is_the_root_of_net_plus_discount(terms):
    def residual(gross):
        return gross - (expected_coupon_cost(terms, gross) - terms.fixed_cost) - net

    net = np.array([5.0, 40.0, 87.0, 150.0, 185.0, 400.0])
    # the default few steps: exact to a cent on ordinary baskets, close where the coupon
    # takes most of a small one (5 left of a basket under 20 off)
    gross = gross_order_value(terms, net)
    assert np.all(gross >= net)
    assert np.all(np.abs(residual(gross)) <= np.where(net >= 40, 0.01, 0.2))
    # more steps converge
    gross = gross_order_value(terms, net, iterations=12)
    np.testing.assert_allclose(residual(gross), 0.0, atol=1e-6)


def test_gross_order_value_of_percent_off_is_exact_and_negative_net_is_zero():
    terms = CouponTerms("PCT20", "percent_off", 20.0)
    np.testing.assert_allclose(gross_order_value(terms, np.array([80.0, -3.0])), [100.0, 0.0])
    free = CouponTerms("FREESHIP", "free_shipping", 12.0, min_spend=99.0)
    assert gross_order_value(free, np.array([-1.0]))[0] == 0.0


# --- terms ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("bogus", 1.0, "unknown coupon kind"),
        ("amount_off", -1.0, "value"),
        ("percent_off", 120.0, "percent"),
        ("amount_off", float("nan"), "value"),
    ],
)
def test_coupon_terms_refuse_what_cannot_be_priced(kind, value, message):
    with pytest.raises(ValueError, match=message):
        CouponTerms("X", kind, value)


def test_the_simulator_prices_its_coupons_with_these_rules():
    terms = coupon_terms_from_specs(
        simulation.DEFAULT_COUPONS, shipping_fee=12.0, free_shipping_level=99.0
    )
    assert [t.code for t in terms] == [c.code for c in simulation.DEFAULT_COUPONS]
    free = next(t for t in terms if t.kind == "free_shipping")
    assert (free.value, free.min_spend) == (12.0, 99.0)
    means = np.linspace(5.0, 600.0, 50)
    for spec, t in zip(simulation.DEFAULT_COUPONS, terms, strict=True):
        np.testing.assert_array_equal(
            simulation._expected_discount(spec, means, 12.0, 99.0), expected_coupon_cost(t, means)
        )
