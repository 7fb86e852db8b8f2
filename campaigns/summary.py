"""A merchant's data health, computed once per import and read by pages as one stored row.

``data_summary_refresh`` aggregates in the database (a handful of GROUP BY queries, no Python
loop over rows) and stores the result in :class:`MerchantDataSummary`. Pages call the selectors
below, which read that row: their cost does not grow with the merchant's data.

Layout of ``MerchantDataSummary.data`` (JSON; times in ISO 8601, UTC):

``customers``, ``events``, ``treatments``
    counts;
``first_event_at``, ``last_event_at``
    the time of the first and last event, or null;
``events_by_type``
    ``[{"event_type": "view", "count": 12}, ...]`` in the order of :class:`EventType`;
``events_by_day``
    ``{"days": ["2026-01-05", ...], "counts": {"view": [3, ...], ...}}``: the days (in the
    merchant's time zone) that have events, and per event type one count per day;
``arms``
    ``[{"arm": "control", "assigned": 10, "conversions": 2, "conversion_rate": 0.2,
    "revenue": 51.0, "mean_revenue": 5.1}, ...]``, control first, then coupon codes;
``average_order_value``
    the mean revenue of converted treatment rows with revenue (what the model's order values
    are learned from), else the mean value (price x quantity) of priced purchase events, else
    null; the campaign builder's default, read from here so that its cost does not grow with
    the data;
``last_import_at``
    when the last successful import finished, or null.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.db.models import (
    Avg,
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from .choices import CONTROL_ARM, CampaignStatus, EventType, ImportKind, ImportStatus
from .models import (
    Campaign,
    Customer,
    DataImport,
    Event,
    Merchant,
    MerchantDataSummary,
    TreatmentLog,
)

if TYPE_CHECKING:
    from modeling.models import Job

SUMMARY_VERSION = 2


def data_summary_refresh(*, merchant: Merchant) -> MerchantDataSummary:
    """Recompute the merchant's data summary from the database and store it."""
    events = _event_figures(merchant)
    treatments = _treatment_figures(merchant)
    orders = treatments.pop("orders")
    purchases = events.pop("purchases")
    value, count = orders if orders[1] else purchases
    data = {
        "version": SUMMARY_VERSION,
        "customers": Customer.objects.filter(merchant=merchant).count(),
        **events,
        **treatments,
        "average_order_value": round(value / count, 2) if count else None,
        "last_import_at": _iso(_last_import_at(merchant)),
    }
    summary, _created = MerchantDataSummary.objects.update_or_create(
        merchant=merchant, defaults={"data": data, "refreshed_at": timezone.now()}
    )
    return summary


def _event_figures(merchant: Merchant) -> dict:
    events = Event.objects.filter(merchant=merchant)
    totals = events.aggregate(count=Count("*"), first=Min("timestamp"), last=Max("timestamp"))
    # One GROUP BY (day, type): the per-type totals follow from it, and it stays small
    # (days x types) however many events there are.
    per_day = (
        events.annotate(day=TruncDate("timestamp", tzinfo=ZoneInfo(merchant.timezone)))
        .values("day", "event_type")
        .annotate(
            count=Count("*"),
            priced=Count("price", filter=Q(price__gt=0)),
            value=Sum(
                ExpressionWrapper(
                    F("price") * Coalesce(F("quantity"), Value(1)),
                    output_field=DecimalField(max_digits=20, decimal_places=2),
                ),
                filter=Q(price__gt=0),
            ),
        )
        .order_by()
    )
    by_day: dict[str, dict[str, int]] = defaultdict(dict)
    by_type: dict[str, int] = defaultdict(int)
    purchase_value, purchases = 0.0, 0
    for group in per_day:
        day = group["day"].isoformat() if group["day"] else ""
        by_day[day][group["event_type"]] = group["count"]
        by_type[group["event_type"]] += group["count"]
        if group["event_type"] == EventType.PURCHASE:
            purchase_value += float(group["value"] or 0)
            purchases += group["priced"]
    days = sorted(by_day)
    types = [value for value in EventType.values if value in by_type]
    types += sorted(set(by_type) - set(types))  # a type no longer offered keeps its counts
    return {
        "events": totals["count"] or 0,
        "first_event_at": _iso(totals["first"]),
        "last_event_at": _iso(totals["last"]),
        "events_by_type": [{"event_type": t, "count": by_type[t]} for t in types],
        "events_by_day": {
            "days": days,
            "counts": {t: [by_day[day].get(t, 0) for day in days] for t in types},
        },
        "purchases": (purchase_value, purchases),  # (total value, count) of priced purchases
    }


def _treatment_figures(merchant: Merchant) -> dict:
    groups = (
        TreatmentLog.objects.filter(merchant=merchant)
        .values(code=F("coupon_type__code"))
        .annotate(
            assigned=Count("*"),
            conversions=Sum(Case(When(converted=True, then=1), default=0)),
            total_revenue=Sum("revenue"),
            mean_revenue=Avg("revenue"),
            order_revenue=Sum("revenue", filter=Q(converted=True, revenue__gt=0)),
            orders=Count("id", filter=Q(converted=True, revenue__gt=0)),
        )
        .order_by()
    )
    arms = []
    order_revenue, orders = 0.0, 0
    for group in groups:
        order_revenue += float(group["order_revenue"] or 0)
        orders += group["orders"]
        assigned = group["assigned"]
        arms.append(
            {
                "arm": group["code"] or CONTROL_ARM,
                "assigned": assigned,
                "conversions": group["conversions"],
                "conversion_rate": group["conversions"] / assigned if assigned else None,
                "revenue": float(group["total_revenue"] or 0),
                "mean_revenue": float(group["mean_revenue"] or 0),
            }
        )
    arms.sort(key=lambda arm: (arm["arm"] != CONTROL_ARM, arm["arm"]))
    return {
        "treatments": sum(arm["assigned"] for arm in arms),
        "arms": arms,
        "orders": (order_revenue, orders),  # (total revenue, count) of converted rows with some
    }


def _last_import_at(merchant: Merchant) -> datetime | None:
    figures = DataImport.objects.filter(merchant=merchant).aggregate(
        finished=Max("finished_at", filter=Q(status=ImportStatus.SUCCEEDED)),
        running=Count("id", filter=Q(status=ImportStatus.RUNNING)),
    )
    # import_run refreshes the summary just before it marks its own import finished: a running
    # import is the one finishing now.
    if figures["running"]:
        return timezone.now()
    return figures["finished"]


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(ZoneInfo("UTC")).isoformat() if value is not None else None


# --- selectors ----------------------------------------------------------------------------------


def merchant_data_summary(*, merchant: Merchant) -> MerchantDataSummary:
    """The stored summary, or an empty, unsaved one when none was computed yet."""
    summary = MerchantDataSummary.objects.filter(merchant=merchant).first()
    if summary is None:
        summary = MerchantDataSummary(merchant=merchant, data={})
    return summary


def merchant_recent_imports(*, merchant: Merchant, limit: int = 10) -> list[DataImport]:
    """The latest imports, without their (possibly long) problem lists."""
    return list(
        DataImport.objects.filter(merchant=merchant)
        .defer("errors", "column_mapping")
        .select_related("created_by")[:limit]
    )


@dataclass(frozen=True)
class NextStep:
    """A hint on the merchant home: what to do next, and where."""

    title: str
    text: str
    url: str
    action: str


def merchant_next_steps(
    *,
    merchant: Merchant,
    summary: MerchantDataSummary,
    has_model: bool,
    training_job: Job | None,
    campaigns: Sequence[Campaign],
) -> list[NextStep]:
    """What the merchant should do next, judged from what the home page has read already (no
    further queries): the stored data summary, whether a champion model exists, the active
    training job if any, and the most recent campaigns."""
    upload = reverse("data:upload", kwargs={"merchant": merchant.slug})
    steps = []
    if summary.customers == 0:
        steps.append(
            NextStep(
                title=_("Import your customers"),
                text=_("Start with a CSV file of your customers: their ids and any attributes."),
                url=f"{upload}?kind={ImportKind.CUSTOMERS}",
                action=_("Import customers"),
            )
        )
    elif summary.events == 0:
        steps.append(
            NextStep(
                title=_("Import behaviour events"),
                text=_(
                    "Views, searches, carts and purchases of your customers: the model learns "
                    "from the order and timing of these events."
                ),
                url=f"{upload}?kind={ImportKind.EVENTS}",
                action=_("Import events"),
            )
        )
    if summary.treatments == 0:
        steps.append(
            NextStep(
                title=_("Import past promotion results"),
                text=_(
                    "Who got which coupon (or none) and whether they bought: uplift is learnt "
                    "from these outcomes."
                ),
                url=f"{upload}?kind={ImportKind.TREATMENTS}",
                action=_("Import treatments"),
            )
        )
    if steps:
        return steps
    if training_job is not None and not has_model:
        return [
            NextStep(
                title=_("Your first model is training"),
                text=_("Its progress shows under Recent jobs; campaigns can be built meanwhile."),
                url=reverse(
                    "modeling:job", kwargs={"merchant": merchant.slug, "job_id": training_job.pk}
                ),
                action=_("Follow the training"),
            )
        ]
    if not has_model:
        return [
            NextStep(
                title=_("Train your first model"),
                text=_(
                    "The data is in. The model learns, for every customer and coupon, how much "
                    "more likely the customer is to buy with the coupon than without it."
                ),
                url=reverse("modeling:models", kwargs={"merchant": merchant.slug}),
                action=_("Train a model"),
            )
        ]
    if not campaigns:
        return [
            NextStep(
                title=_("Build a campaign"),
                text=_(
                    "Choose the coupon types to offer, a budget and the audience; the optimizer "
                    "then proposes who gets which coupon."
                ),
                url=reverse("promo:campaign-create", kwargs={"merchant": merchant.slug}),
                action=_("New campaign"),
            )
        ]
    for campaign in campaigns:
        link = reverse(
            "promo:campaign", kwargs={"merchant": merchant.slug, "campaign_id": campaign.pk}
        )
        if campaign.status == CampaignStatus.DRAFT:
            steps.append(
                NextStep(
                    title=_("Propose a strategy for %(name)s") % {"name": campaign.name},
                    text=_("The optimizer picks at most one coupon per customer under the budget."),
                    url=link,
                    action=_("Open the campaign"),
                )
            )
        elif campaign.status == CampaignStatus.READY:
            steps.append(
                NextStep(
                    title=_("Review and apply the strategy for %(name)s") % {"name": campaign.name},
                    text=_("Check the frontier and the allocation, then assign the coupon codes."),
                    url=link,
                    action=_("Open the campaign"),
                )
            )
    return steps
