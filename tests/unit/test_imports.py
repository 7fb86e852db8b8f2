"""The import service through its three doors; every bad input gets a clear message and writes
nothing. Runs on SQLite locally and on PostgreSQL (COPY path) in CI."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError
from django.urls import reverse

from campaigns.choices import ImportSource, ImportStatus
from campaigns.imports import service, storage
from campaigns.imports.reading import InputError
from campaigns.models import CouponType, Customer, DataImport, Event, Merchant, TreatmentLog
from campaigns.summary import data_summary_refresh, merchant_data_summary

pytestmark = pytest.mark.django_db

CUSTOMERS = "customer_id,city,age,zip,vip\nC1,Shanghai,31,01234,true\nC2,Beijing,,100000,false\n"
EVENTS_HEADER = "customer_id,timestamp,event_type,item_id,category,price,quantity\n"
EVENTS = EVENTS_HEADER + (
    "C1,2026-01-05 10:00:00,view,I1,tea,12.5,\n"
    "C1,2026-01-05T10:05:00Z,cart,I1,tea,12.5,2\n"
    "C2,2026/01/06 09:00,search,,,,\n"
)
TREATMENTS = (
    "customer_id,arm,assigned_at,propensity,converted,revenue\n"
    "C1,pct10,2026-01-07 00:00:00,0.5,1,25\n"
    "C2,control,2026-01-07 00:00:00,0.5,0,\n"
)


def run(merchant, kind: str, text: str | bytes, tmp_path: Path, **options) -> DataImport:
    path = tmp_path / f"{kind}-{DataImport.objects.count()}.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    data_import = service.import_create_from_file(
        merchant=merchant,
        kind=kind,
        path=path,
        filename=path.name,
        actor=None,
        source=ImportSource.COMMAND,
    )
    for key, value in options.items():
        setattr(data_import, key, value)
    if data_import.status == ImportStatus.REJECTED:
        return data_import
    return service.import_run(data_import=data_import)


def reasons(data_import: DataImport) -> list[tuple[int, str, str]]:
    return [(e["line"], e["column"], e["reason"]) for e in data_import.errors]


@pytest.fixture
def shop(merchant_a):
    CouponType.objects.create(
        merchant=merchant_a, code="PCT10", name="10% off", kind="percent_off", value=10
    )
    return merchant_a


@pytest.fixture
def loaded(shop, tmp_path):
    for kind, text in (("customers", CUSTOMERS), ("events", EVENTS), ("treatments", TREATMENTS)):
        result = run(shop, kind, text, tmp_path)
        assert result.status == ImportStatus.SUCCEEDED, result.errors
    return shop


def test_a_full_load_types_everything(loaded):
    c1 = Customer.objects.get(merchant=loaded, external_id="C1")
    # typed attributes; "01234" keeps its leading zero as text
    assert c1.attributes == {"city": "Shanghai", "age": 31, "zip": "01234", "vip": True}
    assert Customer.objects.get(external_id="C2").attributes == {
        "city": "Beijing",
        "zip": 100000,
        "vip": False,
    }
    # naive times are in the merchant's zone (Asia/Shanghai, UTC+8); zoned ones keep their zone
    times = sorted(Event.objects.filter(customer=c1).values_list("timestamp", flat=True))
    assert times == [
        datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
        datetime(2026, 1, 5, 10, 5, tzinfo=UTC),
    ]
    assert (c1.first_seen_at, c1.last_seen_at) == (times[0], times[1])
    search = Event.objects.get(event_type="search")
    assert (search.item_id, search.price, search.quantity) == ("", None, None)
    treated = TreatmentLog.objects.get(customer=c1)
    assert (treated.arm, treated.propensity, treated.converted, float(treated.revenue)) == (
        "PCT10",
        0.5,
        True,
        25.0,
    )
    assert TreatmentLog.objects.get(customer__external_id="C2").arm == "control"


def test_importing_the_same_files_again_adds_nothing(loaded, tmp_path):
    counts = (Customer.objects.count(), Event.objects.count(), TreatmentLog.objects.count())
    for kind, text in (("customers", CUSTOMERS), ("events", EVENTS), ("treatments", TREATMENTS)):
        again = run(loaded, kind, text, tmp_path)
        assert again.status == ImportStatus.SUCCEEDED
        assert again.rows_inserted == 0
        assert again.rows_unchanged == again.rows_total
    assert (Customer.objects.count(), Event.objects.count(), TreatmentLog.objects.count()) == counts


def _summary_figures(merchant) -> dict:
    data = dict(merchant_data_summary(merchant=merchant).data)
    data.pop("last_import_at")
    return data


def _fully_counted(merchant) -> dict:
    data = dict(data_summary_refresh(merchant=merchant).data)
    data.pop("last_import_at")
    return data


# New rows only, at times no stored event of their customers has: the merge's fast path. One
# falls on the next day in Shanghai (16:30 UTC), one is a purchase of a new day and type.
NEW_EVENTS = EVENTS_HEADER + (
    "C1,2026-01-08T16:30:00Z,view,I2,tea,8,\n"
    "C2,2026-01-09 11:00:00,purchase,I3,cups,20.25,3\n"
    "C2,2026-01-09 12:00:00,review,I3,cups,,\n"
)


def test_new_events_are_added_to_the_stored_summary_as_a_full_count_would(
    loaded, tmp_path, monkeypatch
):
    refreshes = []
    monkeypatch.setattr(service, "data_summary_refresh", lambda **kw: refreshes.append(kw) or None)
    result = run(loaded, "events", NEW_EVENTS, tmp_path)
    assert (result.rows_inserted, result.rows_unchanged) == (3, 0)
    assert refreshes == []  # the summary was added to, not recounted
    added = _summary_figures(loaded)
    assert added["events"] == 6
    counted = _fully_counted(loaded)
    assert added.pop("sums") == pytest.approx(counted.pop("sums"))
    assert added == counted
    assert counted["events_by_day"]["days"] == ["2026-01-05", "2026-01-06", "2026-01-09"]
    assert counted["last_event_at"] == "2026-01-09T04:00:00+00:00"


def test_events_among_stored_ones_are_checked_row_by_row(loaded, tmp_path, monkeypatch):
    # C1 already has events at 10:00 and 10:05 (local): 10:02 lies between them, so the merge
    # cannot take its fast path, and the file's first row is there already.
    text = EVENTS_HEADER + (
        "C1,2026-01-05 10:00:00,view,I1,tea,12.5,\nC1,2026-01-05 10:02:00,view,I9,tea,4,\n"
    )
    refreshes = []
    original = service.data_summary_refresh
    monkeypatch.setattr(
        service, "data_summary_refresh", lambda **kw: refreshes.append(kw) or original(**kw)
    )
    result = run(loaded, "events", text, tmp_path)
    assert (result.rows_inserted, result.rows_unchanged) == (1, 1)
    assert len(refreshes) == 1  # some rows were there: the summary is counted again
    assert Event.objects.filter(customer__external_id="C1").count() == 3
    again = run(loaded, "events", text, tmp_path)
    assert (again.rows_inserted, again.rows_unchanged) == (0, 2)
    assert _summary_figures(loaded)["events"] == 4
    # new rows between stored ones, none there yet: added one by one, summary added to
    between = EVENTS_HEADER + "C1,2026-01-05 10:01:00,view,I9,tea,4,\n"
    assert run(loaded, "events", between, tmp_path).rows_inserted == 1
    assert len(refreshes) == 2
    added = _summary_figures(loaded)
    counted = _fully_counted(loaded)
    assert added.pop("sums") == pytest.approx(counted.pop("sums"))
    assert added == counted and added["events"] == 5


def stored_events(merchant) -> list[tuple]:
    return list(
        Event.objects.filter(merchant=merchant)
        .order_by("customer__external_id", "timestamp")
        .values_list("customer__external_id", "timestamp", "event_type", "price", "quantity")
    )


def test_events_spread_over_several_buckets_all_go_in_once(shop, tmp_path, monkeypatch):
    """The spool's buckets (by customer id range) come back in order, every row exactly once,
    by the fresh path and by the row-by-row one."""
    customers = "customer_id\n" + "".join(f"K{i}\n" for i in range(12))
    assert run(shop, "customers", customers, tmp_path).status == ImportStatus.SUCCEEDED
    rows = [f"K{i % 12},2026-02-{1 + i // 12:02d} 10:00:00,cart,I{i},tea,{i}.25,{i}\n"
            for i in range(60)]  # fmt: skip
    monkeypatch.setattr(storage.EventStage, "BUCKET_ROWS", 1)  # as many buckets as customers
    split = []
    original = storage._Spool.split
    monkeypatch.setattr(
        storage._Spool,
        "split",
        lambda self, table: split.append(self.bounds) or original(self, table),
    )
    first = run(shop, "events", EVENTS_HEADER + "".join(rows[:40]), tmp_path)
    assert (first.rows_inserted, first.rows_unchanged) == (40, 0)
    assert len(split[0]) == 11  # 12 buckets
    # rows 30-59: some stored already, and between stored ones: the row-by-row path
    second = run(shop, "events", EVENTS_HEADER + "".join(rows[30:]), tmp_path)
    assert (second.rows_inserted, second.rows_unchanged) == (20, 10)
    stored = stored_events(shop)
    assert len(stored) == len(set(stored)) == 60
    assert sorted((e[0], e[4]) for e in stored) == sorted((f"K{i % 12}", i) for i in range(60))
    assert {e[4]: e[3] for e in stored}[7] == Decimal("7.25")


def test_the_spool_is_removed_whatever_happens(loaded, tmp_path, monkeypatch, settings):
    spool_root = tmp_path / "spool"
    settings.IMPORT_SPOOL_ROOT = spool_root
    during = []
    original = storage.EventStage._merge_events

    def look_then_merge(self, merchant_id, **options):
        during.append(sorted(p.name for p in spool_root.rglob("*.arrows")))
        return original(self, merchant_id, **options)

    monkeypatch.setattr(storage.EventStage, "_merge_events", look_then_merge)
    text = EVENTS_HEADER + "C2,2026-04-01 10:00:00,view,I5,tea,3,\n"
    assert run(loaded, "events", text, tmp_path).status == ImportStatus.SUCCEEDED
    assert during == [["bucket-0000.arrows"]]
    assert list(spool_root.iterdir()) == []

    def fail(self, merchant_id, **options):
        look_then_merge(self, merchant_id, **options)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(storage.EventStage, "_merge_events", fail)
    with pytest.raises(OperationalError):
        run(loaded, "events", EVENTS_HEADER + "C2,2026-04-02 10:00:00,view,I5,tea,3,\n", tmp_path)
    assert during[-1] == ["bucket-0000.arrows"]
    assert list(spool_root.iterdir()) == []
    rejected = run(loaded, "events", EVENTS_HEADER + "C2,yesterday,view,,,,\n", tmp_path)
    assert rejected.status == ImportStatus.REJECTED
    assert list(spool_root.iterdir()) == []


def test_customers_spans_widen_with_new_events_and_only_then(loaded, tmp_path, monkeypatch):
    widened = []
    original = storage.Stage.update_customers_seen
    monkeypatch.setattr(
        storage.Stage,
        "update_customers_seen",
        lambda self, merchant_id: widened.append(original(self, merchant_id)) or widened[-1],
    )
    c1 = Customer.objects.get(merchant=loaded, external_id="C1")
    span = (c1.first_seen_at, c1.last_seen_at)  # 2026-01-05 02:00 and 10:05 UTC
    inside = EVENTS_HEADER + "C1,2026-01-05 12:00:00,view,I7,tea,1,\n"  # 04:00 UTC
    assert run(loaded, "events", inside, tmp_path).rows_inserted == 1
    c1.refresh_from_db()
    assert (c1.first_seen_at, c1.last_seen_at) == span
    earlier_and_later = EVENTS_HEADER + (
        "C1,2026-01-04 12:00:00,view,I7,tea,1,\nC2,2026-02-01 12:00:00,view,I7,tea,1,\n"
    )
    assert run(loaded, "events", earlier_and_later, tmp_path).rows_inserted == 2
    c1.refresh_from_db()
    c2 = Customer.objects.get(merchant=loaded, external_id="C2")
    assert c1.first_seen_at == datetime(2026, 1, 4, 4, tzinfo=UTC)
    assert c1.last_seen_at == span[1]
    assert c2.last_seen_at == datetime(2026, 2, 1, 4, tzinfo=UTC)
    assert widened == [0, 2]


def test_reimporting_customers_updates_changed_attributes(loaded, tmp_path):
    result = run(
        loaded, "customers", "customer_id,city\nC1,Hangzhou\nC2,Beijing\nC3,Suzhou\n", tmp_path
    )
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (1, 1, 1)
    assert Customer.objects.get(external_id="C1").attributes["city"] == "Hangzhou"
    assert Customer.objects.get(external_id="C1").attributes["age"] == 31  # other keys kept


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_encodings_are_detected(shop, tmp_path, encoding):
    text = "用户ID,城市\nC1,上海\nC2,北京\n"
    result = run(shop, "customers", text.encode(encoding), tmp_path)
    assert result.status == ImportStatus.SUCCEEDED, result.errors
    assert result.encoding == encoding
    assert Customer.objects.get(external_id="C1").attributes == {"城市": "上海"}


def test_unknown_customers_are_rejected_or_created_on_request(shop, tmp_path):
    rejected = run(shop, "events", EVENTS, tmp_path)
    assert rejected.status == ImportStatus.REJECTED
    assert (
        2,
        "customer_id",
        "unknown customer; import customers first, or choose to create unknown customers",
    ) in reasons(rejected)
    assert rejected.error_count == 3
    assert Event.objects.count() == 0 and Customer.objects.count() == 0
    created = run(shop, "events", EVENTS, tmp_path, create_missing_customers=True)
    assert created.status == ImportStatus.SUCCEEDED
    assert (created.customers_created, created.rows_inserted) == (2, 3)


def test_another_merchants_customer_ids_are_unknown_here(shop, merchant_b, tmp_path):
    assert run(merchant_b, "customers", CUSTOMERS, tmp_path).status == ImportStatus.SUCCEEDED
    result = run(shop, "events", EVENTS, tmp_path)
    assert result.status == ImportStatus.REJECTED
    assert Event.objects.count() == 0


def test_optional_event_columns_may_be_absent(loaded, tmp_path):
    result = run(
        loaded,
        "events",
        "customer_id,timestamp,event_type\nC2,2026-02-02 10:00:00,search\n",
        tmp_path,
    )
    assert result.status == ImportStatus.SUCCEEDED, result.errors
    assert Event.objects.filter(customer__external_id="C2", event_type="search").count() == 2


def test_fields_that_look_like_formulas_are_stored_as_text(loaded, tmp_path):
    text = EVENTS_HEADER + "C1,2026-02-01 10:00:00,view,=HYPERLINK(1),+cat,,\n"
    assert run(loaded, "events", text, tmp_path).status == ImportStatus.SUCCEEDED
    event = Event.objects.get(item_id="=HYPERLINK(1)")
    assert event.category == "+cat"


# --- bad input: a clear message, and nothing written ----------------------------------------------

BAD_EVENTS = [
    ("bad timestamp", "C1,yesterday,view,,,,\n", (2, "timestamp", "not a date and time")),
    (
        "impossible date",
        "C1,2026-13-40 10:00:00,view,,,,\n",
        (2, "timestamp", "not a date and time"),
    ),
    (
        "negative price",
        "C1,2026-01-05 10:00:00,view,I1,tea,-3,\n",
        (2, "price", "must not be negative"),
    ),
    ("text price", "C1,2026-01-05 10:00:00,view,I1,tea,cheap,\n", (2, "price", "not a number")),
    (
        "price beyond the column",
        "C1,2026-01-05 10:00:00,view,I1,tea,1000000000000,\n",
        (2, "price", "too large"),
    ),
    (
        "negative quantity",
        "C1,2026-01-05 10:00:00,cart,I1,tea,3,-1\n",
        (2, "quantity", "must not be negative"),
    ),
    (
        "unknown event type",
        "C1,2026-01-05 10:00:00,teleport,,,,\n",
        (2, "event_type", "unknown event type"),
    ),
    (
        "empty customer",
        ",2026-01-05 10:00:00,view,,,,\n",
        (2, "customer_id", "a value is required"),
    ),
    (
        "very long item",
        f"C1,2026-01-05 10:00:00,view,{'x' * 500},,,\n",
        (2, "item_id", "longer than 128"),
    ),
    ("truncated row", "C1,2026-01-05 10:00:00,vi", (2, "", "expected 7 fields, found 3")),
]


@pytest.mark.parametrize(("label", "row", "expected"), BAD_EVENTS, ids=[b[0] for b in BAD_EVENTS])
def test_bad_event_rows_are_reported_and_nothing_is_written(loaded, tmp_path, label, row, expected):
    before = Event.objects.count()
    good = "C2,2026-03-01 10:00:00,view,I9,tea,1,\n"
    result = run(loaded, "events", EVENTS_HEADER + good + row, tmp_path)
    assert result.status == ImportStatus.REJECTED
    line, column, reason = expected
    assert any(
        e["line"] == line + 1 and e["column"] == column and reason in e["reason"]
        for e in result.errors
    ), result.errors
    assert Event.objects.count() == before


def test_duplicate_rows_in_one_file(loaded, tmp_path):
    row = "C1,2026-03-01 10:00:00,view,I9,tea,1,\n"
    result = run(loaded, "events", EVENTS_HEADER + row + row, tmp_path)
    assert result.status == ImportStatus.REJECTED
    assert result.errors == [
        {"line": 3, "column": "", "value": "same as line 2", "reason": "duplicate row in this file"}
    ]
    duplicate_customers = run(loaded, "customers", "customer_id\nC7\nC7\n", tmp_path)
    assert reasons(duplicate_customers) == [(3, "customer_id", "duplicate customer in this file")]
    assert not Customer.objects.filter(external_id="C7").exists()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "customer_id,event_type,item_id,category,price,quantity\n",
            "the required column 'timestamp' is missing",
        ),
        (EVENTS_HEADER.strip() + ",colour\n", "unexpected column 'colour'"),
    ],
)
def test_missing_and_extra_columns(loaded, tmp_path, header, message):
    fields = header.count(",") + 1
    row = ",".join(["C1", "2026-03-01 10:00:00", "view", "I9", "tea", "1", "2", "3"][:fields])
    result = run(loaded, "events", header + row + "\n", tmp_path)
    assert result.status == ImportStatus.REJECTED
    assert any(message in e["reason"] and e["line"] == 1 for e in result.errors)


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (
            "C1,PCT10,2026-01-07 00:00:00,0,1,25",
            "propensity",
            "must be greater than 0 and at most 1",
        ),
        (
            "C1,PCT10,2026-01-07 00:00:00,1.5,1,25",
            "propensity",
            "must be greater than 0 and at most 1",
        ),
        (
            "C1,FREESHIP,2026-01-07 00:00:00,0.5,1,25",
            "arm",
            "not one of this merchant's coupon types (PCT10)",
        ),
        ("C1,PCT10,2026-01-07 00:00:00,0.5,maybe,25", "converted", "not a yes/no value"),
        ("C1,PCT10,2026-01-07 00:00:00,0.5,1,-5", "revenue", "must not be negative"),
    ],
)
def test_bad_treatments(loaded, tmp_path, row, column, reason):
    before = TreatmentLog.objects.count()
    result = run(loaded, "treatments", TREATMENTS.splitlines()[0] + "\n" + row + "\n", tmp_path)
    assert result.status == ImportStatus.REJECTED
    assert any(e["column"] == column and reason in e["reason"] for e in result.errors), (
        result.errors
    )
    assert TreatmentLog.objects.count() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (b"   \n\n", "The file is empty."),
        (EVENTS_HEADER.encode(), "The file has a header but no rows."),
        (b"customer_id,city\nC1,\xff\xfe\xfd\xff\n", "encoding could not be detected"),
        (b"customer_id\x00,city\nC1,x\n", "not a text file"),
    ],
)
def test_whole_file_problems(shop, tmp_path, content, message):
    kind = "events" if content.startswith(b"customer_id,timestamp") else "customers"
    result = run(shop, kind, content, tmp_path)
    assert result.status == ImportStatus.REJECTED
    assert message in result.message
    assert Customer.objects.count() == 0


def test_a_file_over_the_upload_limit_is_refused(shop, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    upload = SimpleUploadedFile(
        "big.csv", b"customer_id\n" + b"C1\n" * 100, content_type="text/csv"
    )
    with pytest.raises(InputError, match="the limit is"):
        service.import_create_from_upload(
            merchant=shop, kind="customers", upload=upload, actor=None
        )
    assert DataImport.objects.count() == 0


def test_a_failure_during_the_merge_leaves_the_data_as_it_was(loaded, tmp_path, monkeypatch):
    before = list(Event.objects.values_list("pk", flat=True))
    original = storage.EventStage._merge_events

    def merge_then_lose_the_connection(self, merchant_id, **options):
        original(self, merchant_id, **options)  # rows are inserted ...
        raise OperationalError("server closed the connection unexpectedly")  # ... then it breaks

    monkeypatch.setattr(storage.EventStage, "_merge_events", merge_then_lose_the_connection)
    text = EVENTS_HEADER + "C1,2026-04-01 10:00:00,view,I5,tea,3,\n"
    with pytest.raises(OperationalError):
        run(loaded, "events", text, tmp_path)
    assert list(Event.objects.values_list("pk", flat=True)) == before
    failed = DataImport.objects.latest("pk")
    assert failed.status == ImportStatus.FAILED
    assert "connection" in failed.message


# --- the other doors ---------------------------------------------------------------------------


def test_management_command_imports_with_errors_on_stderr(shop, tmp_path, capsys):
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS)
    call_command("import_customers", str(path), "--merchant", shop.slug, "--no-progress")
    assert Customer.objects.filter(merchant=shop).count() == 2
    bad = tmp_path / "events.csv"
    bad.write_text(EVENTS_HEADER + "C1,never,view,,,,\n")
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_events", str(bad), "--merchant", shop.slug, "--no-progress")
    assert "line 2, column timestamp ('never'): not a date and time" in capsys.readouterr().err


def test_api_bulk_json_and_csv(shop, mona, api_for):
    client = api_for(mona)
    url = reverse("api:customers-bulk", kwargs={"merchant": shop.slug})
    response = client.post(url, [{"customer_id": "J1", "tier": "gold", "age": 40}], format="json")
    assert response.status_code == 201, response.json()
    assert Customer.objects.get(external_id="J1").attributes == {"tier": "gold", "age": 40}
    events_url = reverse("api:events-bulk", kwargs={"merchant": shop.slug})
    body = (EVENTS_HEADER + "J1,2026-01-05 10:00:00,view,I1,tea,12.5,\n").encode("gb18030")
    response = client.generic("POST", events_url, body, content_type="text/csv")
    assert response.status_code == 201, response.json()
    assert response.json()["rows_inserted"] == 1
    # the same body again adds nothing
    assert (
        client.generic("POST", events_url, body, content_type="text/csv").json()["rows_inserted"]
        == 0
    )


def test_api_bulk_reports_row_errors_with_400(shop, mona, api_for):
    url = reverse("api:events-bulk", kwargs={"merchant": shop.slug})
    rows = [
        {
            "customer_id": "Z",
            "timestamp": "2026-01-05 10:00:00",
            "event_type": "view",
            "item_id": "",
            "category": "",
            "price": -1,
            "quantity": None,
        }
    ]
    response = api_for(mona).post(url + "?create_customers=1", rows, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"line": 1, "column": "price", "value": "-1", "reason": "must not be negative"}
    ]
    assert not Customer.objects.filter(external_id="Z").exists()


def test_api_file_upload_runs_as_a_job(shop, mona, api_for, django_capture_on_commit_callbacks):
    url = reverse("api:import-list", kwargs={"merchant": shop.slug})
    upload = SimpleUploadedFile("customers.csv", CUSTOMERS.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(mona).post(
            url, {"kind": "customers", "file": upload}, format="multipart"
        )
    assert response.status_code == 202, response.content
    detail = api_for(mona).get(response["Location"]).json()
    assert detail["status"] == "succeeded"
    assert detail["rows_inserted"] == 2
    assert detail["job"] is not None


def test_viewers_cannot_import(shop, vera, api_for):
    url = reverse("api:customers-bulk", kwargs={"merchant": shop.slug})
    assert api_for(vera).post(url, [{"customer_id": "V"}], format="json").status_code == 403


def test_simulate_merchant_loads_through_the_import_path(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    call_command("simulate_merchant", "--customers", "300", "--seed", "3", "--slug", "sim-small")
    merchant = Merchant.objects.get(slug="sim-small")
    assert Customer.objects.filter(merchant=merchant).count() == 300
    assert Event.objects.filter(merchant=merchant).count() > 300
    assert TreatmentLog.objects.filter(merchant=merchant).count() == 300
    assert set(CouponType.objects.filter(merchant=merchant).values_list("code", flat=True)) == {
        "PCT10",
        "AMT20",
        "SPEND199_30",
        "FREESHIP",
        "MEMBER",
    }
    assert (tmp_path / "simulations" / "sim-small" / "ground_truth.npz").exists()
    imports = DataImport.objects.filter(merchant=merchant)
    assert {i.status for i in imports} == {ImportStatus.SUCCEEDED}
    # running it again adds nothing
    call_command("simulate_merchant", "--customers", "300", "--seed", "3", "--slug", "sim-small")
    assert Customer.objects.filter(merchant=merchant).count() == 300
    assert TreatmentLog.objects.filter(merchant=merchant).count() == 300


def test_a_large_import_refreshes_the_planner_statistics_on_postgresql(shop, tmp_path, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(storage, "ANALYZE_AFTER_ROWS", 2)  # "large": 2 rows or more
    with CaptureQueriesContext(connection) as small:
        run(shop, "customers", "customer_id\nA1\n", tmp_path)
    with CaptureQueriesContext(connection) as large:
        run(shop, "customers", "customer_id\nB1\nB2\nB3\n", tmp_path)
    analyzed = [
        q["sql"] for q in large.captured_queries if q["sql"] == "ANALYZE campaigns_customer"
    ]
    assert not any(q["sql"] == "ANALYZE campaigns_customer" for q in small.captured_queries)
    # PostgreSQL plans from statistics; SQLite's planner does not need them refreshed
    assert len(analyzed) == (1 if connection.vendor == "postgresql" else 0)
    if connection.vendor == "postgresql":  # a quick sample, and the setting put back after it
        sql = [q["sql"] for q in large.captured_queries]
        at = sql.index("ANALYZE campaigns_customer")
        assert sql[at - 1] == "SET LOCAL default_statistics_target = 20"
        assert sql[at + 1] == "SET LOCAL default_statistics_target TO DEFAULT"
