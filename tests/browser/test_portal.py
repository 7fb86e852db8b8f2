"""The portal in a real browser: sign-in lands on the merchant home; job progress is live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from modeling.choices import JobStatus
from modeling.models import Job
from tests.factories import PASSWORD, JobFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_signs_in_and_lands_on_the_merchant_home(page, log_in, screenshot, merchant_a, alice):
    log_in("alice", PASSWORD)
    expect(page).to_have_url(re.compile(r"/m/shop-a/$"))
    expect(page.get_by_test_id("merchant-name")).to_have_text("Shop A")
    screenshot("merchant-home")
    page.goto("/m/shop-a/members/")
    expect(page.get_by_role("heading", name="Invite a member")).to_be_visible()
    screenshot("members")


def test_a_wrong_password_is_refused_with_a_message(page, log_in, alice):
    log_in("alice", "not-the-password")
    expect(page.locator(".alert-danger, .invalid-feedback, .errorlist").first).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


def test_job_progress_updates_without_a_reload(page, log_in, screenshot, merchant_a, mona):
    job = JobFactory(
        merchant=merchant_a, status=JobStatus.RUNNING, progress=10, message="Epoch 1/5"
    )
    log_in("mona", PASSWORD)
    page.goto(f"/m/shop-a/jobs/{job.pk}/")
    bar = page.locator(f"#job-progress-{job.pk} .progress-bar")
    expect(bar).to_have_text("10%")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    # the worker reports progress ...
    Job.objects.filter(pk=job.pk).update(progress=60, message="Epoch 3/5, loss 0.41")
    expect(bar).to_have_text("60%")
    expect(page.get_by_text("Epoch 3/5, loss 0.41")).to_be_visible()
    screenshot("job-running")
    # ... and finishes: the bar turns green and polling stops
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, progress=100, message="Done")
    expect(page.locator(f"#job-progress-{job.pk}")).to_have_attribute("data-status", "succeeded")
    expect(bar).to_have_text("100%")
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator(f"#job-progress-{job.pk}[hx-get]").count() == 0
    screenshot("job-succeeded")


def test_viewer_sees_no_cancel_control(page, log_in, merchant_a, vera):
    job = JobFactory(merchant=merchant_a, status=JobStatus.RUNNING)
    log_in("vera", PASSWORD)
    page.goto(f"/m/shop-a/jobs/{job.pk}/")
    expect(page.locator(f"#job-progress-{job.pk}")).to_be_visible()
    expect(page.get_by_test_id("cancel-job")).to_have_count(0)


def test_merchant_switcher_moves_between_merchants(page, log_in, merchant_a, merchant_b, alice):
    from campaigns.models import Membership

    Membership.objects.create(user=alice, merchant=merchant_b, role="viewer")
    log_in("alice", PASSWORD)
    page.get_by_test_id("merchant-switcher").get_by_role("button").or_(
        page.get_by_test_id("merchant-switcher").locator(".dropdown-toggle")
    ).first.click()
    page.get_by_role("link", name=re.compile("Shop B")).click()
    expect(page).to_have_url(re.compile(r"/m/shop-b/$"))
    expect(page.get_by_test_id("merchant-name")).to_have_text("Shop B")
