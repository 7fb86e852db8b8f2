"""Outcomes (orders after a campaign started) through the import service's three doors, and
their attribution to campaign assignments: by code and by window, every broken rule a row-level
problem, all or nothing, idempotent (campaigns/imports/attribution.py states the rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from campaigns.assignments import strategy_rollback
from campaigns.choices import AssignmentKind, ImportSource, ImportStatus, StrategyStatus
from campaigns.imports import service
from campaigns.models import (
    Assignment,
    Campaign,
    CouponType,
    Customer,
    DataImport,
    Outcome,
    RealizedResult,
    Strategy,
)
from campaigns.services import campaign_update
from tests.factories import CampaignFactory, StrategyFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # the campaign starts (08:00 in Shanghai)
ASSIGNED = START - timedelta(days=2)  # the strategy was applied two days before
WINDOW_DAYS = 7
HEADER = "customer_id,order_id,ordered_at,revenue,code\n"


def run(merchant, text: str, tmp_path: Path) -> DataImport:
    path = tmp_path / f"outcomes-{DataImport.objects.count()}.csv"
    path.write_text(text)
    data_import = service.import_create_from_file(
        merchant=merchant,
        kind="outcomes",
        path=path,
        filename=path.name,
        actor=None,
        source=ImportSource.COMMAND,
    )
    assert data_import.status != ImportStatus.REJECTED, data_import.errors
    return service.import_run(data_import=data_import)


def problems(data_import: DataImport) -> list[tuple[int, str, str]]:
    return [(e["line"], e["column"], e["reason"]) for e in data_import.errors]


def at(delta: timedelta) -> str:
    return (START + delta).isoformat()


def applied_campaign(merchant, *, name: str, prefix: str, assigned=ASSIGNED, start=START, **kw):
    """A campaign with an applied strategy: C1 and C3 got PCT10 (codes <prefix>1, <prefix>3),
    C2 is held out, C4 explored into no coupon."""
    coupon, _ = CouponType.objects.get_or_create(
        merchant=merchant,
        code="PCT10",
        defaults={"name": "10%", "kind": "percent_off", "value": 10},
    )
    campaign = CampaignFactory(
        merchant=merchant,
        name=name,
        starts_at=start,
        ends_at=start + timedelta(days=14),
        attribution_window_days=kw.pop("window", WINDOW_DAYS),
        coupon_types=[coupon],
        status="applied",
    )
    strategy = StrategyFactory(
        campaign=campaign, status=StrategyStatus.APPLIED, arms=["control", "PCT10"]
    )
    plan = {
        "C1": (AssignmentKind.TREATMENT, coupon),
        "C2": (AssignmentKind.HOLDOUT, None),
        "C3": (AssignmentKind.TREATMENT, coupon),
        "C4": (AssignmentKind.EXPLORATION, None),
    }
    for external_id, (kind, coupon_type) in plan.items():
        customer, _ = Customer.objects.get_or_create(merchant=merchant, external_id=external_id)
        Assignment.objects.create(
            merchant=merchant,
            campaign=campaign,
            strategy=strategy,
            customer=customer,
            coupon_type=coupon_type,
            kind=kind,
            code=f"{prefix}{external_id[1:]}" if coupon_type else None,
            propensity=0.5,
            assigned_at=assigned,
        )
    return strategy


@pytest.fixture
def spring(merchant_a):
    return applied_campaign(merchant_a, name="Spring", prefix="SPRINGCODE")


def assignment(strategy: Strategy, customer: str) -> Assignment:
    return Assignment.objects.get(strategy=strategy, customer__external_id=customer)


# --- attribution -------------------------------------------------------------------------------


def test_orders_are_attributed_by_code_and_by_window(spring, merchant_a, tmp_path):
    text = HEADER + (
        f"C1,O1,{at(timedelta(days=1))},90.00,SPRINGCODE1\n"  # its own code, in the window
        f"C2,O2,{at(timedelta(days=2))},50,\n"  # held out, no code: counts for the holdout
        f"C4,O3,{at(timedelta(hours=1))},30,\n"  # explored into no coupon
        f"C1,O4,{at(timedelta(days=WINDOW_DAYS))},40,\n"  # at the window's end: not in it
        f"C3,O5,{at(-timedelta(hours=1))},20,\n"  # before the campaign started
    )
    result = run(merchant_a, text, tmp_path)
    assert result.status == ImportStatus.SUCCEEDED, result.errors
    assert result.rows_inserted == 5
    attributed = dict(Outcome.objects.values_list("order_id", "assignment_id"))
    assert attributed == {
        "O1": assignment(spring, "C1").pk,
        "O2": assignment(spring, "C2").pk,
        "O3": assignment(spring, "C4").pk,
        "O4": None,
        "O5": None,
    }
    o1 = Outcome.objects.get(order_id="O1")
    assert (o1.code, o1.revenue, o1.customer.external_id) == ("SPRINGCODE1", Decimal("90.00"), "C1")


def test_naive_times_are_in_the_shops_time_zone(spring, merchant_a, tmp_path):
    # 2026-03-01 09:00 in Shanghai is 01:00 UTC: one hour into the campaign
    result = run(merchant_a, HEADER + "C2,O1,2026-03-01 09:00:00,10,\n", tmp_path)
    assert result.status == ImportStatus.SUCCEEDED, result.errors
    outcome = Outcome.objects.get(order_id="O1")
    assert outcome.ordered_at == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert outcome.assignment == assignment(spring, "C2")


def test_codes_are_read_without_regard_to_case_and_spaces(spring, merchant_a, tmp_path):
    result = run(merchant_a, HEADER + f"C1,O1,{at(timedelta(days=1))},9, springcode1 \n", tmp_path)
    assert result.status == ImportStatus.SUCCEEDED, result.errors
    assert Outcome.objects.get(order_id="O1").assignment == assignment(spring, "C1")


def test_the_window_opens_at_the_assignment_when_it_comes_after_the_start(merchant_a, tmp_path):
    late = applied_campaign(
        merchant_a, name="Late", prefix="LATECODE", assigned=START + timedelta(days=3)
    )
    text = HEADER + (
        f"C2,O1,{at(timedelta(days=2))},10,\n"  # started, but not assigned yet
        f"C2,O2,{at(timedelta(days=3, hours=1))},10,\n"
        f"C2,O3,{at(timedelta(days=3 + WINDOW_DAYS, hours=-1))},10,\n"
    )
    assert run(merchant_a, text, tmp_path).status == ImportStatus.SUCCEEDED
    holdout = assignment(late, "C2").pk
    assert dict(Outcome.objects.values_list("order_id", "assignment_id")) == {
        "O1": None,
        "O2": holdout,
        "O3": holdout,
    }


def test_overlapping_windows_give_a_plain_order_to_the_window_opened_last(
    spring, merchant_a, tmp_path
):
    later = applied_campaign(
        merchant_a,
        name="Summer",
        prefix="SUMMERCODE",
        assigned=START + timedelta(days=2),
        start=START + timedelta(days=2),
    )
    text = HEADER + (
        f"C2,O1,{at(timedelta(days=1))},10,\n"  # only Spring's window
        f"C2,O2,{at(timedelta(days=3))},10,\n"  # both: Summer opened last
        f"C1,O3,{at(timedelta(days=3))},10,SPRINGCODE1\n"  # a code decides
    )
    assert run(merchant_a, text, tmp_path).status == ImportStatus.SUCCEEDED
    assert dict(Outcome.objects.values_list("order_id", "assignment_id")) == {
        "O1": assignment(spring, "C2").pk,
        "O2": assignment(later, "C2").pk,
        "O3": assignment(spring, "C1").pk,
    }


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (
            f"C1,O9,{at(-timedelta(hours=1))},10,SPRINGCODE1",
            "ordered_at",
            "placed before its coupon could be used: campaign 'Spring' counts orders from "
            "2026-03-01T08:00+08:00 (when the coupon was assigned, or the campaign started "
            "if later)",
        ),
        (
            f"C1,O9,{at(timedelta(days=WINDOW_DAYS, seconds=1))},10,SPRINGCODE1",
            "ordered_at",
            "placed after the attribution window closed: campaign 'Spring' counts orders for "
            "7 days, until 2026-03-08T08:00+08:00",
        ),
        (
            f"C1,O9,{at(timedelta(days=1))},10,NOSUCHCODE",
            "code",
            "unknown coupon code: no applied strategy of this shop assigned it (mistyped, "
            "another shop's, or rolled back)",
        ),
        (
            f"C1,O9,{at(timedelta(days=1))},10,OTHERSHOP1",
            "code",
            "unknown coupon code: no applied strategy of this shop assigned it (mistyped, "
            "another shop's, or rolled back)",
        ),
        (
            f"C2,O9,{at(timedelta(days=1))},10,SPRINGCODE1",
            "code",
            "this code was assigned to another customer; a code is personal: check the "
            "customer or the code",
        ),
        (f"C1,O9,{at(timedelta(days=1))},-1,", "revenue", "must not be negative"),
        (f"C1,O9,{at(timedelta(days=1))},,", "revenue", "a value is required"),
        (f"C1,,{at(timedelta(days=1))},10,", "order_id", "a value is required"),
        ("C1,O9,soon,10,", "ordered_at", "not a date and time"),
    ],
    ids=[
        "before",
        "after-window",
        "unknown-code",
        "other-merchants-code",
        "other-customers-code",
        "negative",
        "no-revenue",
        "no-order-id",
        "bad-time",
    ],
)
def test_a_bad_row_is_reported_and_nothing_is_imported(
    spring, merchant_a, merchant_b, tmp_path, row, column, reason
):
    applied_campaign(merchant_b, name="Other shop", prefix="OTHERSHOP")
    # given good rows around the bad one
    text = HEADER + (
        f"C2,O1,{at(timedelta(days=1))},50,\n{row}\nC1,O2,{at(timedelta(days=1))},90,SPRINGCODE1\n"
    )
    result = run(merchant_a, text, tmp_path)
    assert result.status == ImportStatus.REJECTED
    assert len(result.errors) == 1, result.errors
    line, where, why = problems(result)[0]
    assert (line, where) == (3, column)
    assert why.startswith(reason)
    assert result.message == "1 problems found; nothing was imported."
    assert not Outcome.objects.exists()


def test_the_same_order_twice_in_one_file(spring, merchant_a, tmp_path):
    text = HEADER + f"C2,O1,{at(timedelta(days=1))},50,\nC2,O1,{at(timedelta(days=2))},5,\n"
    result = run(merchant_a, text, tmp_path)
    assert result.status == ImportStatus.REJECTED
    assert problems(result) == [(3, "order_id", "duplicate order in this file")]


def test_importing_the_same_orders_again_adds_nothing(spring, merchant_a, tmp_path):
    text = HEADER + (
        f"C1,O1,{at(timedelta(days=1))},90,SPRINGCODE1\nC2,O2,{at(timedelta(days=1))},50,\n"
    )
    first = run(merchant_a, text, tmp_path)
    assert (first.status, first.rows_inserted) == (ImportStatus.SUCCEEDED, 2)
    again = run(merchant_a, text, tmp_path)
    assert again.status == ImportStatus.SUCCEEDED
    assert (again.rows_inserted, again.rows_unchanged) == (0, 2)
    assert Outcome.objects.count() == 2


def test_an_order_of_an_unknown_customer_is_refused_or_kept_unattributed(
    spring, merchant_a, tmp_path
):
    text = HEADER + f"NEW1,O1,{at(timedelta(days=1))},50,\n"
    refused = run(merchant_a, text, tmp_path)
    assert refused.status == ImportStatus.REJECTED
    assert problems(refused)[0][:2] == (2, "customer_id")
    path = tmp_path / "new.csv"
    path.write_text(text)
    data_import = service.import_create_from_file(
        merchant=merchant_a,
        kind="outcomes",
        path=path,
        filename="new.csv",
        actor=None,
        source=ImportSource.COMMAND,
    )
    data_import.create_missing_customers = True
    created = service.import_run(data_import=data_import)
    assert created.status == ImportStatus.SUCCEEDED
    assert Outcome.objects.get(order_id="O1").assignment is None


def test_an_import_measures_the_strategies_it_touches(spring, merchant_a, tmp_path):
    untouched = applied_campaign(
        merchant_a, name="Autumn", prefix="AUTUMNCODE", start=START + timedelta(days=200)
    )
    run(merchant_a, HEADER + f"C1,O1,{at(timedelta(days=1))},90,SPRINGCODE1\n", tmp_path)
    result = RealizedResult.objects.get(strategy=spring)
    assert result.orders == 1
    assert result.data["redemptions"] == 1
    assert result.data["overall"]["enough"] is False  # four customers: too few to tell
    assert not RealizedResult.objects.filter(strategy=untouched).exists()


# --- rollback and the campaign's window ----------------------------------------------------------


def test_rolling_back_detaches_the_orders(merchant_a, tmp_path):
    start = timezone.now() + timedelta(days=1)
    strategy = applied_campaign(
        merchant_a, name="Soon", prefix="SOONCODE", assigned=timezone.now(), start=start
    )
    future = (start + timedelta(hours=1)).isoformat()
    run(merchant_a, HEADER + f"C1,O1,{future},10,SOONCODE1\nC2,O2,{future},10,\n", tmp_path)
    assert Outcome.objects.filter(assignment__isnull=False).count() == 2
    assert RealizedResult.objects.filter(strategy=strategy).exists()
    strategy_rollback(strategy=strategy, actor=None)
    assert not Assignment.objects.filter(strategy=strategy).exists()
    assert Outcome.objects.count() == 2
    assert not Outcome.objects.filter(assignment__isnull=False).exists()
    assert not RealizedResult.objects.filter(strategy=strategy).exists()


def test_the_window_is_a_campaign_setting_fixed_once_applied(spring, merchant_a):
    draft = CampaignFactory(merchant=merchant_a)
    assert draft.attribution_window_days == 14
    draft = campaign_update(campaign=draft, actor=None, attribution_window_days=30)
    assert Campaign.objects.get(pk=draft.pk).attribution_window_days == 30
    with pytest.raises(ValidationError):
        campaign_update(campaign=draft, actor=None, attribution_window_days=0)
    with pytest.raises(ValidationError, match="roll its strategy back"):
        campaign_update(campaign=spring.campaign, actor=None, attribution_window_days=30)


def test_the_builder_sets_the_window(merchant_a, mona, client_for):
    coupon = CouponType.objects.create(
        merchant=merchant_a, code="PCT10", name="10%", kind="percent_off", value=10
    )
    start = timezone.localtime() + timedelta(days=2)
    data = {
        "name": "Windowed",
        "goal": "profit",
        "coupon_types": [coupon.code],
        "budget": "500",
        "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (start + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M"),
        "holdout_percent": "10",
        "exploration_percent": "5",
        "margin_percent": "30",
        "average_order_value": "150",
        "attribution_window_days": "21",
    }
    client = client_for(mona)
    page = client.get(reverse("promo:campaign-create", kwargs={"merchant": merchant_a.slug}))
    assert b'name="attribution_window_days"' in page.content
    response = client.post(
        reverse("promo:campaign-create", kwargs={"merchant": merchant_a.slug}), data
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Campaign.objects.get(name="Windowed").attribution_window_days == 21
    bad = client.post(
        reverse("promo:campaign-create", kwargs={"merchant": merchant_a.slug}),
        {**data, "name": "Bad", "attribution_window_days": "0"},
    )
    assert bad.status_code == 200
    assert not Campaign.objects.filter(name="Bad").exists()


# --- the other doors ---------------------------------------------------------------------------


def test_the_command_imports_with_a_progress_bar_and_reports_problems(
    spring, merchant_a, tmp_path, capsys
):
    good = tmp_path / "orders.csv"
    good.write_text(HEADER + f"C1,O1,{at(timedelta(days=1))},90,SPRINGCODE1\n")
    call_command("import_outcomes", str(good), "--merchant", merchant_a.slug)
    captured = capsys.readouterr()
    assert "1 rows: 1 added." in captured.out
    assert "100%" in captured.err  # the progress bar
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"C2,O2,{at(timedelta(days=1))},90,SPRINGCODE1\n")
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_outcomes", str(bad), "--merchant", merchant_a.slug, "--no-progress")
    assert "line 2, column code ('SPRINGCODE1'): this code was assigned to another" in (
        capsys.readouterr().err
    )
    assert list(Outcome.objects.values_list("order_id", flat=True)) == ["O1"]


def test_the_api_takes_json_and_csv_and_answers_400_with_the_problems(
    spring, merchant_a, mona, vera, api_for
):
    url = reverse("api:outcomes-bulk", kwargs={"merchant": merchant_a.slug})
    rows = [
        {
            "customer_id": "C1",
            "order_id": "O1",
            "ordered_at": at(timedelta(days=1)),
            "revenue": 90,
            "code": "SPRINGCODE1",
        },
        {"customer_id": "C2", "order_id": "O2", "ordered_at": at(timedelta(days=1)), "revenue": 5},
    ]
    response = api_for(mona).post(url, rows, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["rows_inserted"] == 2
    assert Outcome.objects.get(order_id="O2").assignment == assignment(spring, "C2")
    body = (HEADER + f"C3,O3,{at(timedelta(days=30))},7,SPRINGCODE3\n").encode()
    response = api_for(mona).generic("POST", url, body, content_type="text/csv")
    assert response.status_code == 400
    assert response.json()["errors"][0]["column"] == "ordered_at"
    assert Outcome.objects.count() == 2
    assert api_for(vera).post(url, rows, format="json").status_code == 403


def test_the_upload_page_imports_outcomes_as_a_job(
    spring, merchant_a, mona, client_for, django_capture_on_commit_callbacks
):
    client = client_for(mona)
    # a shop's own column names: 订单号 (order number) and 优惠码 (coupon code) are recognized
    content = (
        "customer_id,订单号,ordered_at,revenue,优惠码\n"
        f"C1,O1,{at(timedelta(days=1))},90,SPRINGCODE1\n"
    ).encode("gb18030")
    response = client.post(
        reverse("data:upload", kwargs={"merchant": merchant_a.slug}),
        {"kind": "outcomes", "file": SimpleUploadedFile("orders.csv", content)},
    )
    assert response.status_code == 302
    data_import = DataImport.objects.latest("id")
    assert data_import.column_mapping == {
        "customer_id": "customer_id",
        "订单号": "order_id",
        "ordered_at": "ordered_at",
        "revenue": "revenue",
        "优惠码": "code",
    }
    start = reverse(
        "data:import-start", kwargs={"merchant": merchant_a.slug, "import_id": data_import.pk}
    )
    header = ["customer_id", "订单号", "ordered_at", "revenue", "优惠码"]
    choices = {f"column_{i}": data_import.column_mapping[name] for i, name in enumerate(header)}
    with django_capture_on_commit_callbacks(execute=True):
        client.post(start, choices)
    data_import.refresh_from_db()
    assert data_import.status == ImportStatus.SUCCEEDED, data_import.errors
    assert data_import.job is not None
    assert Outcome.objects.get(order_id="O1").assignment == assignment(spring, "C1")


def test_the_upload_page_offers_outcomes_and_describes_their_columns(merchant_a, mona, client_for):
    page = client_for(mona).get(reverse("data:upload", kwargs={"merchant": merchant_a.slug}))
    content = page.content.decode()
    assert 'value="outcomes"' in content
    for column in ("order_id", "ordered_at", "code"):
        assert f"<code>{column}</code>" in content
