"""Applying strategies: one assignment per eligible customer with unique, unguessable codes,
once; sticky holdout across rollbacks; roles and tenancy in the API; filters, pagination and a
formula-safe CSV export; the management commands; and one run on a trained model."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns import assignments as assignments_module
from campaigns.assignments import (
    campaigns_complete_ended,
    strategy_apply,
    strategy_apply_enqueue,
    strategy_rollback,
)
from campaigns.choices import AuditVerb, CampaignStatus
from campaigns.codes import ALPHABET, CODE_LENGTH, generate_codes
from campaigns.models import (
    Assignment,
    AuditEvent,
    Campaign,
    CampaignHoldout,
    Customer,
    Strategy,
)
from campaigns.services import campaign_create, campaign_update
from campaigns.strategies import strategy_compute, strategy_propose
from tests.scored import scored_merchant

pytestmark = pytest.mark.django_db

CODE = re.compile(rf"^[{ALPHABET}]{{{CODE_LENGTH}}}$")


@pytest.fixture
def scored(merchant_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    return scored_merchant(merchant_a, customers=240, seed=2)


def make_campaign(scored, **fields) -> Campaign:
    start = timezone.now() + timedelta(days=1)
    values = {
        "name": "Summer",
        "budget": Decimal("300"),
        "starts_at": start,
        "ends_at": start + timedelta(days=7),
        **fields,
    }
    return campaign_create(
        merchant=scored.merchant,
        actor=None,
        coupon_types=["PCT10", "AMT20", "SPEND199_30"],
        **values,
    )


def propose(scored, campaign, **kwargs) -> Strategy:
    return strategy_compute(campaign=campaign, version=scored.version, **kwargs)


def choices(strategy):
    table = pq.read_table(strategy.choices_path)
    return {name: table.column(name).to_numpy() for name in table.column_names}


# --- codes --------------------------------------------------------------------------------------


def test_codes_are_unique_unambiguous_and_carry_the_prefix():
    codes = generate_codes(50_000)
    assert np.unique(codes).size == 50_000
    assert all(CODE.match(c) for c in codes[:1000])
    assert not set("".join(codes[:1000])) & set("01OIL")
    # every symbol about equally likely (rejection sampling, no modulo bias)
    counts = np.unique(np.array(list("".join(codes))), return_counts=True)[1]
    expected = 50_000 * CODE_LENGTH / len(ALPHABET)
    assert counts.size == len(ALPHABET)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    prefixed = generate_codes(3, prefix="SUMMER-")
    assert all(c.startswith("SUMMER-") and CODE.match(c[7:]) for c in prefixed)
    assert generate_codes(0).size == 0


# --- apply --------------------------------------------------------------------------------------


def test_apply_creates_one_assignment_per_eligible_customer(scored, mona):
    # given a proposed strategy with a code prefix
    campaign = make_campaign(scored, code_prefix="sum-", caps={"PCT10": 20})
    strategy = propose(scored, campaign)
    # when a manager applies it
    result = strategy_apply(strategy=strategy, actor=mona)
    # then every eligible customer has exactly one assignment, as the strategy decided
    assert result.created == 240 and not result.already_applied
    rows = Assignment.objects.filter(campaign=campaign)
    assert rows.count() == 240
    decided = choices(strategy)
    by_customer = dict(zip(decided["customer_id"].tolist(), decided["arm"].tolist(), strict=True))
    for a in rows.select_related("coupon_type"):
        arm = strategy.arms[by_customer[a.customer_id]]
        assert a.arm == arm
        if a.coupon_type_id:
            assert a.code.startswith("SUM-") and CODE.match(a.code[4:])
        else:
            assert a.code is None
        assert 0 < a.propensity <= 1
    coupons = rows.exclude(coupon_type=None)
    assert coupons.filter(coupon_type__code="PCT10").count() <= 20
    assert coupons.values("code").distinct().count() == coupons.count()
    assert rows.filter(kind="holdout").count() == strategy.holdout_customers
    assert not rows.filter(kind="holdout").exclude(coupon_type=None).exists()
    # and the holdout is remembered, the statuses move and the audit says who
    assert CampaignHoldout.objects.filter(campaign=campaign).count() == strategy.holdout_customers
    strategy.refresh_from_db()
    campaign.refresh_from_db()
    assert strategy.status == "applied" and strategy.applied_by == mona
    assert campaign.status == CampaignStatus.APPLIED
    event = AuditEvent.objects.get(verb=AuditVerb.STRATEGY_APPLIED)
    assert event.actor == mona and event.data["assignments"] == 240


def test_applying_twice_creates_nothing_twice(scored, mona):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    strategy_apply(strategy=strategy, actor=mona)
    codes = set(Assignment.objects.values_list("code", flat=True))
    again = strategy_apply(strategy=strategy, actor=mona)
    assert again.already_applied and again.created == 0
    assert set(Assignment.objects.values_list("code", flat=True)) == codes
    assert Assignment.objects.count() == 240
    assert strategy_apply_enqueue(strategy=strategy, actor=mona) is None
    assert AuditEvent.objects.filter(verb=AuditVerb.STRATEGY_APPLIED).count() == 1


def test_two_clicks_on_apply_queue_one_job(scored, mona):
    # The first job has not run yet (its transaction is still open): the second click gets it.
    strategy = propose(scored, make_campaign(scored))
    first = strategy_apply_enqueue(strategy=strategy, actor=mona)
    second = strategy_apply_enqueue(strategy=strategy, actor=mona)
    assert first is not None and second.pk == first.pk
    # the job runs in the language active when it was queued (the site's: no request here)
    assert first.kind == "apply" and first.params == {"strategy_id": strategy.pk, "language": "en"}


def test_a_second_strategy_waits_for_the_first_to_be_rolled_back(scored, mona):
    campaign = make_campaign(scored)
    first, second = propose(scored, campaign), propose(scored, campaign)
    strategy_apply(strategy=first, actor=mona)
    with pytest.raises(ValidationError, match=f"#{first.pk} of this campaign is applied"):
        strategy_apply(strategy=second, actor=mona)
    strategy_rollback(strategy=first, actor=mona)
    assert strategy_apply(strategy=second, actor=mona).created == 240


def test_a_code_someone_holds_already_is_drawn_again(scored, mona, monkeypatch):
    # given an existing assignment whose code the generator will draw first
    campaign = make_campaign(scored)
    strategy_apply(strategy=propose(scored, campaign), actor=mona)
    taken = Assignment.objects.exclude(code=None).first().code
    other = make_campaign(scored)
    strategy = propose(scored, other)
    real = assignments_module.generate_codes
    calls = []

    def first_one_collides(count, *, prefix=""):
        codes = real(count, prefix=prefix)
        if not calls:
            codes[0] = taken
        calls.append(count)
        return codes

    monkeypatch.setattr(assignments_module, "generate_codes", first_one_collides)
    # when the other campaign's strategy is applied
    result = strategy_apply(strategy=strategy, actor=mona)
    # then the colliding row got a fresh code in a second round, and no row is missing
    assert result.created == 240
    assert calls[1:] == [1]
    assert Assignment.objects.filter(code=taken).count() == 1
    assert Assignment.objects.filter(campaign=other).count() == 240


def test_rollback_before_the_start_deletes_the_assignments_and_keeps_the_holdout(scored, mona):
    campaign = make_campaign(scored, holdout_share=0.2)
    strategy = propose(scored, campaign)
    strategy_apply(strategy=strategy, actor=mona)
    held = set(Assignment.objects.filter(kind="holdout").values_list("customer_id", flat=True))
    # when a manager rolls it back
    strategy = strategy_rollback(strategy=strategy, actor=mona)
    # then
    assert strategy.status == "rolled_back" and strategy.rolled_back_by == mona
    assert not Assignment.objects.exists()
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.READY
    assert AuditEvent.objects.filter(verb=AuditVerb.STRATEGY_ROLLED_BACK, actor=mona).exists()
    # and a smaller holdout proposed afterwards still holds out everyone held out before
    campaign = campaign_update(campaign=campaign, actor=mona, holdout_share=0.05)
    again = propose(scored, campaign)
    rows = choices(again)
    assert held <= set(rows["customer_id"][rows["kind"] == 1].tolist())
    strategy_apply(strategy=again, actor=mona)
    assert held <= set(
        Assignment.objects.filter(kind="holdout").values_list("customer_id", flat=True)
    )


def test_a_rolled_back_strategy_can_be_applied_again(scored, mona):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    strategy_apply(strategy=strategy, actor=mona)
    strategy_rollback(strategy=strategy, actor=mona)
    assert strategy_apply(strategy=strategy, actor=mona).created == 240


def test_no_rollback_once_the_campaign_has_started(scored, mona):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    strategy_apply(strategy=strategy, actor=mona)
    later = campaign.starts_at + timedelta(minutes=1)
    with pytest.raises(ValidationError, match="can no longer be rolled back"):
        strategy_rollback(strategy=strategy, actor=mona, now=later)
    assert Assignment.objects.count() == 240


def test_stale_or_ended_strategies_are_not_applied(scored, mona):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    with pytest.raises(ValidationError, match="has ended"):
        strategy_apply(strategy=strategy, actor=mona, now=campaign.ends_at)
    campaign_update(campaign=campaign, actor=mona, budget=Decimal("10"))
    with pytest.raises(ValidationError, match="cannot be applied"):
        strategy_apply(strategy=strategy, actor=mona)
    assert not Assignment.objects.exists()


def test_customers_deleted_since_the_proposal_are_skipped(scored, mona):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    Customer.objects.filter(pk=int(scored.customer_ids[0])).delete()
    assert strategy_apply(strategy=strategy, actor=mona).created == 239


def test_applied_campaigns_complete_when_they_end(scored, mona):
    campaign = make_campaign(scored)
    strategy_apply(strategy=propose(scored, campaign), actor=mona)
    assert campaigns_complete_ended(now=campaign.ends_at - timedelta(seconds=1)) == 0
    assert campaigns_complete_ended(now=campaign.ends_at) == 1
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    with pytest.raises(ValidationError, match="ended"):
        strategy_propose(campaign=campaign, actor=mona)
    with pytest.raises(ValidationError, match="completed"):
        campaign_update(campaign=campaign, actor=mona, budget=Decimal("1"))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    budget=st.floats(0, 600),
    cap=st.integers(0, 30),
    holdout=st.floats(0, 0.4),
    exploration=st.floats(0, 0.4),
)
def test_applied_assignments_keep_the_strategy_invariants(
    scored, mona, budget, cap, holdout, exploration
):
    campaign = make_campaign(
        scored,
        budget=Decimal(str(round(budget, 2))),
        caps={"AMT20": cap},
        holdout_share=holdout,
        exploration_share=exploration,
    )
    strategy = propose(scored, campaign)
    strategy_apply(strategy=strategy, actor=mona)
    rows = Assignment.objects.filter(campaign=campaign)
    # one arm per customer at most, for every eligible customer
    assert rows.count() == rows.values("customer").distinct().count() == 240
    # the caps and the budget (on expected spend) hold for what was handed out
    assert rows.filter(coupon_type__code="AMT20").count() <= cap
    decided = choices(strategy)
    assert float(decided["expected_cost"].sum()) <= float(campaign.budget) + 1e-6
    # the holdout's share is the campaign's, within rounding per lifecycle segment
    assert abs(rows.filter(kind="holdout").count() - holdout * 240) <= 2.5
    assert not rows.filter(kind="holdout").exclude(coupon_type=None).exists()


# --- API ----------------------------------------------------------------------------------------


def _url(name, merchant="shop-a", **kwargs):
    return reverse(f"api:{name}", kwargs={"merchant": merchant, **kwargs})


def _run_jobs(capture, call):
    """Call the API; the jobs it queues run (eagerly) once its transaction commits."""
    with capture(execute=True):
        response = call()
    return response


def test_a_manager_proposes_reviews_applies_and_exports_through_the_api(
    scored, mona, api_for, django_capture_on_commit_callbacks
):
    client = api_for(mona)
    campaign = make_campaign(scored)
    # propose: a job; its result names the strategy
    response = _run_jobs(
        django_capture_on_commit_callbacks,
        lambda: client.post(
            _url("campaign-propose", campaign_id=campaign.pk), {"budget": "150"}, format="json"
        ),
    )
    assert response.status_code == 202, response.json()
    assert response.json()["kind"] == "propose"
    job = client.get(_url("job-detail", job_id=response.json()["id"])).json()
    assert job["status"] == "succeeded", job
    strategy_id = job["result"]["strategy_id"]
    # review
    listed = client.get(_url("strategy-list"), {"campaign": campaign.pk}).json()["results"]
    assert [s["id"] for s in listed] == [strategy_id] and "frontier" not in listed[0]
    detail = client.get(_url("strategy-detail", strategy_id=strategy_id)).json()
    assert detail["budget"] == "150.00" and detail["expected_cost"] <= 150 + 1e-6
    assert set(detail["frontier"]["curves"]) == {"model", "best_single_coupon", "random"}
    assert detail["segments"]["lifecycle"] and detail["model_version_number"] == 1
    assert detail["applicable"] is True
    # apply (a job), then apply again: 200 and nothing new
    response = _run_jobs(
        django_capture_on_commit_callbacks,
        lambda: client.post(_url("strategy-apply", strategy_id=strategy_id)),
    )
    assert response.status_code == 202, response.json()
    assert response.json()["job"]["kind"] == "apply"
    job = client.get(_url("job-detail", job_id=response.json()["job"]["id"])).json()
    assert job["status"] == "succeeded" and job["result"]["created"] == 240, job
    response = client.post(_url("strategy-apply", strategy_id=strategy_id))
    assert response.status_code == 200 and response.json()["job"] is None
    assert response.json()["strategy"]["status"] == "applied"
    assert response.json()["strategy"]["applicable"] is False
    assert Assignment.objects.count() == 240
    # an integrator looks up one customer's code
    one = Assignment.objects.exclude(code=None).select_related("customer").first()
    found = client.get(_url("assignment-list"), {"customer": one.customer.external_id}).json()
    assert [(r["customer_id"], r["code"]) for r in found["results"]] == [
        (one.customer.external_id, one.code)
    ]
    # and rolls back before the start
    response = client.post(_url("strategy-rollback", strategy_id=strategy_id))
    assert response.status_code == 200 and response.json()["status"] == "rolled_back"
    assert not Assignment.objects.exists()


def test_applying_an_ended_campaigns_strategy_answers_400(scored, mona, api_for):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    Campaign.objects.filter(pk=campaign.pk).update(
        starts_at=timezone.now() - timedelta(days=9), ends_at=timezone.now() - timedelta(days=1)
    )
    response = api_for(mona).post(_url("strategy-apply", strategy_id=strategy.pk))
    assert response.status_code == 400 and "ended" in str(response.json())


def test_viewers_cannot_propose_apply_or_roll_back(scored, vera, api_for):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    client = api_for(vera)
    assert client.post(_url("campaign-propose", campaign_id=campaign.pk)).status_code == 403
    assert client.post(_url("strategy-apply", strategy_id=strategy.pk)).status_code == 403
    assert client.post(_url("strategy-rollback", strategy_id=strategy.pk)).status_code == 403
    assert client.get(_url("strategy-detail", strategy_id=strategy.pk)).status_code == 200
    assert not Assignment.objects.exists()


def test_another_merchants_strategies_and_assignments_stay_hidden(
    scored, mona, merchant_b, bob, api_for
):
    campaign = make_campaign(scored)
    strategy = propose(scored, campaign)
    strategy_apply(strategy=strategy, actor=mona)
    client = api_for(bob)
    assert client.get(_url("strategy-detail", "shop-b", strategy_id=strategy.pk)).status_code == 404
    assert client.post(_url("strategy-apply", "shop-b", strategy_id=strategy.pk)).status_code == 404
    assert client.get(_url("strategy-detail", strategy_id=strategy.pk)).status_code == 404
    assert client.get(_url("assignment-list", "shop-b")).json()["results"] == []
    body = b"".join(client.get(_url("assignment-export", "shop-b")).streaming_content)
    assert body.decode("utf-8-sig").count("\n") == 1  # the header only
    assert client.get(_url("assignment-list")).status_code == 404


def test_assignments_filter_and_page(scored, mona, vera, api_for):
    campaign = make_campaign(scored, holdout_share=0.2)
    strategy = propose(scored, campaign)
    strategy_apply(strategy=strategy, actor=mona)
    client = api_for(vera)
    held = client.get(_url("assignment-list"), {"kind": "holdout", "page_size": 1000}).json()
    assert len(held["results"]) == strategy.holdout_customers
    assert all(r["kind"] == "holdout" and r["arm"] == "control" for r in held["results"])
    code = Assignment.objects.exclude(code=None).first().code
    by_code = client.get(_url("assignment-list"), {"code": code.lower()}).json()["results"]
    assert [r["code"] for r in by_code] == [code]
    pct = client.get(_url("assignment-list"), {"coupon_type": "PCT10", "page_size": 1000})
    assert {r["arm"] for r in pct.json()["results"]} <= {"PCT10"}
    # cursor pages: every row once
    seen, url, params = [], _url("assignment-list"), {"campaign": campaign.pk, "page_size": 100}
    while url:
        page = client.get(url, params).json()
        seen += [r["id"] for r in page["results"]]
        url, params = page["next"], None
    assert len(seen) == len(set(seen)) == 240
    assert client.get(_url("assignment-list"), {"kind": "bogus"}).status_code == 400
    assert client.get(_url("assignment-list"), {"campaign": "x"}).status_code == 400


def test_the_csv_export_streams_and_is_safe_in_a_spreadsheet(scored, mona, vera, api_for):
    # given a customer whose shop id a spreadsheet would run as a formula
    first = Customer.objects.get(pk=int(scored.customer_ids[0]))
    first.external_id = '=HYPERLINK("http://evil.test","x")'
    first.save()
    campaign = make_campaign(scored)
    strategy_apply(strategy=propose(scored, campaign), actor=mona)
    # when a viewer exports
    response = api_for(vera).get(_url("assignment-export"), {"campaign": campaign.pk})
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    # then the header, one row per assignment, and the formula neutralized
    assert rows[0][:5] == ["campaign_id", "campaign", "strategy_id", "customer_id", "kind"]
    assert len(rows) == 241
    customers = [r[3] for r in rows[1:]]
    assert '\'=HYPERLINK("http://evil.test","x")' in customers
    assert not any(c.startswith("=") for c in customers)
    codes = [r[6] for r in rows[1:] if r[5] != "control"]
    assert codes and all(CODE.match(c) for c in codes)
    only_holdout = api_for(vera).get(_url("assignment-export"), {"kind": "holdout"})
    text = b"".join(only_holdout.streaming_content).decode("utf-8-sig")
    assert {r[4] for r in list(csv.reader(io.StringIO(text)))[1:]} == {"holdout"}
    csv_accepted = api_for(vera).get(_url("assignment-export"), HTTP_ACCEPT="text/csv")
    assert csv_accepted.status_code == 200


# --- commands -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the commands' jobs run on commit, as in a shell
def test_the_commands_create_propose_apply_and_export(scored, mona, tmp_path):
    out = io.StringIO()
    call_command(
        "create_campaign",
        "--merchant=shop-a",
        "--user=mona",
        "--name=Autumn",
        "--coupons=PCT10,AMT20",
        "--budget=250",
        "--cap=AMT20=15",
        "--prefix=AUT",
        "--audience",
        '{"lifecycle": ["active", "new", "lapsing", "lost", "prospect"]}',
        stdout=out,
    )
    campaign = Campaign.objects.get(name="Autumn")
    assert f"Campaign #{campaign.pk}" in out.getvalue()
    assert campaign.caps == {"AMT20": 15} and campaign.created_by == mona
    out = io.StringIO()
    call_command(
        "propose_strategy",
        "--merchant=shop-a",
        f"--campaign={campaign.pk}",
        "--user=mona",
        stdout=out,
        stderr=io.StringIO(),
    )
    strategy = Strategy.objects.get(campaign=campaign)
    text = out.getvalue()
    assert f"Strategy #{strategy.pk}" in text and "expected incr. profit" in text
    assert f"{strategy.expected_profit:,.2f}" in text
    out = io.StringIO()
    call_command(
        "apply_strategy",
        "--merchant=shop-a",
        f"--strategy={strategy.pk}",
        "--user=mona",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "240 assignments" in out.getvalue()
    assert Assignment.objects.filter(campaign=campaign).count() == 240
    target = tmp_path / "assignments.csv"
    out = io.StringIO()
    call_command(
        "export_assignments",
        "--merchant=shop-a",
        f"--campaign={campaign.pk}",
        f"--output={target}",
        stdout=out,
    )
    assert "240 assignments written" in out.getvalue()
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 241 and all(r[6].startswith("AUT") for r in rows[1:] if r[6])
    stdout = io.StringIO()
    call_command("export_assignments", "--merchant=shop-a", "--kind=holdout", stdout=stdout)
    assert stdout.getvalue().lstrip("\ufeff").startswith("campaign_id,")


def test_the_commands_refuse_viewers_and_unknown_objects(scored, vera):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a manager"):
        call_command(
            "create_campaign",
            "--merchant=shop-a",
            "--user=vera",
            "--name=x",
            "--coupons=PCT10",
            "--budget=1",
        )
    with pytest.raises(CommandError, match="no campaign #999"):
        call_command("propose_strategy", "--merchant=shop-a", "--campaign=999")
    with pytest.raises(CommandError, match="coupon_types"):
        call_command(
            "create_campaign", "--merchant=shop-a", "--name=x", "--coupons=NOPE", "--budget=1"
        )


# --- end to end on a trained model --------------------------------------------------------------


@pytest.mark.heavy_ml
def test_a_trained_and_scored_model_gives_a_strategy_that_applies_and_exports(
    settings, tmp_path, mona, api_for, django_capture_on_commit_callbacks
):
    from campaigns.models import Membership, Merchant
    from campaigns.simulated import merchant_load_simulation
    from modeling.scoring_service import model_version_score, model_version_scores
    from modeling.training_service import model_version_train

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    merchant = Merchant.objects.create(name="Sim", slug="sim-e2e")
    Membership.objects.create(user=mona, merchant=merchant, role="manager")
    merchant_load_simulation(merchant=merchant, customers=400, seed=11, report=lambda _: None)
    with django_capture_on_commit_callbacks(execute=True):
        version = model_version_train(merchant=merchant, actor=None, epochs=1)
    version.refresh_from_db()
    assert version.status == "ready", version.error
    with django_capture_on_commit_callbacks(execute=True):
        model_version_score(version=version, actor=None, chunk_size=150)
    scores = model_version_scores(version=version)  # scoring wrote each lifecycle segment
    assert scores.lifecycle is not None and scores.lifecycle.shape == (400,)
    assert set(np.unique(scores.lifecycle)) <= set(range(5))
    client = api_for(mona)
    start = timezone.now() + timedelta(days=1)
    response = client.post(
        _url("campaign-list", "sim-e2e"),
        {
            "name": "Launch",
            "coupon_types": ["PCT10", "AMT20", "FREESHIP"],
            "budget": "400",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=7)).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    campaign = response.json()
    assert float(campaign["average_order_value"]) > 0  # from the simulated orders
    queued = _run_jobs(
        django_capture_on_commit_callbacks,
        lambda: client.post(_url("campaign-propose", "sim-e2e", campaign_id=campaign["id"])),
    ).json()
    job = client.get(_url("job-detail", "sim-e2e", job_id=queued["id"])).json()
    assert job["status"] == "succeeded", job
    strategy = client.get(
        _url("strategy-detail", "sim-e2e", strategy_id=job["result"]["strategy_id"])
    ).json()
    assert strategy["eligible_customers"] == 400
    assert 0 <= strategy["expected_cost"] <= 400 + 1e-6
    assert strategy["holdout_customers"] == pytest.approx(40, abs=3)
    assert sum(r["customers"] for r in strategy["segments"]["lifecycle"]) == 400
    applied = _run_jobs(
        django_capture_on_commit_callbacks,
        lambda: client.post(_url("strategy-apply", "sim-e2e", strategy_id=strategy["id"])),
    )
    assert applied.status_code == 202
    job = client.get(_url("job-detail", "sim-e2e", job_id=applied.json()["job"]["id"])).json()
    assert job["status"] == "succeeded", job
    export = client.get(_url("assignment-export", "sim-e2e"), {"campaign": campaign["id"]})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 401
    # a code for every customer given a coupon, by the model or by exploration
    assert sum(1 for r in rows[1:] if r[6]) == strategy["treated_customers"]
