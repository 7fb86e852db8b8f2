"""The whole journey in headless Chromium on a small simulated demo merchant: the demo manager
trains a model, scores, builds a campaign, proposes, changes the budget, applies and downloads
the codes; a viewer finds no control that changes data and is refused when posting anyway,
then switches to Chinese; the pages fit a phone. Every page is saved as a screenshot under
test-artifacts/screenshots/ (see the README for what each shows).

Jobs run eagerly in the test server (CELERY_TASK_ALWAYS_EAGER): the worker path is covered by
the integration suite; this suite judges what a person sees.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.models import Assignment, Customer, Strategy
from tests.browser.conftest import ARTIFACTS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO = "/m/demo"
PASSWORD = "browser-demo"
CUSTOMERS = 1_500
SLOW = 300_000  # ms: training and scoring run inside the request (eager jobs)


@pytest.fixture
def demo(db):
    """The demo merchant and users (load_demo), with a small simulated dataset, no model."""
    call_command(
        "load_demo", customers=CUSTOMERS, model=False, password=PASSWORD, stdout=io.StringIO()
    )


def sign_in_demo(page: Page, username: str) -> None:
    sign_in(page, username, PASSWORD)
    expect(page).to_have_url(re.compile(rf"{DEMO}/$"))


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def expect_plot(page: Page, container: str, traces: int = 1) -> None:
    """The chart in ``container`` was drawn by Plotly: an SVG with at least ``traces`` traces."""
    plot = page.locator(f"{container} .js-plotly-plot, {container}.js-plotly-plot").first
    expect(plot).to_be_visible()
    expect(plot.locator("svg.main-svg").first).to_be_visible()
    drawn = plot.locator(".scatterlayer .trace, .barlayer .trace")
    expect(drawn.nth(traces - 1)).to_be_attached()


def assert_fits(page: Page, path: str) -> None:
    """No horizontal scrolling: the page is no wider than the window."""
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    width = page.viewport_size["width"]
    assert overflow <= 1, f"{path} is {overflow}px wider than a {width}px window"


def csrf_post(page: Page, path: str, data: dict | None = None):
    """POST the way a hand-made request would: with the session and a valid CSRF token."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return page.request.post(
        path,
        form={"csrfmiddlewaretoken": token, **(data or {})},
        headers={"Referer": page.url},
        max_redirects=0,
    )


def test_the_demo_manager_goes_round_the_product(browser, live_server, demo):
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=live_server.url, accept_downloads=True
    )
    context.set_default_timeout(20_000)
    page = context.new_page()

    # Home before any model: data health and the next step
    sign_in_demo(page, "demo-manager")
    expect(page.get_by_test_id("next-steps")).to_contain_text("Train your first model")
    expect(page.get_by_test_id("data-health")).to_be_visible()
    shoot(page, "01-home-before-model")
    page.goto(f"{DEMO}/data/")
    expect_plot(page, "#events-per-day-chart")
    shoot(page, "02-data-overview")
    page.goto(f"{DEMO}/data/import/")
    shoot(page, "03-data-upload")
    page.goto(f"{DEMO}/coupons/")
    expect(page.get_by_test_id("coupon-types")).to_contain_text("FREESHIP")
    shoot(page, "04-coupon-types")
    page.goto(f"{DEMO}/coupons/new/")
    page.click("form[data-testid=coupon-form] button[type=submit]")  # empty: errors, no write
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    shoot(page, "05-coupon-form-errors")

    # Train a model from the models page; the model page then shows its evaluation
    page.goto(f"{DEMO}/models/")
    with page.expect_navigation(timeout=SLOW):
        page.get_by_test_id("train-model").click(timeout=SLOW)
    expect(page).to_have_url(re.compile(rf"{DEMO}/models/\d+/$"))
    expect(page.get_by_text("Ready", exact=False).first).to_be_visible()
    expect_plot(page, "[data-testid=qini-chart]", traces=6)  # the model and 5 baselines
    expect_plot(page, "[data-testid=calibration-chart]")
    expect(page.get_by_test_id("evaluation-summary")).to_contain_text("T-learner")
    shoot(page, "06-model-detail")
    with page.expect_navigation(timeout=SLOW):
        page.get_by_test_id("score-model").click(timeout=SLOW)
    expect(page.locator(".job-progress")).to_have_attribute(
        "data-status", "succeeded", timeout=SLOW
    )
    shoot(page, "07-scoring-job")
    page.goto(f"{DEMO}/segments/")
    expect(page.get_by_test_id("segments-lifecycle")).to_be_visible()
    expect_plot(page, "[data-testid=segments-lifecycle]")
    shoot(page, "08-segments")
    page.goto(f"{DEMO}/")
    expect(page.get_by_test_id("champion")).to_contain_text("v1")
    expect(page.get_by_test_id("next-steps")).to_contain_text("Build a campaign")

    # Build a campaign: a form error first, then a valid one
    page.goto(f"{DEMO}/campaigns/new/")
    form = page.get_by_test_id("campaign-form")
    form.locator("button[type=submit]").click()
    expect(page.locator(".invalid-feedback").first).to_be_visible()
    page.fill("#id_name", "Winter tea")
    for box in form.locator("input[name=coupon_types]").all():
        box.check()
    page.fill("#id_budget", "400")
    start = timezone.localtime() + timedelta(days=2)
    page.fill("#id_starts_at", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_ends_at", (start + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M"))
    shoot(page, "09-campaign-form")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"{DEMO}/campaigns/\d+/$"))
    expect(page.get_by_test_id("no-strategies")).to_be_visible()
    shoot(page, "10-campaign-detail")

    # Propose: the job page follows it to the strategy page and its frontier
    with page.expect_navigation(timeout=SLOW):
        page.get_by_test_id("propose-form").locator("button[type=submit]").click(timeout=SLOW)
    expect(page).to_have_url(re.compile(rf"{DEMO}/strategies/\d+/$"), timeout=SLOW)
    expect_plot(page, "#frontier-chart", traces=3)  # the model, best single coupon, random
    expect_plot(page, "#allocation-chart")
    first_url = page.url
    shoot(page, "11-strategy")

    # Change the budget: a new proposal
    page.fill("#propose-budget", "150")
    with page.expect_navigation(timeout=SLOW):
        page.get_by_test_id("propose-form").locator("button[type=submit]").click(timeout=SLOW)
    expect(page).to_have_url(re.compile(rf"{DEMO}/strategies/\d+/$"), timeout=SLOW)
    assert page.url != first_url
    expect(page.get_by_text("150.00").first).to_be_visible()
    expect_plot(page, "#frontier-chart", traces=3)
    strategy = Strategy.objects.order_by("-pk").first()
    assert strategy is not None and float(strategy.budget) == 150

    # A viewer, meanwhile: no control that changes data, refused when posting anyway
    viewer = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    viewer.set_default_timeout(20_000)
    vpage = viewer.new_page()
    sign_in_demo(vpage, "demo-viewer")
    vpage.goto(f"{DEMO}/strategies/{strategy.pk}/")
    expect_plot(vpage, "#frontier-chart", traces=3)
    assert vpage.get_by_test_id("apply-strategy").count() == 0
    assert vpage.get_by_test_id("propose-form").count() == 0
    shoot(vpage, "12-strategy-as-viewer")
    refused = csrf_post(vpage, f"{DEMO}/strategies/{strategy.pk}/apply/")
    assert refused.status == 403
    vpage.goto(f"{DEMO}/models/")
    assert vpage.get_by_test_id("train-model").count() == 0
    assert csrf_post(vpage, f"{DEMO}/models/train/").status == 403
    assert not Assignment.objects.exists()

    # The viewer switches to Chinese: pages and chart labels follow
    vpage.goto(f"{DEMO}/strategies/{strategy.pk}/")
    vpage.get_by_test_id("language-switch").locator(".dropdown-toggle").first.click()
    vpage.locator("button[name=language][value=zh-hans]").first.click()
    expect(vpage.locator("html")).to_have_attribute("lang", "zh-hans")
    expect_plot(vpage, "#frontier-chart", traces=3)
    x_title = vpage.locator("#frontier-chart .g-xtitle").text_content() or ""
    assert re.search(r"[\u4e00-\u9fff]", x_title), x_title
    shoot(vpage, "13-strategy-zh-hans")
    for name, path in (
        ("14-home-zh-hans", f"{DEMO}/"),
        ("15-model-zh-hans", f"{DEMO}/models/{strategy.model_version_id}/"),
        ("16-segments-zh-hans", f"{DEMO}/segments/"),
    ):
        vpage.goto(path)
        expect(vpage.locator("html")).to_have_attribute("lang", "zh-hans")
        shoot(vpage, name)
    viewer.close()

    # Apply, after a confirmation that says what will happen
    page.get_by_test_id("apply-strategy").click()
    dialog = page.get_by_test_id("apply-confirmation")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("held out")
    shoot(page, "17-apply-confirmation")
    with page.expect_navigation(timeout=SLOW):
        page.get_by_test_id("confirm-apply").click(timeout=SLOW)
    expect(page).to_have_url(re.compile(rf"{DEMO}/strategies/{strategy.pk}/$"), timeout=SLOW)
    expect(page.get_by_test_id("rollback-strategy")).to_be_visible()
    shoot(page, "18-strategy-applied")
    assert Assignment.objects.filter(strategy=strategy).count() == CUSTOMERS

    # Download the assignments
    with page.expect_download() as download:
        page.get_by_test_id("download-assignments").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    assert len(rows) == CUSTOMERS
    assert {row["customer_id"] for row in rows} == set(
        Customer.objects.values_list("external_id", flat=True)
    )
    assert any(row["code"] for row in rows)

    # The rest of the pages, for the record; at 1280 px nothing is wider than the window
    for name, path in (
        ("19-home-after-apply", f"{DEMO}/"),
        ("20-campaigns", f"{DEMO}/campaigns/"),
        ("21-models", f"{DEMO}/models/"),
        ("22-jobs", f"{DEMO}/jobs/"),
        ("23-members", f"{DEMO}/members/"),
        ("24-settings", f"{DEMO}/settings/"),
        ("11b-strategy-applied", f"{DEMO}/strategies/{strategy.pk}/"),
        ("06b-model", f"{DEMO}/models/{strategy.model_version_id}/"),
    ):
        page.goto(path)
        assert_fits(page, path)
        shoot(page, name)

    # At phone width the pages reflow: nothing wider than the screen
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=live_server.url, is_mobile=True
    )
    ppage = phone.new_page()
    sign_in_demo(ppage, "demo-manager")
    for name, path in (
        ("25-phone-home", f"{DEMO}/"),
        ("26-phone-strategy", f"{DEMO}/strategies/{strategy.pk}/"),
        ("27-phone-model", f"{DEMO}/models/{strategy.model_version_id}/"),
    ):
        ppage.goto(path)
        assert_fits(ppage, path)
        shoot(ppage, name)
    phone.close()
    context.close()
