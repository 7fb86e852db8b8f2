"""Data in the browser: upload, map, start, watch the result arrive; the data page's chart."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from campaigns.models import Customer, DataImport, Event
from campaigns.summary import data_summary_refresh
from campaigns.tasks import run_import
from modeling.choices import JobKind
from modeling.models import Job
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# "when" is not a name the import recognizes: the manager maps it to the timestamp by hand.
EVENTS = (
    "customer_id,when,event_type,item_id,category,price,quantity\n"
    "C1,2026-01-05 10:00:00,view,I1,tea,12.5,\n"
    "C1,2026-01-05 10:05:00,cart,I1,tea,12.5,2\n"
    "C2,2026-01-06 09:00:00,search,,,,\n"
    "C2,2026-01-06 09:30:00,purchase,I2,cups,30,1\n"
)


def test_manager_uploads_maps_starts_and_sees_the_result_arrive(
    page, log_in, screenshot, merchant_a, mona, monkeypatch
):
    # Hold the import's task back (instead of running it eagerly inside the request), so the
    # page is seen waiting and then updating when the worker (this test) runs it.
    sent: list[int] = []
    monkeypatch.setattr(
        run_import, "apply_async", lambda args, **options: sent.append(args[0]), raising=False
    )
    log_in("mona", PASSWORD)
    page.goto("/m/shop-a/data/")
    page.get_by_test_id("import-data").click()
    page.get_by_label("Behaviour events").check()
    page.set_input_files(
        "#id_file",
        files=[{"name": "events.csv", "mimeType": "text/csv", "buffer": EVENTS.encode()}],
    )
    page.get_by_role("button", name="Upload and preview").click()
    # the preview and the mapping, with "when" not yet mapped
    expect(page).to_have_url(re.compile(r"/m/shop-a/data/imports/\d+/$"))
    expect(page.get_by_test_id("preview-table")).to_contain_text("2026-01-06 09:30:00")
    expect(page.get_by_test_id("import-encoding")).to_contain_text("UTF-8")
    page.get_by_label("when").select_option("timestamp")
    page.get_by_label("Create unknown customers").check()
    page.get_by_test_id("start-import").click()
    # queued: the results section polls
    result = page.locator("#import-result")
    expect(result).to_have_attribute("data-status", "queued")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    # the worker runs the import ...
    job = Job.objects.get(kind=JobKind.IMPORT, merchant=merchant_a)
    assert sent == [job.pk]
    run_import.apply(args=[job.pk])
    # ... and the page shows the outcome without a reload, then stops polling
    expect(page.get_by_test_id("import-succeeded")).to_contain_text("4 rows: 4 added")
    expect(page.get_by_test_id("rows-added")).to_have_text("4")
    expect(result).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#import-status")).to_have_text("Imported")  # the heading's badge too
    expect(page.locator(f"#job-progress-{job.pk}")).to_have_attribute("data-status", "succeeded")
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#import-result[hx-get]").count() == 0
    assert Event.objects.filter(merchant=merchant_a).count() == 4
    screenshot("data-import")
    assert DataImport.objects.get().customers_created == 2


def test_the_data_page_draws_the_events_chart(page, log_in, screenshot, merchant_a, alice):
    customers = [
        Customer.objects.create(merchant=merchant_a, external_id=f"C{n}") for n in range(5)
    ]
    kinds = ["view", "view", "search", "cart", "purchase", "view", "favorite"]
    start = datetime(2026, 1, 1, 1, tzinfo=UTC)
    Event.objects.bulk_create(
        Event(
            merchant=merchant_a,
            customer=customers[n % 5],
            timestamp=start + timedelta(hours=5 * n),
            event_type=kinds[n % len(kinds)],
            fingerprint=n,
        )
        for n in range(120)
    )
    data_summary_refresh(merchant=merchant_a)
    log_in("alice", PASSWORD)
    page.goto("/m/shop-a/data/")
    chart = page.get_by_test_id("events-chart")
    expect(chart.locator(".main-svg").first).to_be_attached()
    expect(chart.locator(".plot-container")).to_have_count(1)
    expect(chart).to_contain_text("Events per day, by type")
    expect(page.get_by_test_id("event-count")).to_have_text("120")
    expect(page.get_by_test_id("events-per-type")).to_contain_text("Add to cart")
    screenshot("data-overview")
