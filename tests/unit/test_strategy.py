"""Proposing strategies: the budget and caps hold, the numbers add up against the scores, the
holdout is stratified and sticky, exploration is uniform with its propensity logged, and a
larger budget never lowers the expected profit (hypothesis)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.choices import AuditVerb, CampaignStatus
from campaigns.models import AuditEvent, Campaign, CouponType, Strategy
from campaigns.randomization import (
    affordable_prefix,
    exploration_draw,
    hash_uniform,
    stratified_holdout,
)
from campaigns.services import campaign_create, campaign_update
from campaigns.strategies import StrategyError, strategy_compute, strategy_propose
from modeling.allocation import arm_values
from modeling.economics import CouponTerms
from modeling.models import Job
from modeling.segments import LIFECYCLE_SEGMENTS
from tests.scored import scored_merchant

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def scored(merchant_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    return scored_merchant(merchant_a, customers=300, seed=1)


def make_campaign(scored, *, codes=("PCT10", "AMT20", "SPEND199_30"), **fields) -> Campaign:
    start = timezone.now() + timedelta(days=1)
    values = {
        "name": "Spring",
        "budget": Decimal("200"),
        "starts_at": start,
        "ends_at": start + timedelta(days=7),
        **fields,
    }
    return campaign_create(merchant=scored.merchant, actor=None, coupon_types=list(codes), **values)


def choices_of(strategy: Strategy) -> dict[str, np.ndarray]:
    table = pq.read_table(strategy.choices_path)
    return {name: table.column(name).to_numpy() for name in table.column_names}


def values_for(scored, campaign: Campaign):
    """The core's ArmValues of the campaign's coupons, computed here from the known scores."""
    coupons = [
        CouponTerms(c.code, c.kind, float(c.value), float(c.min_spend), float(c.fixed_cost))
        for c in campaign.coupon_types.order_by("code")
    ]
    columns = [0, *[scored.arms.index(c.code) for c in coupons]]
    return arm_values(
        scored.p_convert[:, columns].astype(np.float64),
        scored.order_value[:, columns].astype(np.float64),
        coupons,
        margin_rate=campaign.margin_rate,
        goal=campaign.goal,
    )


def test_a_proposal_keeps_budget_and_caps_and_its_numbers_add_up(scored):
    # given a campaign with a budget and a cap
    campaign = make_campaign(scored, budget=Decimal("120"), caps={"AMT20": 7})
    # when a strategy is proposed
    strategy = strategy_compute(campaign=campaign, version=scored.version)
    # then every scored customer is decided once, within the budget and the cap
    rows = choices_of(strategy)
    assert np.unique(rows["customer_id"]).size == rows["customer_id"].size == 300
    assert strategy.arms == ["control", "AMT20", "PCT10", "SPEND199_30"]
    assert float(rows["expected_cost"].sum()) <= 120 + 1e-6
    assert strategy.expected_cost == pytest.approx(float(rows["expected_cost"].sum()), rel=1e-5)
    assert np.sum(rows["arm"] == strategy.arms.index("AMT20")) <= 7
    assert strategy.expected_cost > 0.5 * 120  # the budget is used, not left idle
    # and the expected figures are those of the chosen arms, priced from the scores
    values = values_for(scored, campaign)
    position = np.searchsorted(scored.customer_ids, rows["customer_id"])
    acted = rows["kind"] != 1
    arm = rows["arm"].astype(np.int64)
    for name, field in [("profit", "expected_profit"), ("conversions", "expected_conversions")]:
        picked = getattr(values, name)[position, arm][acted].sum()
        assert getattr(strategy, field) == pytest.approx(picked, rel=1e-5, abs=1e-6)
    assert strategy.expected_roi == pytest.approx(strategy.expected_profit / strategy.expected_cost)
    # and the counts, the kinds and the segments agree
    counts = strategy.counts
    assert sum(sum(arms.values()) for arms in counts.values()) == 300
    assert sum(counts["holdout"].values()) == strategy.holdout_customers
    assert strategy.treated_customers == int(np.sum((rows["arm"] > 0) & acted))
    assert np.all(rows["arm"][rows["kind"] == 1] == 0)  # the holdout gets nothing
    segments = strategy.segments
    assert [r["segment"] for r in segments["lifecycle"]] == list(LIFECYCLE_SEGMENTS)
    assert sum(r["customers"] for r in segments["lifecycle"]) == 300
    assert [r["decile"] for r in segments["uplift_deciles"]] == list(range(1, 11))
    assert sum(r["expected_profit"] for r in segments["uplift_deciles"]) == pytest.approx(
        strategy.expected_profit, abs=1e-6
    )
    assert set(segments["lifecycle"][0]["uplift_per_coupon"]) == {"AMT20", "PCT10", "SPEND199_30"}
    # and the frontier has the three curves, the model's rising with the budget
    curves = strategy.frontier["curves"]
    assert set(curves) == {"model", "best_single_coupon", "random"}
    model = curves["model"]
    assert len(model["budget"]) == 25 and model["budget"][0] == 0
    assert np.all(np.diff(model["profit"]) >= -1e-9)
    assert model["profit"][-1] >= curves["random"]["profit"][-1]
    assert strategy.status == "proposed"
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.READY


def test_the_holdout_is_stratified_and_the_same_when_proposed_again(scored):
    campaign = make_campaign(scored, holdout_share=0.2, exploration_share=0.1)
    first = choices_of(strategy_compute(campaign=campaign, version=scored.version))
    second = choices_of(strategy_compute(campaign=campaign, version=scored.version))
    held_first = set(first["customer_id"][first["kind"] == 1])
    assert held_first == set(second["customer_id"][second["kind"] == 1])
    for code in range(len(LIFECYCLE_SEGMENTS)):
        in_segment = first["lifecycle"] == code
        held = np.sum(in_segment & (first["kind"] == 1))
        assert abs(held - 0.2 * in_segment.sum()) <= 0.5 + 1e-9
    # another campaign (another secret salt) holds out other customers
    other = make_campaign(scored, holdout_share=0.2, exploration_share=0.1)
    rows = choices_of(strategy_compute(campaign=other, version=scored.version))
    assert set(rows["customer_id"][rows["kind"] == 1]) != held_first


def test_exploration_is_uniform_and_propensities_are_logged(merchant_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    scored = scored_merchant(merchant_a, customers=2000, seed=3, chunk_size=700)
    campaign = make_campaign(
        scored, budget=Decimal("100000"), holdout_share=0.1, exploration_share=0.4
    )
    strategy = strategy_compute(campaign=campaign, version=scored.version)
    rows = choices_of(strategy)
    explored = rows["kind"] == 2
    assert explored.sum() == 800
    counts = np.bincount(rows["arm"][explored], minlength=4)
    # uniform over no coupon and three coupons: 200 each, within 4 standard deviations
    assert np.all(np.abs(counts - 200) <= 4 * np.sqrt(800 * 0.25 * 0.75))
    # propensity = P(kind, arm): the kind's realized share times the arm's chance within it:
    # about 0.5 for the model's choice, 0.1 held out, and 0.4 / 4 explored
    treated, held = rows["propensity"][rows["kind"] == 0], rows["propensity"][rows["kind"] == 1]
    assert np.allclose(treated, treated[0]) and treated[0] == pytest.approx(0.5, abs=0.003)
    assert np.allclose(held, held[0]) and held[0] == pytest.approx(0.1, abs=0.003)
    assert np.allclose(rows["propensity"][explored], 0.1)
    assert treated[0] + held[0] + 4 * 0.1 == pytest.approx(1.0, abs=1e-6)


def test_exploration_shrinks_to_what_the_budget_affords(scored):
    campaign = make_campaign(scored, budget=Decimal("0"), exploration_share=0.3)
    strategy = strategy_compute(campaign=campaign, version=scored.version)
    rows = choices_of(strategy)
    assert strategy.expected_cost == 0 and strategy.treated_customers == 0
    assert np.all(rows["arm"] == 0)
    assert strategy.summary["exploration_wanted"] == 90
    assert strategy.exploration_customers < 90


def test_the_audience_filter_selects_the_eligible_customers(scored):
    campaign = make_campaign(
        scored,
        audience={
            "lifecycle": ["active", "lapsing"],
            "min_uplift": 0.0,
            "attributes": {"member": True},
        },
    )
    strategy = strategy_compute(campaign=campaign, version=scored.version)
    rows = choices_of(strategy)
    active, lapsing = LIFECYCLE_SEGMENTS.index("active"), LIFECYCLE_SEGMENTS.index("lapsing")
    columns = [scored.arms.index(c) for c in ("AMT20", "PCT10", "SPEND199_30")]
    best_uplift = (scored.p_convert[:, columns] - scored.p_convert[:, :1]).max(axis=1)
    member = np.arange(300) % 2 == 1  # scored_merchant: member = odd customer number
    expected = np.isin(scored.lifecycle, [active, lapsing]) & (best_uplift >= 0) & member
    assert set(rows["customer_id"]) == set(scored.customer_ids[expected])
    assert strategy.eligible_customers == expected.sum()
    assert strategy.summary["excluded_by_audience"] == 300 - expected.sum()


@PROPERTY
@given(
    budgets=st.tuples(st.floats(0, 400), st.floats(0, 400)).map(sorted),
    cap=st.one_of(st.none(), st.integers(0, 40)),
    goal=st.sampled_from(["profit", "revenue", "conversions"]),
)
def test_budget_and_caps_are_never_exceeded_and_more_budget_never_lowers_profit(
    scored, budgets, cap, goal
):
    low, high = (Decimal(str(round(b, 2))) for b in budgets)
    campaign = make_campaign(
        scored,
        budget=low,
        caps={} if cap is None else {"PCT10": cap},
        goal=goal,
        exploration_share=0.0,
    )
    small = strategy_compute(campaign=campaign, version=scored.version)
    large = strategy_compute(campaign=campaign, version=scored.version, budget=high)
    for strategy, budget in ((small, low), (large, high)):
        rows = choices_of(strategy)
        assert strategy.expected_cost <= float(budget) + 1e-6
        assert np.unique(rows["customer_id"]).size == rows["customer_id"].size
        if cap is not None:
            assert np.sum(rows["arm"] == strategy.arms.index("PCT10")) <= cap
    objective = {"profit": "expected_profit", "revenue": "expected_revenue"}.get(
        goal, "expected_conversions"
    )
    assert getattr(large, objective) >= getattr(small, objective) - 1e-6 * max(
        1.0, abs(getattr(small, objective))
    )


def test_proposing_is_a_job_that_names_its_strategy(
    scored, mona, django_capture_on_commit_callbacks
):
    campaign = make_campaign(scored)
    with django_capture_on_commit_callbacks(execute=True):
        job = strategy_propose(campaign=campaign, actor=mona, budget=Decimal("55.50"))
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.kind == "propose" and job.params["budget"] == "55.50"
    strategy = Strategy.objects.get(pk=job.result["strategy_id"])
    assert strategy.budget == Decimal("55.50") and strategy.job_id == job.pk
    assert strategy.created_by == mona and strategy.expected_cost <= 55.5 + 1e-6
    event = AuditEvent.objects.get(verb=AuditVerb.STRATEGY_PROPOSED)
    assert event.actor == mona and event.data["strategy"] == strategy.pk


def test_proposing_needs_a_scored_champion_that_knows_the_coupons(scored, merchant_a):
    campaign = make_campaign(scored)
    CouponType.objects.create(
        merchant=merchant_a, code="NEW5", name="new", kind="amount_off", value=5
    )
    new = make_campaign(scored, codes=["NEW5"])
    with pytest.raises(ValidationError, match="not trained on NEW5"):
        strategy_propose(campaign=new, actor=None)
    scored.version.score_chunks.all().delete()
    type(scored.version).objects.filter(pk=scored.version.pk).update(scored_at=None)
    with pytest.raises(ValidationError, match="has not scored"):
        strategy_propose(campaign=campaign, actor=None)
    type(scored.version).objects.filter(pk=scored.version.pk).update(is_champion=False)
    with pytest.raises(ValidationError, match="no champion"):
        strategy_propose(campaign=campaign, actor=None)
    assert not Job.objects.exists()


def test_a_campaign_changed_meanwhile_does_not_get_a_stale_strategy(scored):
    campaign = make_campaign(scored)

    def edit_midway(progress, message):
        if progress == 55:  # someone changes the budget while the job computes
            campaign_update(campaign=campaign, actor=None, budget=Decimal("1"))

    with pytest.raises(StrategyError, match="changed while"):
        strategy_compute(campaign=campaign, version=scored.version, report=edit_midway)
    assert not Strategy.objects.exists()


# --- the randomization, on its own ------------------------------------------------------------


def test_hash_uniform_is_fixed_by_salt_and_id_and_looks_uniform():
    ids = np.arange(1, 100_001, dtype=np.int64)
    u = hash_uniform(ids, salt="a")
    assert np.array_equal(u, hash_uniform(ids, salt="a"))
    assert not np.array_equal(u, hash_uniform(ids, salt="b"))
    assert np.all((u >= 0) & (u < 1))
    histogram = np.bincount((u * 10).astype(int), minlength=10)
    assert np.all(np.abs(histogram - 10_000) < 5 * np.sqrt(10_000 * 0.9))
    # consecutive ids are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 400), min_size=1, max_size=5),
    share=st.floats(0.0, 0.5),
    salt=st.text(min_size=1, max_size=8),
    sticky_share=st.floats(0, 0.3),
)
def test_the_holdout_keeps_its_share_in_every_stratum_and_keeps_sticky_customers(
    sizes, share, salt, sticky_share
):
    strata = np.repeat(np.arange(len(sizes)), sizes)
    ids = np.arange(strata.size, dtype=np.int64) * 7 + 1000
    uniform = hash_uniform(ids, salt=salt)
    sticky = uniform > 1 - sticky_share
    held = stratified_holdout(uniform=uniform, strata=strata, share=share, sticky=sticky)
    assert np.all(held[sticky])
    for s, size in enumerate(sizes):
        mine = strata == s
        target = np.floor(share * size + 0.5)
        assert held[mine].sum() == max(target, sticky[mine].sum())
    fresh = stratified_holdout(uniform=uniform, strata=strata, share=share)
    # without sticky customers the overall share is within rounding of the target
    assert abs(fresh.sum() - share * strata.size) <= 0.5 * len(sizes) + 1e-9


@settings(max_examples=30, deadline=None)
@given(share=st.floats(0.05, 0.5), salt=st.text(min_size=1, max_size=8))
def test_the_holdout_share_is_random_with_respect_to_customers(share, salt):
    # The held-out customers are a random sample: their mean id is the population's, within
    # sampling error (5 standard errors, with the finite-population correction).
    ids = np.arange(20_000, dtype=np.int64)
    held = stratified_holdout(uniform=hash_uniform(ids, salt=salt), strata=ids % 3, share=share)
    k = held.sum()
    se = ids.std() / np.sqrt(k) * np.sqrt(1 - k / ids.size)
    assert abs(ids[held].mean() - ids.mean()) < 5 * se


def test_exploration_draws_and_the_affordable_prefix():
    rng = np.random.default_rng(0)
    candidates = np.zeros(100, dtype=bool)
    candidates[::2] = True
    rows, arms = exploration_draw(candidates=candidates, count=20, n_arms=3, rng=rng)
    assert rows.size == 20 and np.all(candidates[rows]) and np.unique(rows).size == 20
    assert set(arms) <= {0, 1, 2}
    spend = np.array([0.0, 5.0, 5.0, 0.0, 5.0])
    arms = np.array([0, 1, 2, 0, 1])
    assert affordable_prefix(spend=spend, arms=arms, budget=10, caps=[None, None]) == 4
    assert affordable_prefix(spend=spend, arms=arms, budget=100, caps=[1, None]) == 4
    assert affordable_prefix(spend=spend, arms=arms, budget=100, caps=[None, None]) == 5
    assert affordable_prefix(spend=spend, arms=arms, budget=0, caps=[None, None]) == 1
