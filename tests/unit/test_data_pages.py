"""The data pages: upload, preview, column mapping, start, live results, problems as CSV; the
data health summary on the data page and the merchant home."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.choices import ImportStatus
from campaigns.exports import csv_safe
from campaigns.imports.schema import LEAVE_OUT
from campaigns.models import (
    CouponType,
    Customer,
    DataImport,
    Event,
    MerchantDataSummary,
    TreatmentLog,
)
from campaigns.summary import data_summary_refresh, merchant_data_summary
from modeling.choices import JobStatus
from modeling.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

# "when" is not a known name for the timestamp: the manager maps it by hand.
EVENTS = (
    "customer_id,when,event_type,item_id,category,price,quantity\n"
    "C1,2026-01-05 10:00:00,view,I1,tea,12.5,\n"
    "C1,2026-01-05 10:05:00,cart,I1,tea,12.5,2\n"
    "C2,2026-01-06 09:00:00,search,,,,\n"
    "C2,2026-01-06 09:30:00,purchase,I2,cups,30,1\n"
)


def url(name: str, merchant, **kwargs) -> str:
    return reverse(name, kwargs={"merchant": merchant.slug, **kwargs})


def upload(client, merchant, kind: str, content: bytes, name: str = "data.csv"):
    return client.post(
        url("data:upload", merchant),
        {"kind": kind, "file": SimpleUploadedFile(name, content, content_type="text/csv")},
    )


def uploaded_import(client, merchant, kind: str, content: bytes, name: str = "data.csv"):
    response = upload(client, merchant, kind, content, name)
    assert response.status_code == 302, response.content.decode()[:2000]
    data_import = DataImport.objects.latest("id")
    assert response["Location"] == url("data:import", merchant, import_id=data_import.pk)
    return data_import


def mapping_post(data_import: DataImport, **choices: str) -> dict[str, str]:
    """The mapping form's POST: the pre-filled choices, with ``choices`` (by source) changed."""
    from campaigns.data_views import ColumnMappingForm
    from campaigns.imports.service import import_preview

    header, _rows = import_preview(data_import=data_import, rows=0)
    form = ColumnMappingForm(
        kind=data_import.kind, header=header, mapping=data_import.column_mapping
    )
    data = {}
    for index, source in enumerate(header):
        data[form.field_name(index)] = choices.get(
            source, form.fields[form.field_name(index)].initial
        )
    return data


def start(client, data_import, data, capture):
    with capture(execute=True):
        return client.post(
            url("data:import-start", data_import.merchant, import_id=data_import.pk), data
        )


# --- the upload flow ---------------------------------------------------------------------------


def test_manager_uploads_previews_maps_and_imports(
    merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    # given: the upload page
    page = client.get(url("data:upload", merchant_a))
    assert page.status_code == 200
    assert b'enctype="multipart/form-data"' in page.content
    # when the manager uploads an events file
    data_import = uploaded_import(client, merchant_a, "events", EVENTS.encode(), "events.csv")
    # then the import page shows the file, its encoding, the first rows and the mapping
    page = client.get(url("data:import", merchant_a, import_id=data_import.pk))
    content = page.content.decode()
    assert page.status_code == 200
    assert "events.csv" in content and "UTF-8" in content
    assert 'data-testid="preview-table"' in content
    assert "2026-01-06 09:30:00" in content
    assert 'data-testid="mapping-form"' in content
    assert data_import.column_mapping["when"] == ""  # not recognized: left out until mapped
    assert data_import.column_mapping["customer_id"] == "customer_id"
    # when the manager maps "when" to the timestamp and starts, creating unknown customers
    data = mapping_post(data_import, when="timestamp") | {"create_missing_customers": "on"}
    response = start(client, data_import, data, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    # then the rows are in the database and the summary is refreshed
    data_import.refresh_from_db()
    assert data_import.status == ImportStatus.SUCCEEDED, data_import.errors
    assert data_import.column_mapping["when"] == "timestamp"
    assert (data_import.rows_inserted, data_import.customers_created) == (4, 2)
    assert Event.objects.filter(merchant=merchant_a).count() == 4
    summary = merchant_data_summary(merchant=merchant_a)
    assert summary.pk is not None
    assert (summary.customers, summary.events) == (2, 4)
    assert summary.data["events_by_day"]["days"] == ["2026-01-05", "2026-01-06"]
    # and the page shows the counts, without polling any more
    page = client.get(url("data:import", merchant_a, import_id=data_import.pk)).content.decode()
    assert 'data-testid="import-succeeded"' in page
    assert 'data-testid="rows-added">4<' in page
    assert "data:import-result" not in page and "/result/" not in page
    assert 'data-testid="mapping-form"' not in page


def test_a_second_start_does_nothing(
    merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    Customer.objects.create(merchant=merchant_a, external_id="C1")
    Customer.objects.create(merchant=merchant_a, external_id="C2")
    data_import = uploaded_import(client, merchant_a, "events", EVENTS.encode())
    data = mapping_post(data_import, when="timestamp")
    start(client, data_import, data, django_capture_on_commit_callbacks)
    start(client, data_import, data, django_capture_on_commit_callbacks)
    assert Job.objects.filter(merchant=merchant_a).count() == 1
    assert Event.objects.count() == 4


def test_a_gb18030_file_with_chinese_header_and_values_imports(
    merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    content = "客户ID,城市,会员等级\nC1,上海,金卡\nC2,北京,银卡\n".encode("gb18030")
    data_import = uploaded_import(client, merchant_a, "customers", content, "客户.csv")
    assert data_import.encoding == "gb18030"
    page = client.get(url("data:import", merchant_a, import_id=data_import.pk)).content.decode()
    assert "gb18030" in page
    assert "上海" in page and "会员等级" in page  # decoded in the preview
    start(client, data_import, mapping_post(data_import), django_capture_on_commit_callbacks)
    data_import.refresh_from_db()
    assert data_import.status == ImportStatus.SUCCEEDED, data_import.errors
    assert Customer.objects.get(merchant=merchant_a, external_id="C1").attributes == {
        "城市": "上海",
        "会员等级": "金卡",
    }


def test_customer_columns_can_be_left_out(
    merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    content = b"customer_id,city,phone\nC1,Shanghai,13800000000\n"
    data_import = uploaded_import(client, merchant_a, "customers", content)
    start(
        client, data_import, mapping_post(data_import, phone=""), django_capture_on_commit_callbacks
    )
    assert Customer.objects.get(external_id="C1").attributes == {"city": "Shanghai"}


def test_a_bad_file_shows_its_problems_and_they_download_as_safe_csv(
    merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    Customer.objects.create(merchant=merchant_a, external_id="C1")
    content = (
        b"customer_id,timestamp,event_type,item_id,category,price,quantity\n"
        b"C1,2026-01-05 10:00:00,=cmd(),I1,tea,12.5,\n"
        b"C1,yesterday,view,I1,tea,-3,\n"
        b"C1,2026-01-05 11:00:00,view,@SUM(A1),tea,1,\n"
    )
    data_import = uploaded_import(client, merchant_a, "events", content)
    start(client, data_import, mapping_post(data_import), django_capture_on_commit_callbacks)
    data_import.refresh_from_db()
    assert data_import.status == ImportStatus.REJECTED
    assert Event.objects.count() == 0
    # the page lists every problem with line, column, value and reason
    page = client.get(url("data:import", merchant_a, import_id=data_import.pk)).content.decode()
    assert 'data-testid="problems-table"' in page
    assert "=cmd()" in page and "yesterday" in page
    assert "unknown event type" in page
    # the CSV download holds them all, every cell neutralized
    response = client.get(url("data:import-errors", merchant_a, import_id=data_import.pk))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="import-{data_import.pk}-problems.csv"'
    )
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["line", "column", "value", "reason"]
    assert len(rows) - 1 == data_import.error_count == 3
    by_column = {(row[0], row[1]): row for row in rows[1:]}
    assert by_column[("2", "event_type")][2] == "'=cmd()"
    assert by_column[("3", "price")][2] == "'-3"
    assert by_column[("3", "timestamp")][2] == "yesterday"


def test_a_file_in_no_known_encoding_is_rejected_with_its_message(merchant_a, mona, client_for):
    client = client_for(mona)
    data_import = uploaded_import(client, merchant_a, "customers", b"customer_id\n\xff\xfe\xff\n")
    assert data_import.status == ImportStatus.REJECTED
    page = client.get(url("data:import", merchant_a, import_id=data_import.pk)).content.decode()
    assert "encoding could not be detected" in page
    assert 'data-testid="mapping-form"' not in page


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "The submitted file is empty."), (b"customer_id\n" + b"C1\n" * 40, "the limit is")],
)
def test_empty_and_oversized_files_are_form_errors(
    merchant_a, mona, client_for, settings, content, message
):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    response = upload(client_for(mona), merchant_a, "customers", content)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not DataImport.objects.exists()


def test_the_mapping_must_name_each_required_column_once(merchant_a, mona, client_for):
    client = client_for(mona)
    data_import = uploaded_import(client, merchant_a, "events", EVENTS.encode())
    twice = mapping_post(data_import, when="timestamp", item_id="timestamp")
    response = client.post(url("data:import-start", merchant_a, import_id=data_import.pk), twice)
    assert response.status_code == 400
    assert "are all imported as" in response.content.decode()
    missing = mapping_post(data_import)  # "when" left out: no timestamp
    response = client.post(url("data:import-start", merchant_a, import_id=data_import.pk), missing)
    assert response.status_code == 400
    assert "Choose a column of your file for: timestamp" in response.content.decode()
    data_import.refresh_from_db()
    assert data_import.status == ImportStatus.UPLOADED
    assert not Job.objects.exists()


def test_events_columns_left_out_are_skipped(
    merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    lines = EVENTS.splitlines()
    content = "\n".join([lines[0] + ",note"] + [line + ",hello" for line in lines[1:]]) + "\n"
    data_import = uploaded_import(client, merchant_a, "events", content.encode())
    data = mapping_post(data_import, when="timestamp", note=LEAVE_OUT)
    data["create_missing_customers"] = "on"
    start(client, data_import, data, django_capture_on_commit_callbacks)
    data_import.refresh_from_db()
    assert data_import.status == ImportStatus.SUCCEEDED, data_import.errors
    assert data_import.column_mapping["note"] == LEAVE_OUT
    assert Event.objects.filter(merchant=merchant_a).count() == len(lines) - 1


def test_ragged_rows_show_in_the_preview(merchant_a, mona, client_for):
    client = client_for(mona)
    content = b"customer_id,city\nC1\nC2,Beijing,extra\n"
    data_import = uploaded_import(client, merchant_a, "customers", content)
    page = client.get(url("data:import", merchant_a, import_id=data_import.pk)).content.decode()
    assert "(no column)" in page and "extra" in page
    assert 'title="missing in this row"' in page


def test_the_results_fragment_polls_only_while_the_import_runs(merchant_a, vera, client_for):
    job = JobFactory(merchant=merchant_a, status=JobStatus.RUNNING)
    data_import = DataImport.objects.create(
        merchant=merchant_a, kind="events", source="upload", status=ImportStatus.RUNNING, job=job
    )
    fragment_url = url("data:import-result", merchant_a, import_id=data_import.pk)
    client = client_for(vera)
    assert f'hx-get="{fragment_url}"' in client.get(fragment_url).content.decode()
    # finished: no more polling, the counts show
    DataImport.objects.filter(pk=data_import.pk).update(
        status=ImportStatus.SUCCEEDED, rows_inserted=7, message="7 rows: 7 added."
    )
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    fragment = client.get(fragment_url).content.decode()
    assert "hx-get" not in fragment and "7 rows: 7 added." in fragment
    # a job that ended without finishing its import stops the polling too
    DataImport.objects.filter(pk=data_import.pk).update(status=ImportStatus.QUEUED)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    fragment = client.get(fragment_url).content.decode()
    assert "hx-get" not in fragment and "stopped before the import finished" in fragment


# --- roles -------------------------------------------------------------------------------------


def test_viewers_see_no_upload_button_and_cannot_upload_or_start(
    merchant_a, mona, vera, client_for
):
    data_import = uploaded_import(client_for(mona), merchant_a, "events", EVENTS.encode())
    client = client_for(vera)
    overview = client.get(url("data:overview", merchant_a)).content.decode()
    assert 'data-testid="import-data"' not in overview
    assert (
        'data-testid="import-data"'
        in client_for(mona).get(url("data:overview", merchant_a)).content.decode()
    )
    upload_page = client.get(url("data:upload", merchant_a)).content.decode()
    assert 'data-testid="upload-form"' not in upload_page
    assert upload(client, merchant_a, "customers", b"customer_id\nC1\n").status_code == 403
    page = client.get(url("data:import", merchant_a, import_id=data_import.pk)).content.decode()
    assert 'data-testid="preview-table"' in page and 'data-testid="mapping-form"' not in page
    start_url = url("data:import-start", merchant_a, import_id=data_import.pk)
    assert client.post(start_url, mapping_post(data_import, when="timestamp")).status_code == 403
    assert DataImport.objects.get(pk=data_import.pk).status == ImportStatus.UPLOADED


# --- summary, data page and home ---------------------------------------------------------------


def add_events(merchant, count: int, start: datetime) -> None:
    customers = [Customer.objects.create(merchant=merchant, external_id=f"C{n}") for n in range(3)]
    kinds = ["view", "cart", "purchase"]
    Event.objects.bulk_create(
        Event(
            merchant=merchant,
            customer=customers[n % 3],
            timestamp=start + timedelta(hours=7 * n),
            event_type=kinds[n % 3],
            fingerprint=n,
        )
        for n in range(count)
    )


def test_the_summary_counts_days_in_the_merchants_time_zone_and_arms(merchant_a):
    customer = Customer.objects.create(merchant=merchant_a, external_id="C1")
    other = Customer.objects.create(merchant=merchant_a, external_id="C2")
    # 17:00 UTC on Jan 5 is already Jan 6 in Shanghai (UTC+8)
    for hour, kind, fingerprint in ((1, "view", 1), (17, "view", 2), (18, "purchase", 3)):
        Event.objects.create(
            merchant=merchant_a,
            customer=customer,
            timestamp=datetime(2026, 1, 5, hour, tzinfo=UTC),
            event_type=kind,
            fingerprint=fingerprint,
        )
    coupon = CouponType.objects.create(
        merchant=merchant_a, code="PCT10", name="10% off", kind="percent_off", value=10
    )
    for n, (arm, converted, revenue) in enumerate(
        [(coupon, True, 30), (coupon, False, 0), (coupon, True, 50), (None, False, 0)]
    ):
        TreatmentLog.objects.create(
            merchant=merchant_a,
            customer=customer if n % 2 else other,
            coupon_type=arm,
            assigned_at=datetime(2026, 1, 1, tzinfo=UTC),
            propensity=0.5,
            converted=converted,
            revenue=revenue,
            fingerprint=n,
        )
    summary = data_summary_refresh(merchant=merchant_a)
    assert summary.events == 3 and summary.customers == 2 and summary.treatments == 4
    assert summary.data["events_by_day"] == {
        "days": ["2026-01-05", "2026-01-06"],
        "counts": {"view": [1, 1], "purchase": [0, 1]},
    }
    assert summary.events_by_type == [
        {"event_type": "view", "count": 2},
        {"event_type": "purchase", "count": 1},
    ]
    assert summary.first_event_at == datetime(2026, 1, 5, 1, tzinfo=UTC)
    assert [arm["arm"] for arm in summary.arms] == ["control", "PCT10"]
    pct10 = summary.arms[1]
    assert (pct10["assigned"], pct10["conversions"]) == (3, 2)
    assert pct10["conversion_rate"] == pytest.approx(2 / 3)
    assert pct10["mean_revenue"] == pytest.approx(80 / 3)
    # one row per merchant, replaced on refresh
    data_summary_refresh(merchant=merchant_a)
    assert MerchantDataSummary.objects.filter(merchant=merchant_a).count() == 1


def test_the_data_page_shows_health_chart_types_arms_and_imports(merchant_a, vera, client_for):
    add_events(merchant_a, 30, datetime(2026, 1, 1, tzinfo=UTC))
    DataImport.objects.create(
        merchant=merchant_a,
        kind="events",
        source="upload",
        filename="jan.csv",
        status=ImportStatus.SUCCEEDED,
        rows_total=30,
        message="30 rows: 30 added.",
    )
    data_summary_refresh(merchant=merchant_a)
    page = client_for(vera).get(url("data:overview", merchant_a)).content.decode()
    assert 'id="events-per-day-chart"' in page and "vendor/plotly/plotly.min.js" in page
    assert "Events per day, by type" in page and "Events (count)" in page
    assert 'data-testid="events-per-type"' in page and "Add to cart" in page
    assert "jan.csv" in page and "30 rows: 30 added." in page
    assert 'data-testid="event-count">30<' in page


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


@pytest.mark.parametrize("name", ["data:overview", "campaigns:home"])
def test_page_queries_do_not_grow_with_the_data(
    merchant_a, merchant_b, alice, bob, client_for, django_assert_max_num_queries, name
):
    add_events(merchant_a, 50, datetime(2026, 1, 1, tzinfo=UTC))
    add_events(merchant_b, 500, datetime(2026, 1, 1, tzinfo=UTC))
    for merchant, owner, imports in ((merchant_a, alice, 2), (merchant_b, bob, 8)):
        for _ in range(imports):
            DataImport.objects.create(
                merchant=merchant,
                kind="events",
                source="upload",
                status=ImportStatus.SUCCEEDED,
                created_by=owner,
                errors=[{"line": 2, "column": "price", "value": "-1", "reason": "negative"}],
            )
        data_summary_refresh(merchant=merchant)
    small = _queries(client_for(alice), url(name, merchant_a))
    large = _queries(client_for(bob), url(name, merchant_b))
    assert small == large
    client = client_for(bob)
    with django_assert_max_num_queries(12):  # a first visit also stores the current merchant
        client.get(url(name, merchant_b))


def test_home_shows_data_health_and_what_to_do_next(merchant_a, alice, vera, client_for):
    client = client_for(alice)
    page = client.get(url("campaigns:home", merchant_a)).content.decode()
    upload_url = url("data:upload", merchant_a)
    assert 'data-testid="data-health"' in page
    assert f'href="{upload_url}?kind=customers"' in page
    assert f"{upload_url}?kind=treatments" in page
    assert "Manage members" in page and "Recent jobs" in page
    # customers but no events: import events next
    Customer.objects.create(merchant=merchant_a, external_id="C1")
    data_summary_refresh(merchant=merchant_a)
    page = client.get(url("campaigns:home", merchant_a)).content.decode()
    assert f"{upload_url}?kind=customers" not in page
    assert f'href="{upload_url}?kind=events"' in page
    # viewers read the hints but get no link to a page they cannot use
    page = client_for(vera).get(url("campaigns:home", merchant_a)).content.decode()
    assert "Import behaviour events" in page and f"{upload_url}?kind=events" not in page


def test_the_upload_page_preselects_the_kind_from_the_hint(merchant_a, mona, client_for):
    page = client_for(mona).get(url("data:upload", merchant_a) + "?kind=treatments")
    checked = re.findall(r'<input[^>]*name="kind"[^>]*checked[^>]*>', page.content.decode())
    assert len(checked) == 1 and 'value="treatments"' in checked[0]


# --- exports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138", "'+86 138"),
        ("-3", "'-3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),
        (None, None),
    ],
)
def test_csv_safe_neutralizes_formulas(value, expected):
    assert csv_safe(value) == expected


def test_an_oversized_upload_is_refused_before_it_is_read(merchant_a, mona, client_for, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 1024
    response = client_for(mona).post(
        url("data:upload", merchant_a),
        {
            "kind": "customers",
            "file": SimpleUploadedFile("big.csv", b"customer_id\n" + b"C1\n" * 40_000),
        },
    )
    assert response.status_code == 413
    assert "larger than the limit" in response.content.decode()
    assert not DataImport.objects.exists()
