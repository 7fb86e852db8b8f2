"""Realized results: the intervals against scipy and published numbers, the significance rule,
the minimum group size, coupon costs recovered from net revenue, and an applied strategy
measured end to end from imported outcomes (page, API, constant queries)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from scipy import stats

from campaigns.assignments import strategy_apply
from campaigns.choices import ImportSource, ImportStatus
from campaigns.imports import service
from campaigns.models import Assignment, DataImport, RealizedResult
from campaigns.results import strategy_results_refresh
from campaigns.services import campaign_create
from campaigns.strategies import strategy_compute
from modeling.economics import CouponTerms, realized_coupon_cost
from modeling.realized import (
    MIN_GROUP_CUSTOMERS,
    Z_95,
    GroupStats,
    compare_groups,
    mean_difference,
    newcombe_difference,
    redeemed_order_economics,
    wilson_interval,
)
from tests.scored import scored_merchant

# --- intervals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 20), (3, 40), (81, 263), (500, 1000), (20, 20)])
def test_wilson_matches_scipy(k, n):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


@pytest.mark.parametrize(
    ("counts", "published"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10.
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ],
)
def test_newcombe_matches_the_published_intervals(counts, published):
    result = newcombe_difference(*counts)
    assert result.difference == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert (result.low, result.high) == pytest.approx(published, abs=5e-5)


def test_newcombe_is_built_from_scipys_wilson_intervals():
    k1, n1, k2, n2 = 130, 1000, 95, 1010
    w1 = stats.binomtest(k1, n1).proportion_ci(method="wilson")
    w2 = stats.binomtest(k2, n2).proportion_ci(method="wilson")
    p1, p2 = k1 / n1, k2 / n2
    result = newcombe_difference(k1, n1, k2, n2)
    assert result.low == pytest.approx(p1 - p2 - np.hypot(p1 - w1.low, w2.high - p2))
    assert result.high == pytest.approx(p1 - p2 + np.hypot(w1.high - p1, p2 - w2.low))


def test_the_z_quantile_is_scipys():
    assert stats.norm.ppf(0.975) == pytest.approx(Z_95, abs=1e-12)


def test_mean_difference_is_welchs_standard_error_with_the_normal_quantile():
    rng = np.random.default_rng(7)
    a = rng.lognormal(3.0, 1.0, 400) * (rng.random(400) < 0.3)
    b = rng.lognormal(3.0, 1.0, 300) * (rng.random(300) < 0.2)
    result = mean_difference(a.size, a.sum(), (a * a).sum(), b.size, b.sum(), (b * b).sum())
    welch = stats.ttest_ind(a, b, equal_var=False)
    diff = a.mean() - b.mean()
    se = diff / welch.statistic
    assert result.difference == pytest.approx(diff)
    assert (result.low, result.high) == pytest.approx(
        stats.norm.interval(0.95, loc=diff, scale=se), rel=1e-9
    )
    # with hundreds of customers, t and z intervals agree to within 1 %
    t_interval = welch.confidence_interval(0.95)
    assert result.high - result.low == pytest.approx(t_interval.high - t_interval.low, rel=0.01)


def group(customers: int, conversions: int, revenue: float = 0.0, squares: float = 0.0):
    return GroupStats(
        customers=customers,
        conversions=conversions,
        revenue=revenue,
        revenue_squares=squares,
        profit=0.3 * revenue,
        profit_squares=0.09 * squares,
        cost=0.0,
        redemptions=0,
    )


def test_significant_only_when_the_interval_excludes_zero():
    clear = compare_groups(group(1000, 200), group(1000, 120))
    assert clear.conversion_rate.low > 0 and clear.conversion_rate.significant
    unclear = compare_groups(group(1000, 130), group(1000, 120))
    assert unclear.conversion_rate.low < 0 < unclear.conversion_rate.high
    assert not unclear.conversion_rate.significant
    worse = compare_groups(group(1000, 100), group(1000, 180))
    assert worse.conversion_rate.high < 0 and worse.conversion_rate.significant


def test_too_few_customers_on_either_side_shows_no_numbers():
    assert MIN_GROUP_CUSTOMERS == 100
    for treated, control in ((99, 500), (500, 99)):
        comparison = compare_groups(group(treated, treated // 2), group(control, control // 5))
        data = comparison.as_dict()
        assert data["enough"] is False
        assert data["conversion_rate"] is None and data["incremental_profit"] is None
        assert data["roi"] is None
        assert data["treated"]["customers"] == treated  # the sizes are shown
    assert compare_groups(group(100, 50), group(100, 20)).enough


def test_totals_scale_the_difference_by_the_treated_side():
    comparison = compare_groups(group(2000, 400, 40_000, 4e6), group(500, 50, 5_000, 5e5))
    assert comparison.incremental_conversions.difference == pytest.approx(2000 * (0.2 - 0.1))
    assert comparison.incremental_revenue.low == pytest.approx(
        2000 * comparison.revenue_per_customer.low
    )


# --- costs from net revenue ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "net", "gross", "cost"),
    [
        (CouponTerms("P", "percent_off", 10), 90.0, 100.0, 10.0),
        (CouponTerms("A", "amount_off", 20), 80.0, 100.0, 20.0),
        (CouponTerms("A", "amount_off", 20, min_spend=150), 80.0, 80.0, 0.0),  # not reached
        (CouponTerms("T", "threshold_off", 30, min_spend=199), 170.0, 200.0, 30.0),
        (CouponTerms("T", "threshold_off", 30, min_spend=199), 150.0, 150.0, 0.0),
        (CouponTerms("F", "free_shipping", 12, min_spend=99), 50.0, 62.0, 12.0),
        (CouponTerms("F", "free_shipping", 12, min_spend=99), 120.0, 120.0, 0.0),
        (CouponTerms("P", "percent_off", 10, fixed_cost=1.5), 90.0, 100.0, 11.5),
    ],
)
def test_the_cost_of_a_redeemed_coupon_follows_from_the_net_revenue(terms, net, gross, cost):
    got_gross, got_cost = redeemed_order_economics(terms, np.array([net]))
    assert (got_gross[0], got_cost[0]) == pytest.approx((gross, cost))


def test_costs_recover_what_the_simulator_charged():
    # the simulator's orders: net = gross - realized cost, wherever the coupon applies
    rng = np.random.default_rng(3)
    gross = rng.lognormal(np.log(150), 0.45, 5000)
    for terms in (
        CouponTerms("P", "percent_off", 15),
        CouponTerms("A", "amount_off", 20, min_spend=100),
        CouponTerms("T", "threshold_off", 30, min_spend=199),
    ):
        charged = realized_coupon_cost(terms, gross)
        applied = charged > 0
        net = np.round(gross - charged, 2)[applied]
        got_gross, got_cost = redeemed_order_economics(terms, net)
        assert got_gross == pytest.approx(gross[applied], abs=0.02)
        assert got_cost == pytest.approx(charged[applied], abs=0.01)


# --- an applied strategy, measured end to end ----------------------------------------------------

NET = 180.0  # every order's net revenue: PCT10 and AMT20 come from 200, SPEND199_30 from 210
COSTS = {"PCT10": 20.0, "AMT20": 20.0, "SPEND199_30": 30.0}


@pytest.fixture
def applied(db, merchant_a, settings, tmp_path, monkeypatch):
    # The same holdout and exploration draw on every run, so the test is reproducible.
    monkeypatch.setattr("campaigns.strategies.secrets.randbits", lambda bits: 20260301)
    monkeypatch.setattr("campaigns.models.secrets.token_hex", lambda n: "0f" * n)
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    scored = scored_merchant(merchant_a, customers=2000, seed=11)
    start = timezone.now() + timedelta(hours=1)
    campaign = campaign_create(
        merchant=merchant_a,
        actor=None,
        coupon_types=["PCT10", "AMT20", "SPEND199_30"],
        name="Measured",
        budget=Decimal("1000000"),
        starts_at=start,
        ends_at=start + timedelta(days=14),
        holdout_share=0.3,
        exploration_share=0.3,
        attribution_window_days=7,
    )
    strategy = strategy_compute(campaign=campaign, version=scored.version)
    strategy_apply(strategy=strategy, actor=None)
    strategy.refresh_from_db()
    return strategy


def simulate_orders(strategy, *, seed: int, order_prefix: str = "O") -> tuple[str, dict]:
    """Orders of the assigned customers: 35 % convert with a coupon, 15 % without; those with a
    coupon redeem it. Returns the CSV and what the test expects."""
    rng = np.random.default_rng(seed)
    rows = list(
        Assignment.objects.filter(strategy=strategy)
        .order_by("customer_id")
        .values_list("customer__external_id", "kind", "coupon_type__code", "code")
    )
    when = (strategy.campaign.starts_at + timedelta(days=2)).isoformat()
    lines = ["customer_id,order_id,ordered_at,revenue,code"]
    converted = {"holdout": [0, 0], "rest": [0, 0]}
    cost = 0.0
    for index, (customer, kind, coupon, code) in enumerate(rows):
        buys = rng.random() < (0.35 if coupon else 0.15)
        side = "holdout" if kind == "holdout" else "rest"
        converted[side][0] += int(buys)
        converted[side][1] += 1
        if buys:
            lines.append(f"{customer},{order_prefix}{index},{when},{NET:.2f},{code or ''}")
            cost += COSTS[coupon] if coupon else 0.0
    treated_share = sum(1 for row in rows if row[2]) / converted["rest"][1]
    return "\n".join(lines) + "\n", {
        "converted": converted,
        "cost": cost,
        "true_uplift": 0.20 * treated_share,
    }


def import_outcomes(merchant, text: str, tmp_path) -> DataImport:
    path = tmp_path / f"outcomes-{DataImport.objects.count()}.csv"
    path.write_text(text)
    data_import = service.import_create_from_file(
        merchant=merchant,
        kind="outcomes",
        path=path,
        filename=path.name,
        actor=None,
        source=ImportSource.COMMAND,
    )
    return service.import_run(data_import=data_import)


def test_an_applied_strategy_is_measured_against_its_holdout(applied, merchant_a, tmp_path):
    text, truth = simulate_orders(applied, seed=1)
    result = import_outcomes(merchant_a, text, tmp_path)
    assert result.status == ImportStatus.SUCCEEDED, result.errors
    data = RealizedResult.objects.get(strategy=applied).data

    # the groups are the assignments, their conversions exactly what was imported
    overall = data["overall"]
    holdout_converted, holdout_n = truth["converted"]["holdout"]
    rest_converted, rest_n = truth["converted"]["rest"]
    assert (overall["control"]["customers"], overall["control"]["conversions"]) == (
        holdout_n,
        holdout_converted,
    )
    assert (overall["treated"]["customers"], overall["treated"]["conversions"]) == (
        rest_n,
        rest_converted,
    )
    assert overall["control"]["revenue"] == pytest.approx(holdout_converted * NET)
    # the coupon cost is what the redeemed codes cost, recovered from the net revenue
    assert overall["coupon_cost"] == pytest.approx(truth["cost"], abs=0.05)
    # a clear effect: significant, and the interval holds the true uplift
    conversion = overall["conversion_rate"]
    assert overall["enough"] and conversion["significant"]
    assert conversion["low"] < truth["true_uplift"] < conversion["high"]
    margin = applied.margin_rate
    expected_profit_difference = (
        margin * rest_converted * NET + margin * truth["cost"] - truth["cost"]
    ) / rest_n - margin * holdout_converted * NET / holdout_n
    assert overall["profit_per_customer"]["difference"] == pytest.approx(
        expected_profit_difference, abs=0.01
    )
    assert overall["incremental_profit"]["difference"] == pytest.approx(
        expected_profit_difference * rest_n, abs=1.0
    )
    assert overall["roi"] == pytest.approx(
        overall["incremental_profit"]["difference"] / overall["coupon_cost"]
    )
    # the prediction stands beside it
    assert overall["predicted"]["incremental_profit"] == pytest.approx(applied.expected_profit)
    # per coupon: exploration customers who drew it against those randomized to none
    coupons = {entry["arm"]: entry for entry in data["coupons"]}
    assert set(coupons) == {"PCT10", "AMT20", "SPEND199_30"}
    for entry in coupons.values():
        assert entry["control"]["customers"] > holdout_n  # holdout + explored into none
        assert entry["predicted"]["conversion_rate"] is not None
        assert entry["given"]["redemptions"] <= entry["given"]["customers"]
    assert sum(entry["given"]["coupon_cost"] for entry in coupons.values()) == pytest.approx(
        overall["coupon_cost"]
    )
    # per lifecycle segment: stratified holdout, enough customers each; deciles are too small
    lifecycle = data["segments"]["lifecycle"]
    assert [row["key"] for row in lifecycle] == ["new", "active", "lapsing", "lost", "prospect"]
    assert sum(row["control"]["customers"] for row in lifecycle) == holdout_n
    assert all(row["enough"] for row in lifecycle)
    assert not any(row["enough"] for row in data["segments"]["uplift_deciles"])
    assert data["window"]["days"] == 7 and data["window"]["complete"] is False


def test_the_strategy_page_and_api_show_the_results_with_constant_queries(
    applied, merchant_a, vera, client_for, api_for, tmp_path
):
    client = client_for(vera)
    page_url = reverse(
        "promo:strategy", kwargs={"merchant": merchant_a.slug, "strategy_id": applied.pk}
    )
    api_url = reverse(
        "api:strategy-results", kwargs={"merchant": merchant_a.slug, "strategy_id": applied.pk}
    )

    def queries(target: str, api: bool = False) -> tuple[int, object]:
        caller = api_for(vera) if api else client
        with CaptureQueriesContext(connection) as captured:
            response = caller.get(target)
        assert response.status_code == 200
        return len(captured), response

    # before any outcome: no section, and the API says so
    before, page = queries(page_url)
    assert b'data-testid="realized-results"' not in page.content
    api_before, answer = queries(api_url, api=True)
    assert answer.json()["available"] is False

    text, _truth = simulate_orders(applied, seed=2)
    assert import_outcomes(merchant_a, text, tmp_path).status == ImportStatus.SUCCEEDED
    few, page = queries(page_url)
    content = page.content.decode()
    assert 'data-testid="realized-results"' in content
    assert 'data-testid="realized-chart"' in content and '"error_y"' in content
    assert "too few customers" in content  # the deciles
    assert "significant" in content
    assert "CNY" in content  # amounts in the merchant's currency

    more, _truth = simulate_orders(applied, seed=3, order_prefix="P")
    assert import_outcomes(merchant_a, more, tmp_path).status == ImportStatus.SUCCEEDED
    many, _page = queries(page_url)
    api_after, answer = queries(api_url, api=True)
    body = answer.json()
    assert body["available"] is True and body["orders"] > 0
    assert body["results"]["overall"]["enough"] is True
    assert before == few == many
    assert api_before == api_after


def test_results_of_a_strategy_that_is_not_applied_are_not_computed(merchant_a):
    from tests.factories import StrategyFactory

    assert strategy_results_refresh(strategy=StrategyFactory(campaign__merchant=merchant_a)) is None
