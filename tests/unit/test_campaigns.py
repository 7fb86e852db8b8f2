"""Campaigns: defaults from the data, validation with clear field errors, database invariants,
changes that make proposed strategies stale, and the API with its roles."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import AuditVerb, CampaignStatus, StrategyStatus
from campaigns.models import AuditEvent, Campaign, CouponType, Customer, TreatmentLog
from campaigns.selectors import merchant_average_order_value
from campaigns.services import campaign_create, campaign_update
from tests.factories import CampaignFactory, CouponTypeFactory, StrategyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def coupons(merchant_a):
    return [
        CouponTypeFactory(merchant=merchant_a, code="PCT10", kind="percent_off", value=10),
        CouponTypeFactory(merchant=merchant_a, code="AMT20", kind="amount_off", value=20),
    ]


def _fields(**overrides):
    start = timezone.now() + timedelta(days=2)
    fields = {
        "name": "Spring",
        "goal": "profit",
        "budget": Decimal("5000"),
        "starts_at": start,
        "ends_at": start + timedelta(days=14),
    }
    return {**fields, **overrides}


def test_a_campaign_gets_documented_defaults_and_the_data_average_order_value(
    merchant_a, coupons, mona
):
    # given converted treatment rows worth 100 and 200 (and one non-converted)
    customer = Customer.objects.create(merchant=merchant_a, external_id="C1")
    for n, (converted, revenue) in enumerate([(True, 100), (True, 200), (False, 0)]):
        TreatmentLog.objects.create(
            merchant=merchant_a,
            customer=customer,
            assigned_at=timezone.now(),
            propensity=0.5,
            converted=converted,
            revenue=revenue,
            fingerprint=n,
        )
    # when a manager creates a campaign without margin or order value
    campaign = campaign_create(
        merchant=merchant_a, actor=mona, coupon_types=["pct10", "AMT20"], **_fields()
    )
    # then
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.margin_rate == 0.3
    assert campaign.average_order_value == Decimal("150.00")
    assert campaign.holdout_share == 0.10 and campaign.exploration_share == 0.05
    assert sorted(campaign.coupon_types.values_list("code", flat=True)) == ["AMT20", "PCT10"]
    assert campaign.created_by == mona
    assert len(campaign.randomization_salt) == 32
    event = AuditEvent.objects.get(verb=AuditVerb.CAMPAIGN_CREATED)
    assert event.actor == mona and event.data["campaign"] == campaign.pk


def test_the_average_order_value_falls_back_to_purchases_then_to_none(merchant_a):
    assert merchant_average_order_value(merchant=merchant_a) is None
    from campaigns.models import Event

    customer = Customer.objects.create(merchant=merchant_a, external_id="C1")
    for n, (price, quantity) in enumerate([(50, 2), (80, None)]):
        Event.objects.create(
            merchant=merchant_a,
            customer=customer,
            timestamp=timezone.now() - timedelta(minutes=n),
            fingerprint=n,
            event_type="purchase",
            price=price,
            quantity=quantity,
        )
    assert merchant_average_order_value(merchant=merchant_a) == Decimal("90.00")


def test_the_average_order_value_is_stored_with_the_data_summary(
    merchant_a, django_assert_num_queries
):
    from campaigns.models import Event, TreatmentLog
    from campaigns.summary import data_summary_refresh

    customer = Customer.objects.create(merchant=merchant_a, external_id="C1")
    Event.objects.create(
        merchant=merchant_a,
        customer=customer,
        timestamp=timezone.now(),
        fingerprint=1,
        event_type="purchase",
        price=40,
        quantity=3,
    )
    data_summary_refresh(merchant=merchant_a)
    with django_assert_num_queries(1):  # one stored row, however large the tables
        assert merchant_average_order_value(merchant=merchant_a) == Decimal("120.00")
    # converted treatment rows with revenue take precedence over purchase events
    for n, (converted, revenue) in enumerate([(True, 100), (True, 61), (False, 0), (True, 0)]):
        TreatmentLog.objects.create(
            merchant=merchant_a,
            customer=customer,
            coupon_type=None,
            assigned_at=timezone.now() - timedelta(days=n),
            propensity=0.5,
            converted=converted,
            revenue=revenue,
            fingerprint=n,
        )
    data_summary_refresh(merchant=merchant_a)
    assert merchant_average_order_value(merchant=merchant_a) == Decimal("80.50")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"coupon_types": ["NOPE"]}, "coupon_types"),
        ({"coupon_types": []}, "coupon_types"),
        ({"caps": {"AMT20": 5}}, "caps"),
        ({"caps": {"PCT10": -1}}, "caps"),
        ({"holdout_share": 0.6, "exploration_share": 0.5}, "exploration_share"),
        ({"holdout_share": 1.0}, "holdout_share"),
        ({"margin_rate": 0.0}, "margin_rate"),
        ({"budget": Decimal("-1")}, "budget"),
        ({"code_prefix": "bad prefix!"}, "code_prefix"),
        ({"audience": {"lifecycle": ["sleepy"]}}, "audience"),
        ({"audience": {"colour": "red"}}, "audience"),
        ({"audience": {"min_uplift": 0.5, "max_uplift": 0.1}}, "audience"),
        ({"audience": {"attributes": {"tier": [{"x": 1}]}}}, "audience"),
    ],
)
def test_invalid_settings_are_refused_with_a_field_error(merchant_a, coupons, overrides, field):
    codes = overrides.pop("coupon_types", ["PCT10"])
    with pytest.raises(ValidationError) as error:
        campaign_create(merchant=merchant_a, actor=None, coupon_types=codes, **_fields(**overrides))
    assert field in error.value.message_dict
    assert not Campaign.objects.exists()


def test_ends_before_it_starts_is_refused(merchant_a, coupons):
    start = timezone.now()
    with pytest.raises(ValidationError) as error:
        campaign_create(
            merchant=merchant_a,
            actor=None,
            coupon_types=["PCT10"],
            **_fields(starts_at=start, ends_at=start - timedelta(hours=1)),
        )
    assert "ends_at" in error.value.message_dict


def test_another_merchants_coupon_type_cannot_be_offered(merchant_a, merchant_b, coupons):
    CouponType.objects.create(
        merchant=merchant_b, code="BONLY", name="B", kind="amount_off", value=5
    )
    with pytest.raises(ValidationError) as error:
        campaign_create(merchant=merchant_a, actor=None, coupon_types=["BONLY"], **_fields())
    assert "BONLY" in str(error.value.message_dict["coupon_types"])


def test_inactive_coupon_types_cannot_be_offered(merchant_a, coupons):
    CouponType.objects.filter(code="AMT20").update(active=False)
    with pytest.raises(ValidationError, match="Inactive"):
        campaign_create(merchant=merchant_a, actor=None, coupon_types=["AMT20"], **_fields())


@pytest.mark.parametrize(
    "values",
    [
        {"budget": -1},
        {"holdout_share": 0.6, "exploration_share": 0.5},
        {"holdout_share": 1.0, "exploration_share": 0.0},
        {"exploration_share": -0.1},
        {"margin_rate": 1.5},
        {"average_order_value": 0},
    ],
)
def test_the_database_keeps_the_invariants(merchant_a, values):
    start = timezone.now()
    row = {
        "merchant": merchant_a,
        "name": "x",
        "budget": 10,
        "starts_at": start,
        "ends_at": start + timedelta(days=1),
        **values,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.create(**row)


def test_the_database_refuses_a_campaign_that_ends_before_it_starts(merchant_a):
    start = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.create(
            merchant=merchant_a, name="x", budget=1, starts_at=start, ends_at=start
        )


def test_changing_the_budget_supersedes_proposed_strategies(merchant_a, mona):
    # given a ready campaign with a proposed strategy
    campaign = CampaignFactory(merchant=merchant_a, status=CampaignStatus.READY)
    strategy = StrategyFactory(campaign=campaign)
    # when a manager changes the budget
    campaign = campaign_update(campaign=campaign, actor=mona, budget=Decimal("2500"))
    # then the proposal is stale and the campaign waits for a new one
    strategy.refresh_from_db()
    assert strategy.status == StrategyStatus.SUPERSEDED
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.revision == 2
    event = AuditEvent.objects.get(verb=AuditVerb.CAMPAIGN_CHANGED)
    assert event.data["budget"] == ["1000.00", "2500"] and event.data["superseded_strategies"] == 1


def test_renaming_keeps_the_proposals(merchant_a, mona):
    campaign = CampaignFactory(merchant=merchant_a, status=CampaignStatus.READY)
    strategy = StrategyFactory(campaign=campaign)
    campaign_update(campaign=campaign, actor=mona, name="Renamed")
    strategy.refresh_from_db()
    assert strategy.status == StrategyStatus.PROPOSED
    assert Campaign.objects.get(pk=campaign.pk).revision == 1


def test_an_applied_campaign_changes_only_its_name(merchant_a, mona):
    campaign = CampaignFactory(merchant=merchant_a, status=CampaignStatus.APPLIED)
    with pytest.raises(ValidationError, match="roll its strategy back"):
        campaign_update(campaign=campaign, actor=mona, budget=Decimal("1"))
    assert campaign_update(campaign=campaign, actor=mona, name="New name").name == "New name"


def test_changing_the_coupons_keeps_caps_consistent(merchant_a, coupons, mona):
    campaign = campaign_create(
        merchant=merchant_a,
        actor=mona,
        coupon_types=["PCT10", "AMT20"],
        **_fields(caps={"AMT20": 10}),
    )
    with pytest.raises(ValidationError) as error:
        campaign_update(campaign=campaign, actor=mona, coupon_types=["PCT10"])
    assert "caps" in error.value.message_dict
    campaign = campaign_update(campaign=campaign, actor=mona, coupon_types=["PCT10"], caps={})
    assert list(campaign.coupon_types.values_list("code", flat=True)) == ["PCT10"]


# --- API ----------------------------------------------------------------------------------------


def _url(name, merchant="shop-a", **kwargs):
    return reverse(f"api:{name}", kwargs={"merchant": merchant, **kwargs})


def _body(**overrides):
    start = timezone.now() + timedelta(days=2)
    return {
        "name": "Spring",
        "coupon_types": ["PCT10"],
        "budget": "5000.00",
        "caps": {"PCT10": 100},
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=7)).isoformat(),
        "audience": {"lifecycle": ["active", "lapsing"]},
        **overrides,
    }


def test_a_manager_creates_and_changes_a_campaign_through_the_api(coupons, mona, api_for):
    client = api_for(mona)
    response = client.post(_url("campaign-list"), _body(), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["coupon_types"] == ["PCT10"] and data["status"] == "draft"
    assert data["created_by"] == "mona" and data["caps"] == {"PCT10": 100}
    assert "randomization_salt" not in data
    url = _url("campaign-detail", campaign_id=data["id"])
    response = client.patch(url, {"budget": "100", "holdout_share": 0.2}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["budget"] == "100.00" and response.json()["holdout_share"] == 0.2
    assert client.get(_url("campaign-list")).json()["results"][0]["id"] == data["id"]


def test_bad_input_answers_400_with_field_errors(coupons, mona, api_for):
    client = api_for(mona)
    start = timezone.now()
    response = client.post(
        _url("campaign-list"),
        _body(
            coupon_types=["NOPE"],
            starts_at=start.isoformat(),
            ends_at=(start - timedelta(days=1)).isoformat(),
        ),
        format="json",
    )
    assert response.status_code == 400
    assert "ends_at" in response.json()
    response = client.post(_url("campaign-list"), _body(coupon_types=["NOPE"]), format="json")
    assert response.status_code == 400 and "coupon_types" in response.json()
    response = client.post(
        _url("campaign-list"), _body(audience={"lifecycle": ["sleepy"]}), format="json"
    )
    assert response.status_code == 400 and "audience" in response.json()
    assert not Campaign.objects.exists()


def test_campaigns_filter_by_status_and_refuse_an_end_before_the_start(coupons, mona, api_for):
    merchant = coupons[0].merchant
    ready = CampaignFactory(merchant=merchant, status=CampaignStatus.READY)
    CampaignFactory(merchant=merchant)
    client = api_for(mona)
    listed = client.get(_url("campaign-list"), {"status": "ready"}).json()["results"]
    assert [c["id"] for c in listed] == [ready.pk]
    assert client.get(_url("campaign-list"), {"status": "sleepy"}).status_code == 400
    before = (ready.starts_at - timedelta(hours=1)).isoformat()
    response = client.patch(
        _url("campaign-detail", campaign_id=ready.pk), {"ends_at": before}, format="json"
    )
    assert response.status_code == 400 and "ends_at" in response.json()


def test_viewers_read_but_cannot_create(coupons, vera, api_for):
    CampaignFactory(merchant=coupons[0].merchant)
    client = api_for(vera)
    assert client.get(_url("campaign-list")).status_code == 200
    assert client.post(_url("campaign-list"), _body(), format="json").status_code == 403


def test_another_merchants_campaign_answers_404(merchant_b, alice, api_for):
    theirs = CampaignFactory(merchant=merchant_b)
    client = api_for(alice)
    assert client.get(_url("campaign-detail", campaign_id=theirs.pk)).status_code == 404
    assert (
        client.patch(
            _url("campaign-detail", campaign_id=theirs.pk), {"name": "x"}, format="json"
        ).status_code
        == 404
    )
    assert client.post(_url("campaign-propose", campaign_id=theirs.pk)).status_code == 404
