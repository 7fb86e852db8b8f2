"""Every merchant page reads a fixed number of queries, whatever the size of the data.

The pages are those bench/web.py times (issue 6.10): every GET page of campaigns/urls.py,
campaigns/data_urls.py, campaigns/campaign_urls.py and modeling/urls.py that a member reads,
with the fragments that pages poll, and the user's API token page. Each is read by the owner on
a small merchant, then again after the merchant has grown (customers, events, imports, coupon
types, campaigns, strategies, model versions, jobs, members): the count must be the same number
both times. The model page, its training fragment and the segments page have theirs already
(test_model_pages.py, test_segments.py).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import resolve, reverse
from django.utils import timezone

from campaigns.assignments import strategy_apply
from campaigns.choices import ImportKind, ImportSource, Role
from campaigns.imports.service import import_create_from_file, import_start
from campaigns.models import Campaign, Customer, DataImport, Event, Strategy
from campaigns.services import campaign_create
from campaigns.strategies import strategy_compute
from campaigns.summary import data_summary_refresh
from modeling.choices import JobKind, JobStatus
from modeling.models import Job, ModelVersion
from tests.factories import (
    CampaignFactory,
    CouponTypeFactory,
    JobFactory,
    MembershipFactory,
    MerchantFactory,
    ModelVersionFactory,
    UserFactory,
)
from tests.scored import scored_merchant

pytestmark = pytest.mark.django_db

# Queries per page for the owner: 4 on every page (the session, the user, the membership with
# its merchant, the navigation's merchants of the user), then what the page shows, each list in
# one query (a paginated list adds its count).
BASE = 4
QUERIES = {
    # recent jobs, champion, recent campaigns, data summary, member count (the session's
    # "current merchant" is written only when it changes)
    "home": BASE + 5,
    "members": BASE + 2,  # members with their users, the audit events
    "settings": BASE,
    "data": BASE + 2,  # the stored data summary, the recent imports
    "data_upload": BASE,
    "data_import": BASE + 1,  # the import with its job and creator (the preview reads the file)
    "data_import_result": BASE,  # the import with its job (no navigation in a fragment)
    "coupons": BASE + 1,  # coupon types with their campaign counts
    "coupon_new": BASE,
    "coupon_edit": BASE + 1,  # the coupon type
    "campaigns": BASE + 3,  # count, campaigns with strategy counts, their coupon types
    "campaign_new": BASE + 2,  # mean order value (the stored data summary), coupon types
    "campaign": BASE + 3,  # campaign, its coupon types, its strategies
    "campaign_edit": BASE + 3,  # campaign, its coupon types, the merchant's coupon types
    "campaign_job": BASE + 2,  # campaign, job
    "strategy_applied": BASE + 2,  # strategy with campaign and version, the latest strategy
    "strategy_proposed": BASE + 2,
    "jobs": BASE + 2,  # count, jobs
    "job": BASE + 1,  # the job
    "job_progress": BASE,  # the job (a fragment: no navigation)
    "models": BASE + 2,  # count, versions
    "api_token": BASE,  # the token, the user's memberships (no merchant membership)
}


@dataclass
class Site:
    merchant: object
    campaign: Campaign
    applied: Strategy
    proposed: Strategy
    running: Job
    finished: Job
    events_import: DataImport
    version: ModelVersion
    folder: Path


def _events_csv(folder: Path, name: str, customers: list[str], per_customer: int) -> Path:
    path = folder / name
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["customer_id", "timestamp", "event_type", "item_id", "category", "price", "quantity"]
        )
        for c, customer in enumerate(customers):
            for e in range(per_customer):
                when = start + timedelta(hours=c, minutes=e)
                writer.writerow(
                    [customer, when.isoformat(), "purchase", f"I{e}", "tea", "12.50", "1"]
                )
    return path


def _import_events(site_merchant, folder: Path, name: str, customers: list[str], capture):
    path = _events_csv(folder, name, customers, per_customer=3)
    data_import = import_create_from_file(
        merchant=site_merchant,
        kind=ImportKind.EVENTS,
        path=path,
        filename=name,
        actor=None,
        source=ImportSource.UPLOAD,
    )
    with capture(execute=True):
        data_import = import_start(data_import=data_import, actor=None)
    data_import.refresh_from_db()
    assert data_import.status == "succeeded", data_import.message
    return data_import


@pytest.fixture
def site(merchant_a, alice, settings, tmp_path, django_capture_on_commit_callbacks) -> Site:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.MODEL_ARTIFACT_ROOT = tmp_path / "models"
    scored = scored_merchant(merchant_a, customers=60, seed=4)
    start = timezone.now() + timedelta(days=1)
    campaign = campaign_create(
        merchant=merchant_a,
        actor=alice,
        coupon_types=["PCT10", "AMT20", "SPEND199_30"],
        name="Spring",
        budget=Decimal("300"),
        starts_at=start,
        ends_at=start + timedelta(days=7),
    )
    applied = strategy_compute(campaign=campaign, version=scored.version)
    strategy_apply(strategy=applied, actor=alice)
    proposed = strategy_compute(campaign=campaign, version=scored.version, budget=Decimal("90"))
    customers = list(
        Customer.objects.filter(merchant=merchant_a).values_list("external_id", flat=True)
    )
    events_import = _import_events(
        merchant_a, tmp_path, "events.csv", customers[:10], django_capture_on_commit_callbacks
    )
    data_summary_refresh(merchant=merchant_a)
    running = JobFactory(
        merchant=merchant_a, kind=JobKind.PROPOSE, status=JobStatus.RUNNING, progress=40
    )
    finished = JobFactory(
        merchant=merchant_a,
        kind=JobKind.SCORE,
        status=JobStatus.SUCCEEDED,
        progress=100,
        result={"chunks": 1},
    )
    return Site(
        merchant_a,
        campaign,
        Strategy.objects.get(pk=applied.pk),
        proposed,
        running,
        finished,
        events_import,
        scored.version,
        tmp_path,
    )


def grow(site: Site, capture) -> None:
    """Many more of everything the pages list or count (past the lists' 25-row pages)."""
    merchant = site.merchant
    Customer.objects.bulk_create(
        Customer(merchant=merchant, external_id=f"N{i:05d}", attributes={"member": True})
        for i in range(400)
    )
    new = Customer.objects.filter(merchant=merchant, external_id__startswith="N")
    Event.objects.bulk_create(
        Event(
            merchant=merchant,
            customer=customer,
            timestamp=datetime(2026, 2, 1, tzinfo=UTC) + timedelta(minutes=i),
            event_type="view",
            fingerprint=customer.pk * 10 + i,
        )
        for customer in new
        for i in range(5)
    )
    for index in range(3):
        _import_events(
            merchant, site.folder, f"more-{index}.csv", [f"N{i:05d}" for i in range(50)], capture
        )
    for _ in range(4):
        strategy_compute(campaign=site.campaign, version=site.version, budget=Decimal("120"))
    coupons = [CouponTypeFactory(merchant=merchant, code=f"EXTRA{i}") for i in range(30)]
    for i in range(30):
        CampaignFactory(merchant=merchant, coupon_types=coupons[i : i + 3])
    for number in range(2, 32):
        ModelVersionFactory(merchant=merchant, number=number, arms=site.version.arms)
    for _ in range(30):
        JobFactory(merchant=merchant, kind=JobKind.TRAIN, status=JobStatus.SUCCEEDED)
    for i in range(30):
        MembershipFactory(
            merchant=merchant, user=UserFactory(username=f"extra{i}"), role=Role.VIEWER
        )
    owner = merchant.memberships.get(role=Role.OWNER).user
    for i in range(5):  # the owner's other merchants (the API token page lists them)
        MembershipFactory(merchant=MerchantFactory(slug=f"other-{i}"), user=owner, role=Role.VIEWER)
    data_summary_refresh(merchant=merchant)


def page_urls(site: Site) -> dict[str, str]:
    m = {"merchant": site.merchant.slug}
    coupon = site.campaign.coupon_types.order_by("code").first()
    return {
        "home": reverse("campaigns:home", kwargs=m),
        "members": reverse("campaigns:members", kwargs=m),
        "settings": reverse("campaigns:settings", kwargs=m),
        "data": reverse("data:overview", kwargs=m),
        "data_upload": reverse("data:upload", kwargs=m),
        "data_import": reverse("data:import", kwargs={**m, "import_id": site.events_import.pk}),
        "data_import_result": reverse(
            "data:import-result", kwargs={**m, "import_id": site.events_import.pk}
        ),
        "coupons": reverse("promo:coupons", kwargs=m),
        "coupon_new": reverse("promo:coupon-create", kwargs=m),
        "coupon_edit": reverse("promo:coupon-edit", kwargs={**m, "coupon_type_id": coupon.pk}),
        "campaigns": reverse("promo:campaigns", kwargs=m),
        "campaign_new": reverse("promo:campaign-create", kwargs=m),
        "campaign": reverse("promo:campaign", kwargs={**m, "campaign_id": site.campaign.pk}),
        "campaign_edit": reverse(
            "promo:campaign-edit", kwargs={**m, "campaign_id": site.campaign.pk}
        ),
        "campaign_job": reverse(
            "promo:campaign-job",
            kwargs={**m, "campaign_id": site.campaign.pk, "job_id": site.running.pk},
        ),
        "strategy_applied": reverse("promo:strategy", kwargs={**m, "strategy_id": site.applied.pk}),
        "strategy_proposed": reverse(
            "promo:strategy", kwargs={**m, "strategy_id": site.proposed.pk}
        ),
        "jobs": reverse("modeling:jobs", kwargs=m),
        "job": reverse("modeling:job", kwargs={**m, "job_id": site.finished.pk}),
        "job_progress": reverse("modeling:job-progress", kwargs={**m, "job_id": site.running.pk}),
        "models": reverse("modeling:models", kwargs=m),
        "api_token": reverse("api_token"),
    }


# GET routes of the four URL modules that are not pages of their own here.
NOT_HERE = {
    "promo:strategy-assignments": "a CSV download",
    "data:import-errors": "a CSV download",
    "modeling:model": "test_model_pages.py",
    "modeling:model-training": "test_model_pages.py",
    "modeling:segments": "test_segments.py",
}


def _get_routes() -> set[str]:
    from campaigns import campaign_urls, data_urls, urls
    from modeling import urls as modeling_urls

    names = set()
    for module in (urls, data_urls, campaign_urls, modeling_urls):
        for pattern in module.urlpatterns:
            view = pattern.callback.view_class
            if "get" in view.http_method_names and hasattr(view, "get"):
                names.add(f"{module.app_name}:{pattern.name}")
    return names


def test_every_get_route_of_the_merchant_pages_is_counted_somewhere(site):
    # the strategy page is read twice (applied, proposed); the API token page is not a route of
    # these modules
    counted = {resolve(path).view_name for path in page_urls(site).values()}
    assert _get_routes() == (counted - {"api_token"}) | set(NOT_HERE)


@pytest.mark.parametrize("page", list(QUERIES))
def test_a_page_reads_the_same_queries_on_a_small_and_a_grown_merchant(
    page, site, alice, client_for, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # given the owner on a small merchant, who has opened the home page (the session knows it)
    client = client_for(alice)
    assert client.get(page_urls(site)["home"]).status_code == 200
    target = page_urls(site)[page]

    # then the page reads its fixed number of queries
    with django_assert_num_queries(QUERIES[page]):
        assert client.get(target).status_code == 200

    # and the same number once the merchant has many more of everything
    grow(site, django_capture_on_commit_callbacks)
    with django_assert_num_queries(QUERIES[page]):
        assert client.get(target).status_code == 200
