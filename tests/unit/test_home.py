"""The merchant home: data health, the champion in one line, campaigns with their status,
recent jobs, and what to do next at every stage of the loop."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.choices import CampaignStatus
from campaigns.models import Customer, Event, TreatmentLog
from campaigns.summary import data_summary_refresh
from modeling.choices import JobKind, JobStatus
from tests.factories import CampaignFactory, JobFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def home(client, merchant) -> str:
    response = client.get(reverse("campaigns:home", kwargs={"merchant": merchant.slug}))
    assert response.status_code == 200
    return response.content.decode()


def steps(page: str) -> str:
    if 'data-testid="next-steps"' not in page:
        return ""
    return page.split('data-testid="next-steps"')[1].split("</ol>")[0]


@pytest.fixture
def merchant_with_data(merchant_a):
    customer = Customer.objects.create(merchant=merchant_a, external_id="C1")
    Event.objects.create(
        merchant=merchant_a,
        customer=customer,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        event_type="view",
        fingerprint=1,
    )
    TreatmentLog.objects.create(
        merchant=merchant_a,
        customer=customer,
        coupon_type=None,
        assigned_at=datetime(2026, 1, 2, tzinfo=UTC),
        propensity=0.5,
        converted=False,
        revenue=0,
        fingerprint=1,
    )
    data_summary_refresh(merchant=merchant_a)
    return merchant_a


def test_with_data_and_no_model_the_next_step_is_training(merchant_with_data, mona, client_for):
    page = home(client_for(mona), merchant_with_data)
    models_url = reverse("modeling:models", kwargs={"merchant": merchant_with_data.slug})
    assert "Train your first model" in steps(page) and f'href="{models_url}"' in steps(page)
    assert "No model yet." in page


def test_while_the_first_model_trains_the_step_follows_the_job(
    merchant_with_data, mona, client_for
):
    job = JobFactory(merchant=merchant_with_data, kind=JobKind.TRAIN, status=JobStatus.RUNNING)
    page = home(client_for(mona), merchant_with_data)
    job_url = reverse(
        "modeling:job", kwargs={"merchant": merchant_with_data.slug, "job_id": job.pk}
    )
    assert "Your first model is training" in steps(page) and job_url in steps(page)
    assert f'id="job-progress-{job.pk}"' in page and "hx-get" in page  # live progress


def test_the_champion_shows_in_one_line_and_campaigns_come_next(
    merchant_with_data, mona, client_for
):
    version = ModelVersionFactory(
        merchant=merchant_with_data,
        number=3,
        is_champion=True,
        trained_at=timezone.now(),
        data_counts={"customers": 18000},
        evaluation={"mean_qini_coefficient": 0.1234, "arms": {}},
    )
    page = home(client_for(mona), merchant_with_data)
    champion = page.split('data-testid="champion"')[1].split("</section>")[0]
    assert ">v3</a>" in champion and "18000 customers" in champion
    assert "0.123" in champion and "not scored yet" in champion
    assert (
        reverse(
            "modeling:model", kwargs={"merchant": merchant_with_data.slug, "version_id": version.pk}
        )
        in champion
    )
    create = reverse("promo:campaign-create", kwargs={"merchant": merchant_with_data.slug})
    assert "Build a campaign" in steps(page) and create in steps(page)


def test_campaigns_show_with_status_and_each_stage_says_what_is_next(
    merchant_with_data, mona, vera, client_for
):
    ModelVersionFactory(merchant=merchant_with_data, is_champion=True)
    draft = CampaignFactory(merchant=merchant_with_data, name="Spring tea")
    ready = CampaignFactory(
        merchant=merchant_with_data, name="Moon cakes", status=CampaignStatus.READY
    )
    applied = CampaignFactory(
        merchant=merchant_with_data, name="Singles day", status=CampaignStatus.APPLIED
    )
    page = home(client_for(mona), merchant_with_data)
    campaigns = page.split('data-testid="home-campaigns"')[1].split("</section>")[0]
    for campaign in (draft, ready, applied):
        assert campaign.name in campaigns and campaign.get_status_display() in campaigns
    assert "1,000.00" in campaigns  # budget in the currency
    hints = steps(page)
    assert "Propose a strategy for Spring tea" in hints
    assert "Review and apply the strategy for Moon cakes" in hints
    assert "Singles day" not in hints  # applied: nothing to do
    # a viewer reads the same hints without links to pages they cannot use
    viewer_hints = steps(home(client_for(vera), merchant_with_data))
    assert "Propose a strategy for Spring tea" in viewer_hints
    assert "a manager or owner does this" in viewer_hints and "href" not in viewer_hints


def test_when_everything_is_done_there_is_no_hint(merchant_with_data, mona, client_for):
    ModelVersionFactory(merchant=merchant_with_data, is_champion=True)
    CampaignFactory(merchant=merchant_with_data, status=CampaignStatus.APPLIED)
    assert 'data-testid="next-steps"' not in home(client_for(mona), merchant_with_data)
