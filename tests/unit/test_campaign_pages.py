"""Coupon type, campaign and strategy pages: they render for every role, their forms validate and
say why, viewers see no control that changes data and are refused, propose and apply run as jobs
the pages follow to the strategy, and no page's query count grows with the data."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import CampaignStatus, StrategyStatus
from campaigns.models import Assignment, Campaign, CouponType, Customer, Strategy
from campaigns.services import campaign_create
from campaigns.strategies import strategy_compute
from campaigns.templatetags.portal import money
from tests.factories import CampaignFactory, CouponTypeFactory, StrategyFactory
from tests.scored import scored_merchant

pytestmark = pytest.mark.django_db

SUBMIT = re.compile(rb'type="submit"')
# The navigation bar's language switch is the user's own setting, open to every role.
LANGUAGE_SWITCH = re.compile(rb'<li[^>]*data-testid="language-switch".*?</li>', re.S)


def submit_buttons(content: bytes) -> int:
    return len(SUBMIT.findall(LANGUAGE_SWITCH.sub(b"", content)))


def url(name: str, merchant, **kwargs) -> str:
    return reverse(f"promo:{name}", kwargs={"merchant": merchant.slug, **kwargs})


@pytest.fixture
def scored(merchant_a, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    return scored_merchant(merchant_a, customers=200, seed=2)


def make_campaign(merchant, **fields) -> Campaign:
    start = timezone.now() + timedelta(days=1)
    values = {
        "name": "Spring",
        "budget": Decimal("300"),
        "starts_at": start,
        "ends_at": start + timedelta(days=7),
        **fields,
    }
    codes = values.pop("codes", ["PCT10", "AMT20", "SPEND199_30"])
    return campaign_create(merchant=merchant, actor=None, coupon_types=codes, **values)


@pytest.fixture
def proposed(scored) -> Strategy:
    campaign = make_campaign(scored.merchant, holdout_share=0.1, exploration_share=0.05)
    return strategy_compute(campaign=campaign, version=scored.version)


def campaign_post(**overrides) -> dict:
    start = timezone.localtime() + timedelta(days=2)
    data = {
        "name": "Autumn",
        "goal": "profit",
        "coupon_types": ["PCT10", "AMT20"],
        "budget": "500",
        "cap_PCT10": "40",
        "cap_AMT20": "",
        "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (start + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M"),
        "lifecycle": ["active", "lapsing"],
        "min_uplift": "1",
        "max_uplift": "",
        "attributes": "",
        "holdout_percent": "10",
        "exploration_percent": "5",
        "margin_percent": "30",
        "average_order_value": "150",
        "code_prefix": "aut-",
    }
    data.update(overrides)
    return data


# --- every page, every role ----------------------------------------------------------------------


def page_urls(merchant, strategy: Strategy) -> list[str]:
    campaign = strategy.campaign
    coupon = campaign.coupon_types.first()
    return [
        url("coupons", merchant),
        url("coupon-create", merchant),
        url("coupon-edit", merchant, coupon_type_id=coupon.pk),
        url("campaigns", merchant),
        url("campaign-create", merchant),
        url("campaign", merchant, campaign_id=campaign.pk),
        url("campaign-edit", merchant, campaign_id=campaign.pk),
        url("strategy", merchant, strategy_id=strategy.pk),
    ]


def test_every_page_renders_for_managers_with_controls_and_for_viewers_without(
    proposed, merchant_a, mona, vera, client_for
):
    manager, viewer = client_for(mona), client_for(vera)
    for page in page_urls(merchant_a, proposed):
        as_manager = manager.get(page)
        as_viewer = viewer.get(page)
        assert as_manager.status_code == 200, page
        assert as_viewer.status_code == 200, page
        # the only button a viewer gets is "Sign out" in the navigation bar
        assert submit_buttons(as_viewer.content) == 1, page
        assert b'data-testid="new-' not in as_viewer.content, page
        manager_controls = submit_buttons(as_manager.content) > 1
        assert manager_controls or b'data-testid="new-' in as_manager.content, page
        assert b"csrfmiddlewaretoken" in as_manager.content, page


def test_the_navigation_bar_links_campaigns_and_coupons(merchant_a, vera, client_for):
    response = client_for(vera).get(reverse("campaigns:home", kwargs={"merchant": "shop-a"}))
    assert url("campaigns", merchant_a).encode() in response.content
    assert url("coupons", merchant_a).encode() in response.content


def test_viewers_are_refused_every_change(proposed, merchant_a, vera, client_for):
    client = client_for(vera)
    campaign = proposed.campaign
    coupon = campaign.coupon_types.first()
    posts = [
        (url("coupon-create", merchant_a), {"code": "X1", "name": "x", "kind": "amount_off"}),
        (url("coupon-edit", merchant_a, coupon_type_id=coupon.pk), {"name": "x"}),
        (url("coupon-archive", merchant_a, coupon_type_id=coupon.pk), {}),
        (url("campaign-create", merchant_a), campaign_post()),
        (url("campaign-edit", merchant_a, campaign_id=campaign.pk), campaign_post()),
        (url("campaign-delete", merchant_a, campaign_id=campaign.pk), {}),
        (url("campaign-propose", merchant_a, campaign_id=campaign.pk), {"budget": "10"}),
        (url("strategy-apply", merchant_a, strategy_id=proposed.pk), {}),
        (url("strategy-rollback", merchant_a, strategy_id=proposed.pk), {}),
    ]
    for target, data in posts:
        assert client.post(target, data).status_code == 403, target
    assert CouponType.objects.get(pk=coupon.pk).active
    assert Campaign.objects.filter(pk=campaign.pk).exists()
    assert not Assignment.objects.exists()


# --- coupon types --------------------------------------------------------------------------------


def test_a_coupon_type_is_created_edited_archived_and_restored(merchant_a, mona, client_for):
    client = client_for(mona)
    # create
    response = client.post(
        url("coupon-create", merchant_a),
        {
            "code": "pct15",
            "name": "15% off",
            "kind": "percent_off",
            "value": "15",
            "min_spend": "0",
            "fixed_cost": "0",
            "validity_days": "7",
            "per_customer_limit": "1",
        },
    )
    assert response.status_code == 302
    coupon = CouponType.objects.get(merchant=merchant_a, code="PCT15")
    # edit: the code stays
    response = client.post(
        url("coupon-edit", merchant_a, coupon_type_id=coupon.pk),
        {
            "code": "OTHER",
            "name": "Fifteen off",
            "kind": "percent_off",
            "value": "15",
            "min_spend": "0",
            "fixed_cost": "1.5",
            "validity_days": "14",
            "per_customer_limit": "1",
        },
    )
    assert response.status_code == 302
    coupon.refresh_from_db()
    assert (coupon.code, coupon.name, coupon.fixed_cost) == ("PCT15", "Fifteen off", Decimal("1.5"))
    # archive, then restore
    client.post(url("coupon-archive", merchant_a, coupon_type_id=coupon.pk))
    coupon.refresh_from_db()
    assert not coupon.active
    listing = client.get(url("coupons", merchant_a)).content.decode()
    assert "Archived" in listing and 'data-testid="restore-coupon"' in listing
    client.post(url("coupon-archive", merchant_a, coupon_type_id=coupon.pk), {"restore": "1"})
    coupon.refresh_from_db()
    assert coupon.active


def test_the_coupon_form_says_what_is_wrong(merchant_a, mona, client_for):
    CouponTypeFactory(merchant=merchant_a, code="PCT10")
    client = client_for(mona)
    base = {
        "name": "x",
        "kind": "percent_off",
        "min_spend": "0",
        "fixed_cost": "0",
        "validity_days": "7",
        "per_customer_limit": "1",
    }
    response = client.post(
        url("coupon-create", merchant_a), {**base, "code": "a b", "value": "150"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "code" in errors
    assert "is-invalid" in response.content.decode()
    duplicate = client.post(
        url("coupon-create", merchant_a), {**base, "code": "pct10", "value": "5"}
    )
    assert duplicate.status_code == 200
    assert duplicate.context["form"].errors
    assert CouponType.objects.filter(merchant=merchant_a).count() == 1


# --- campaigns -----------------------------------------------------------------------------------


def test_the_builder_creates_a_campaign_with_every_setting(scored, mona, client_for):
    merchant = scored.merchant
    response = client_for(mona).post(url("campaign-create", merchant), campaign_post())
    campaign = Campaign.objects.get(merchant=merchant, name="Autumn")
    assert response.status_code == 302
    assert response["Location"] == url("campaign", merchant, campaign_id=campaign.pk)
    assert sorted(campaign.coupon_types.values_list("code", flat=True)) == ["AMT20", "PCT10"]
    assert campaign.caps == {"PCT10": 40}
    assert campaign.audience == {"lifecycle": ["active", "lapsing"], "min_uplift": 0.01}
    assert (campaign.holdout_share, campaign.exploration_share, campaign.margin_rate) == (
        0.1,
        0.05,
        0.3,
    )
    assert campaign.average_order_value == Decimal("150")
    assert campaign.code_prefix == "AUT-"
    assert campaign.status == CampaignStatus.DRAFT


def test_the_builder_says_what_is_wrong(scored, mona, client_for):
    client = client_for(mona)
    start = timezone.localtime() + timedelta(days=2)
    bad = campaign_post(
        coupon_types=[],
        ends_at=(start - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        starts_at=start.strftime("%Y-%m-%dT%H:%M"),
        holdout_percent="60",
        exploration_percent="50",
        code_prefix="bad prefix!",
        attributes="[1, 2]",
    )
    response = client.post(url("campaign-create", scored.merchant), bad)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"coupon_types", "ends_at", "exploration_percent", "attributes"} <= set(errors)
    assert "The campaign must end after it starts." in response.content.decode()
    # a problem only the service finds (the prefix's pattern) lands on its field too
    response = client.post(
        url("campaign-create", scored.merchant), campaign_post(code_prefix="bad prefix!")
    )
    assert response.status_code == 200
    assert "code_prefix" in response.context["form"].errors
    assert not Campaign.objects.filter(merchant=scored.merchant).exists()


def test_the_builder_defaults_the_average_order_value_from_the_data(scored, mona, client_for):
    response = client_for(mona).get(url("campaign-create", scored.merchant))
    form = response.context["form"]
    assert "average_order_value" in form.initial
    assert form.initial["starts_at"] < form.initial["ends_at"]


def test_editing_a_campaign_supersedes_its_proposals(proposed, merchant_a, mona, client_for):
    campaign = proposed.campaign
    data = campaign_post(name="Spring v2", budget="450")
    data["coupon_types"] = ["AMT20", "PCT10", "SPEND199_30"]
    response = client_for(mona).post(
        url("campaign-edit", merchant_a, campaign_id=campaign.pk), data
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    proposed.refresh_from_db()
    assert (campaign.name, campaign.budget) == ("Spring v2", Decimal("450"))
    assert proposed.status == StrategyStatus.SUPERSEDED


def test_drafts_are_deleted_but_campaigns_that_went_out_are_kept(
    proposed, merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    draft = CampaignFactory(merchant=merchant_a)
    page = client.get(url("campaign", merchant_a, campaign_id=draft.pk)).content.decode()
    assert 'data-testid="delete-campaign"' in page
    assert client.post(url("campaign-delete", merchant_a, campaign_id=draft.pk)).status_code == 302
    assert not Campaign.objects.filter(pk=draft.pk).exists()
    # once applied, the campaign stays
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("strategy-apply", merchant_a, strategy_id=proposed.pk))
    campaign = proposed.campaign
    page = client.get(url("campaign", merchant_a, campaign_id=campaign.pk)).content.decode()
    assert 'data-testid="delete-campaign"' not in page
    client.post(url("campaign-delete", merchant_a, campaign_id=campaign.pk))
    assert Campaign.objects.filter(pk=campaign.pk).exists()


# --- strategies ----------------------------------------------------------------------------------


def test_the_strategy_page_shows_the_frontier_with_its_baselines_and_the_numbers(
    proposed, merchant_a, vera, client_for
):
    response = client_for(vera).get(url("strategy", merchant_a, strategy_id=proposed.pk))
    html = response.content.decode()
    assert 'id="frontier-chart" data-plotly-figure="frontier-data"' in html
    assert "vendor/plotly/plotly.min.js" in html and "js/charts.js" in html
    figure = json.loads(
        re.search(r'<script id="frontier-data" type="application/json">(.*?)</script>', html)[1]
    )
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["Uplift model", "Best single coupon", "Random targeting", "Chosen budget"]
    model = proposed.frontier["curves"]["model"]
    assert figure["data"][0]["y"] == [y for y in model["profit"] if y is not None]
    assert "CNY" in figure["layout"]["xaxis"]["title"]["text"]
    assert figure["layout"]["colorway"][0] == "#0072B2"
    assert 'data-plotly-figure="allocation-data"' in html
    assert 'data-testid="allocation-by-coupon"' in html
    assert 'data-testid="allocation-by-segment"' in html
    for amount in (proposed.expected_revenue, proposed.expected_cost, proposed.expected_profit):
        assert money(amount, "CNY") in html  # "CNY 1,234.56"


def test_the_apply_confirmation_says_exactly_what_happens(proposed, merchant_a, mona, client_for):
    html = client_for(mona).get(url("strategy", merchant_a, strategy_id=proposed.pk))
    html = html.content.decode()
    text = re.sub(r"\s+", " ", html[html.index('data-testid="apply-confirmation"') :])
    counts = proposed.counts
    for code in proposed.arms[1:]:
        total = sum(counts[kind].get(code, 0) for kind in counts)
        assert f"{total} customers get coupon {code}" in text or (
            total == 1 and f"1 customer gets coupon {code}" in text
        )
    assert f"{proposed.holdout_customers} customers are held out" in text
    assert f"{proposed.exploration_customers} customers explore" in text
    assert "A unique coupon code is generated" in text
    assert "You can roll this back until the campaign starts on" in text


def test_propose_then_apply_then_download_then_roll_back(
    proposed, merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    campaign = proposed.campaign
    # a new budget: a propose job, whose page goes on to the new strategy when done
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url("campaign-propose", merchant_a, campaign_id=campaign.pk), {"budget": "120"}
        )
    assert response.status_code == 302
    job_page = client.get(response["Location"])
    newest = Strategy.objects.filter(campaign=campaign).latest("id")
    assert newest.budget == Decimal("120")
    assert job_page.status_code == 302
    assert job_page["Location"] == url("strategy", merchant_a, strategy_id=newest.pk)
    # apply it: another job, then the strategy page with the download and the rollback
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("strategy-apply", merchant_a, strategy_id=newest.pk))
    assert client.get(response["Location"])["Location"] == url(
        "strategy", merchant_a, strategy_id=newest.pk
    )
    newest.refresh_from_db()
    assert newest.status == StrategyStatus.APPLIED
    page = client.get(url("strategy", merchant_a, strategy_id=newest.pk)).content.decode()
    assert 'data-testid="download-assignments"' in page
    assert 'data-testid="rollback-strategy"' in page
    assert 'data-testid="apply-strategy"' not in page
    download = client.get(url("strategy-assignments", merchant_a, strategy_id=newest.pk))
    lines = b"".join(download.streaming_content).decode("utf-8-sig").strip().splitlines()
    assert lines[0].startswith("campaign_id,campaign,strategy_id,customer_id")
    assert len(lines) - 1 == Assignment.objects.filter(strategy=newest).count() > 0
    # roll back
    client.post(url("strategy-rollback", merchant_a, strategy_id=newest.pk))
    newest.refresh_from_db()
    assert newest.status == StrategyStatus.ROLLED_BACK
    assert not Assignment.objects.filter(strategy=newest).exists()


def test_a_failing_proposal_shows_a_readable_error(merchant_a, mona, client_for):
    campaign = CampaignFactory(merchant=merchant_a)  # no champion model yet
    response = client_for(mona).post(
        url("campaign-propose", merchant_a, campaign_id=campaign.pk), {"budget": "10"}, follow=True
    )
    assert "There is no champion model yet" in response.content.decode()


def test_the_job_page_follows_a_running_job(merchant_a, vera, client_for, job_factory):
    campaign = CampaignFactory(merchant=merchant_a)
    job = job_factory(merchant=merchant_a, kind="propose", status="running", progress=40)
    html = (
        client_for(vera)
        .get(url("campaign-job", merchant_a, campaign_id=campaign.pk, job_id=job.pk))
        .content.decode()
    )
    assert f'id="job-progress-{job.pk}"' in html and 'hx-trigger="every 1s"' in html
    failed = job_factory(merchant=merchant_a, kind="propose", status="failed", message="No scores")
    html = (
        client_for(vera)
        .get(url("campaign-job", merchant_a, campaign_id=campaign.pk, job_id=failed.pk))
        .content.decode()
    )
    assert 'data-testid="job-error"' in html and "No scores" in html


# --- queries do not grow with the data -----------------------------------------------------------


def count_queries(client, target: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(target)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(queries)


def test_list_pages_take_the_same_queries_for_5_and_50_rows(merchant_a, vera, client_for):
    client = client_for(vera)
    coupons = [CouponTypeFactory(merchant=merchant_a, code=f"C{i}") for i in range(5)]
    for _ in range(5):
        CampaignFactory(merchant=merchant_a, coupon_types=coupons[:2])
        StrategyFactory(campaign=Campaign.objects.filter(merchant=merchant_a).first())
    pages = [url("coupons", merchant_a), url("campaigns", merchant_a)]
    few = [count_queries(client, page) for page in pages]
    coupons += [CouponTypeFactory(merchant=merchant_a, code=f"D{i}") for i in range(45)]
    for i in range(20):  # the list shows 25 a page: fill it
        CampaignFactory(merchant=merchant_a, coupon_types=coupons[i : i + 3])
    many = [count_queries(client, page) for page in pages]
    assert few == many


def test_campaign_and_strategy_pages_and_the_download_do_not_grow_with_assignments(
    merchant_a, vera, client_for
):
    client = client_for(vera)
    strategy = StrategyFactory(campaign__merchant=merchant_a, status=StrategyStatus.APPLIED)
    campaign = strategy.campaign
    coupon = campaign.coupon_types.first()

    def add_assignments(start: int, n: int) -> None:
        customers = Customer.objects.bulk_create(
            Customer(merchant=merchant_a, external_id=f"X{i}") for i in range(start, start + n)
        )
        Assignment.objects.bulk_create(
            Assignment(
                merchant=merchant_a,
                campaign=campaign,
                strategy=strategy,
                customer=customer,
                coupon_type=coupon,
                kind="treatment",
                code=f"CODE{customer.external_id}",
                propensity=0.5,
                assigned_at=timezone.now(),
            )
            for customer in customers
        )

    pages = [
        url("campaign", merchant_a, campaign_id=campaign.pk),
        url("strategy", merchant_a, strategy_id=strategy.pk),
        url("strategy-assignments", merchant_a, strategy_id=strategy.pk),
    ]
    add_assignments(0, 5)
    few = [count_queries(client, page) for page in pages]
    add_assignments(5, 45)
    StrategyFactory(campaign=campaign)  # and one more strategy in the campaign's table
    many = [count_queries(client, page) for page in pages]
    assert few == many


def test_amounts_show_in_the_merchants_currency():
    assert money(Decimal("1234.5"), "CNY") == "CNY 1,234.50"
    assert money(1234.4, "JPY") == "JPY 1,234"
    assert money(None, "CNY") == ""
