"""Off-policy estimates of a proposed strategy: the ML core against hand-computed and known cases,
the rows of applied campaigns it reads, and the figures the strategy page shows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.assignments import strategy_apply
from campaigns.choices import TreatmentSource
from campaigns.models import Assignment, Outcome, RealizedResult, TreatmentLog
from campaigns.services import campaign_create
from campaigns.strategies import strategy_compute
from modeling.dataset import campaign_randomized_rows, merchant_treatment_rows
from modeling.economics import CouponTerms
from modeling.metrics import policy_value_difference
from modeling.offpolicy import discount_from_net, logged_outcomes, strategy_offpolicy
from tests.scored import scored_merchant

PCT10 = CouponTerms("PCT10", "percent_off", 10.0)
SPEND = CouponTerms("SPEND199_30", "threshold_off", 30.0, 199.0)
SHIP = CouponTerms("FREESHIP", "free_shipping", 12.0, 99.0)
AMT20 = CouponTerms("AMT20", "amount_off", 20.0, 0.0, fixed_cost=2.0)


# --- the ML core --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("terms", "net", "discount"),
    [
        (PCT10, 90.0, 10.0),  # gross 100, 10 % off
        (SPEND, 180.0, 30.0),  # gross 210 reaches 199
        (SPEND, 100.0, 0.0),  # gross 130 cannot have reached it: no discount
        (SHIP, 50.0, 12.0),  # below the free-shipping level: the fee
        (SHIP, 120.0, 0.0),  # above it: shipping was free anyway
        (AMT20, 0.0, 20.0),  # an order the coupon covered whole: its value, the upper bound
    ],
)
def test_the_discount_is_recovered_from_the_net_revenue(terms, net, discount):
    found, redeemed = discount_from_net(terms, np.array([net]))
    assert found[0] == pytest.approx(discount)
    assert redeemed[0] == (discount > 0)
    # told it was not redeemed, nothing was taken off
    assert discount_from_net(terms, np.array([net]), np.array([False]))[0][0] == 0


def test_logged_outcomes_count_profit_on_the_gross_value_less_the_coupon():
    # given control, PCT10 and AMT20 (fixed cost 2) orders, and a customer who did not buy
    arm = np.array([0, 1, 2, 1, 7])  # 7: an arm the strategy does not offer
    converted = np.array([True, True, True, False, True])
    revenue = np.array([100.0, 90.0, 80.0, 0.0, 40.0])
    # when
    out = logged_outcomes(arm, converted, revenue, [PCT10, AMT20], margin_rate=0.3)
    # then: margin x (net + discount) - discount - fixed cost
    assert out["conversions"].tolist() == [1, 1, 1, 0, 1]
    assert out["revenue"].tolist() == [100, 90, 80, 0, 40]
    assert out["profit"][:4] == pytest.approx([30.0, 100 * 0.3 - 10, 100 * 0.3 - 20 - 2, 0.0])
    # where the outcome says the code was not redeemed, there was no discount and no fixed cost
    told = logged_outcomes(
        arm, converted, revenue, [PCT10, AMT20], margin_rate=0.3, redeemed=np.array([0, 0, 0, 0, 0])
    )
    assert told["profit"][:3] == pytest.approx([30.0, 27.0, 24.0])


def test_strategy_estimates_match_a_hand_computed_case():
    # given four logged rows, propensity 1/2 each, and a strategy giving rows 0-1 the coupon
    policy = np.array([1, 1, 0, 0])
    arm = np.array([0, 1, 0, 1])
    y = np.array([1.0, 3.0, 2.0, 5.0])
    mu = np.array([[1.0, 2.0]] * 4)
    # when
    result = strategy_offpolicy(
        policy=policy,
        arm=arm,
        propensity=np.full(4, 0.5),
        outcomes={"profit": y},
        models={"profit": mu},
        population=10,
        n_arms=2,
    )
    profit = result["estimates"]["profit"]
    # then IPW: (1[a = pi] - 1[a = 0]) y / e = -2, 6, 0, 0: mean 1, sd sqrt(12)
    assert profit["ipw_per_customer"]["value"] == pytest.approx(1.0)
    assert profit["ipw_per_customer"]["se"] == pytest.approx(np.sqrt(12) / 2)
    assert profit["ipw"]["value"] == pytest.approx(10.0)  # scaled to the 10 eligible customers
    assert profit["ipw"]["low"] == pytest.approx(10 * (1 - 1.959963984540054 * np.sqrt(3)))
    # DR: mu(pi) - mu(0) + the IPW residuals: 1, 3, 0, 0
    assert profit["dr_per_customer"]["value"] == pytest.approx(1.0)
    assert profit["dr_per_customer"]["se"] == pytest.approx(np.std([1, 3, 0, 0], ddof=1) / 2)
    assert result["rows"] == 4 and result["rows_following"] == 2


def test_rows_of_arms_outside_the_strategy_only_shift_the_model_part():
    result = strategy_offpolicy(
        policy=np.array([1, 1]),
        arm=np.array([5, 5]),
        propensity=np.full(2, 0.5),
        outcomes={"profit": np.array([10.0, 20.0])},
        models={"profit": np.array([[1.0, 2.0], [1.0, 4.0]])},
        population=2,
        n_arms=2,
    )
    profit = result["estimates"]["profit"]
    assert profit["ipw"]["value"] == 0
    assert profit["dr_per_customer"]["value"] == pytest.approx(2.0)  # mean of 1 and 3


def test_intervals_cover_the_known_value_of_a_policy():
    # given a randomized log of three arms whose true outcomes are known per customer
    rng = np.random.default_rng(3)
    n = 30_000
    x = rng.random(n)
    truth = np.column_stack([2 + x, 2.5 + 0 * x, 1 + 3 * x])  # expected outcome per arm
    arm = rng.integers(0, 3, size=n)
    y = truth[np.arange(n), arm] + rng.normal(0, 2, size=n)
    policy = np.argmax(truth, axis=1)
    true_lift = (truth[np.arange(n), policy] - truth[:, 0]).mean()
    # when estimated by IPW, and DR with a good and with a useless model
    good = strategy_offpolicy(
        policy=policy, arm=arm, propensity=np.full(n, 1 / 3), outcomes={"y": y},
        models={"y": truth}, population=n, n_arms=3,
    )["estimates"]["y"]  # fmt: skip
    useless = strategy_offpolicy(
        policy=policy, arm=arm, propensity=np.full(n, 1 / 3), outcomes={"y": y},
        models={"y": np.zeros((n, 3))}, population=n, n_arms=3,
    )["estimates"]["y"]  # fmt: skip
    # then every interval holds the truth, and the good model tightens it
    for estimate in (good["ipw_per_customer"], good["dr_per_customer"], useless["dr_per_customer"]):
        assert estimate["low"] <= true_lift <= estimate["high"]
    assert good["dr_per_customer"]["se"] < 0.6 * good["ipw_per_customer"]["se"]


def test_policy_value_difference_is_paired():
    # given two policies that agree on half the rows
    arm = np.array([0, 1, 0, 1])
    y = np.array([1.0, 3.0, 2.0, 5.0])
    e = np.full(4, 0.5)
    a, b = np.array([1, 1, 0, 0]), np.array([1, 1, 1, 1])
    # when
    diff = policy_value_difference(a, b, arm, y, e)
    # then (1[a = pa] - 1[a = pb]) y / e = 0, 0, 4, -10
    assert diff.ipw.value == pytest.approx(-1.5)
    assert diff.ipw.se == pytest.approx(np.std([0, 0, 4, -10], ddof=1) / 2)
    same = policy_value_difference(a, a, arm, y, e, np.ones((4, 2)))
    assert same.ipw.value == 0 and same.dr.value == 0 and same.dr.se == 0


# --- the Django side ----------------------------------------------------------------------------
@pytest.fixture
def scored(merchant_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    return scored_merchant(merchant_a, customers=400, seed=2)


def _log_experiment(scored, seed: int = 0) -> None:
    """A uniform historical experiment over control and the three coupons, drawn from the
    scores themselves (so the model is right on average)."""
    rng = np.random.default_rng(seed)
    coupon_ids = {c.code: c.pk for c in scored.merchant.coupon_types.all()}
    arm = rng.integers(0, len(scored.arms), size=scored.customer_ids.size)
    p = scored.p_convert[np.arange(arm.size), arm]
    converted = rng.random(arm.size) < p
    TreatmentLog.objects.bulk_create(
        TreatmentLog(
            merchant=scored.merchant,
            customer_id=int(customer),
            coupon_type_id=coupon_ids.get(scored.arms[a]),
            assigned_at=timezone.now() - timedelta(days=30),
            propensity=1 / len(scored.arms),
            converted=bool(c),
            revenue=Decimal("150.00") if c else Decimal("0"),
            fingerprint=int(customer),
        )
        for customer, a, c in zip(scored.customer_ids, arm, converted, strict=True)
    )


def _campaign(scored, **fields):
    start = timezone.now() + timedelta(days=1)
    return campaign_create(
        merchant=scored.merchant,
        actor=None,
        coupon_types=["PCT10", "AMT20", "SPEND199_30"],
        name="Spring",
        budget=Decimal("300"),
        starts_at=start,
        ends_at=start + timedelta(days=7),
        **fields,
    )


@pytest.mark.django_db
def test_a_proposal_stores_its_off_policy_estimates_beside_the_models(scored, alice, client_for):
    # given a historical experiment over every customer
    _log_experiment(scored)
    campaign = _campaign(scored)
    # when a strategy is proposed
    strategy = strategy_compute(campaign=campaign, version=scored.version)
    # then its summary holds IPW and DR estimates from the eligible customers' rows
    offpolicy = strategy.summary["offpolicy"]
    assert offpolicy["rows"] == 400 and offpolicy["population"] == strategy.eligible_customers
    assert offpolicy["sources"] == {"import": 400}
    profit = offpolicy["estimates"]["profit"]
    for method in ("ipw", "dr"):
        assert profit[method]["low"] <= profit[method]["value"] <= profit[method]["high"]
    assert offpolicy["model"]["profit"] == pytest.approx(strategy.expected_profit)
    assert offpolicy["model_inside_dr"]["profit"] in (True, False)
    # and the strategy page shows them next to the model's prediction
    page = client_for(alice).get(
        reverse("promo:strategy", kwargs={"merchant": "shop-a", "strategy_id": strategy.pk})
    )
    html = page.content.decode()
    assert 'data-testid="offpolicy-table"' in html
    assert 'data-outcome="profit"' in html


@pytest.mark.django_db
def test_without_randomized_data_the_page_says_so(scored, alice, client_for):
    strategy = strategy_compute(campaign=_campaign(scored), version=scored.version)
    assert strategy.summary["offpolicy"]["estimates"] == {}
    page = client_for(alice).get(
        reverse("promo:strategy", kwargs={"merchant": "shop-a", "strategy_id": strategy.pk})
    )
    assert 'data-testid="offpolicy-none"' in page.content.decode()


@pytest.mark.django_db
def test_an_applied_campaigns_holdout_and_exploration_become_randomized_rows(scored):
    # given an applied strategy whose campaign started a week ago
    campaign = _campaign(scored, holdout_share=0.2, exploration_share=0.2)
    campaign.starts_at = timezone.now() - timedelta(days=7)
    campaign.save(update_fields=["starts_at"])
    strategy = strategy_compute(campaign=campaign, version=scored.version)
    strategy_apply(strategy=strategy, actor=None, now=campaign.starts_at - timedelta(hours=1))
    randomized = Assignment.objects.filter(strategy=strategy, kind__in=["holdout", "exploration"])
    held = randomized.filter(kind="holdout").first()
    explored = randomized.filter(kind="exploration").exclude(code=None).first()
    # and orders: one of a held-out customer, one redeeming an explorer's code, one too late
    common = {"merchant": scored.merchant, "assignment": None}
    Outcome.objects.create(
        customer_id=held.customer_id, order_id="O1", revenue=Decimal("120"),
        ordered_at=campaign.starts_at + timedelta(days=1), **common,
    )  # fmt: skip
    Outcome.objects.create(
        customer_id=explored.customer_id, order_id="O2", revenue=Decimal("80"),
        ordered_at=campaign.starts_at + timedelta(days=2), code=explored.code,
        merchant=scored.merchant, assignment=explored,
    )  # fmt: skip
    Outcome.objects.create(
        customer_id=held.customer_id, order_id="O3", revenue=Decimal("99"),
        ordered_at=campaign.starts_at + timedelta(days=30), **common,
    )  # fmt: skip
    # no rows before the outcomes were measured
    assert campaign_randomized_rows(merchant=scored.merchant)["customer_id"].size == 0
    RealizedResult.objects.create(strategy=strategy, refreshed_at=timezone.now())
    # when
    rows = campaign_randomized_rows(merchant=scored.merchant)
    # then one row per held-out or exploring customer, with what their window saw
    assert rows["customer_id"].size == randomized.count()
    at = {int(c): i for i, c in enumerate(rows["customer_id"])}
    i, j = at[held.customer_id], at[explored.customer_id]
    assert rows["converted"][i] and rows["revenue"][i] == pytest.approx(120.0)  # not the late one
    assert rows["source"][i] == TreatmentSource.HOLDOUT and rows["arm"][i] == "control"
    assert rows["converted"][j] and rows["redeemed"][j] == 1 and rows["redeemed"][i] == 0
    assert rows["arm"][j] == explored.coupon_type.code
    assert rows["converted"].sum() == 2
    # and the propensity is the arm's chance given held out or exploring
    h, x, k = strategy.holdout_customers, strategy.exploration_customers, len(strategy.arms) - 1
    assert rows["propensity"][i] == pytest.approx((h + x / (k + 1)) / (h + x))
    assert rows["propensity"][j] == pytest.approx(x / (k + 1) / (h + x))
    coupon_rows = rows["arm"] != "control"
    total = rows["propensity"][~coupon_rows][:1].sum() + k * rows["propensity"][j]
    assert total == pytest.approx(1.0)
    # and they join the treatment log in what training and the estimates read
    assert (
        merchant_treatment_rows(merchant=scored.merchant)["customer_id"].size
        == rows["customer_id"].size
    )


@pytest.mark.django_db
def test_a_model_trained_on_the_split_is_judged_only_on_customers_it_held_out(scored):
    from modeling.training_service import held_out_customers

    # given a version trained with the merchant's held-out split, and an experiment on everyone
    _log_experiment(scored)
    scored.version.evaluation = {"split": {"kind": "customer_hash", "share": 0.2}}
    scored.version.save(update_fields=["evaluation"])
    # when a strategy is proposed from it
    strategy = strategy_compute(campaign=_campaign(scored), version=scored.version)
    # then only the rows of the customers it did not learn from count
    held = held_out_customers(merchant=scored.merchant, customer_ids=scored.customer_ids)
    offpolicy = strategy.summary["offpolicy"]
    assert offpolicy["out_of_sample"] is True
    assert offpolicy["rows"] == held.sum() < 400
    assert offpolicy["population"] == strategy.eligible_customers  # still scaled to everyone
