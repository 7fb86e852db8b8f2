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
    when the last successful import finished, or null;
``sums``
    ``{"purchase_value": 0.0, "purchases": 0, "order_revenue": 0.0, "orders": 0}``: the totals
    behind the average order value, so that an events import can add to them.

An events import whose every row was new adds its own tally (counted by the import's reading
thread, :func:`events_tally`) to the stored summary instead of aggregating all the merchant's
events again: its cost follows the import, not the data already there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
from django.db import transaction
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

SUMMARY_VERSION = 3

# (local day in ISO format, event type) -> number of events
DayTypeCounts = dict[tuple[str, str], int]


def data_summary_refresh(*, merchant: Merchant) -> MerchantDataSummary:
    """Recompute the merchant's data summary from the database and store it."""
    events = _event_figures(merchant)
    treatments = _treatment_figures(merchant)
    purchase_value, purchases = events.pop("purchases")
    order_revenue, orders = treatments.pop("orders")
    sums = {
        "purchase_value": purchase_value,
        "purchases": purchases,
        "order_revenue": order_revenue,
        "orders": orders,
    }
    data = {
        "version": SUMMARY_VERSION,
        "customers": Customer.objects.filter(merchant=merchant).count(),
        **events,
        **treatments,
        "average_order_value": _average_order_value(sums),
        "sums": sums,
        "last_import_at": _iso(_last_import_at(merchant)),
    }
    summary, _created = MerchantDataSummary.objects.update_or_create(
        merchant=merchant, defaults={"data": data, "refreshed_at": timezone.now()}
    )
    return summary


def data_summary_add_events(*, merchant: Merchant, tally: EventTally) -> MerchantDataSummary:
    """Add the tally of newly stored events (:func:`events_tally`) to the stored summary.

    Falls back to a full refresh when no summary of the current layout is stored.
    """
    with transaction.atomic():
        summary = MerchantDataSummary.objects.select_for_update().filter(merchant=merchant).first()
        if summary is None or summary.data.get("version") != SUMMARY_VERSION:
            return data_summary_refresh(merchant=merchant)
        data = dict(summary.data)
        counts = _stored_day_type_counts(data)
        groups = tally.groups
        for day, event_type, count in zip(
            groups.column("day").to_pylist(),
            groups.column("event_type").to_pylist(),
            groups.column("count").to_pylist(),
            strict=True,
        ):
            key = (day.isoformat(), event_type)
            counts[key] = counts.get(key, 0) + count
        sums = dict(data["sums"])
        purchases = pc.equal(groups.column("event_type"), EventType.PURCHASE)
        sums["purchase_value"] += pc.sum(groups.column("value").filter(purchases)).as_py() or 0.0
        sums["purchases"] += pc.sum(groups.column("priced").filter(purchases)).as_py() or 0
        first, last = tally.first, tally.last
        if data.get("first_event_at"):
            first = min(first, datetime.fromisoformat(data["first_event_at"]))
            last = max(last, datetime.fromisoformat(data["last_event_at"]))
        data.update(
            _event_layout(counts, first=first, last=last),
            customers=Customer.objects.filter(merchant=merchant).count(),
            average_order_value=_average_order_value(sums),
            sums=sums,
            last_import_at=_iso(_last_import_at(merchant)),
        )
        summary.data = data
        summary.refreshed_at = timezone.now()
        summary.save(update_fields=["data", "refreshed_at"])
    return summary


@dataclass(frozen=True)
class EventTally:
    """What some events add to the summary: ``groups`` holds per local day and type the number
    of events (``count``), of priced ones (``priced``) and their value (``value``, price x
    quantity); ``first`` and ``last`` are the events' earliest and latest times."""

    groups: pa.Table
    first: datetime
    last: datetime

    def combine(self, other: EventTally) -> EventTally:
        """Both tallies as one (memory stays bounded by days x types)."""
        groups = pa.concat_tables([self.groups, other.groups])
        return EventTally(
            _group_tally(groups, ("count", "sum")),
            first=min(self.first, other.first),
            last=max(self.last, other.last),
        )


def events_tally(
    ts: pa.Array, event_type: pa.Array, price: pa.Array, quantity: pa.Array, *, tz: str
) -> EventTally:
    """The tally of some events (vectorized, for the import's reading thread)."""
    local = pc.local_timestamp(ts.cast(pa.timestamp("us", tz=tz)))
    priced = pc.fill_null(pc.greater(price, 0), False)
    value = pc.if_else(
        priced, pc.multiply(price, pc.cast(pc.fill_null(quantity, 1), pa.float64())), 0.0
    )
    table = pa.table(
        {
            "day": pc.cast(local, pa.date32()),
            "event_type": event_type,
            "priced": pc.cast(priced, pa.int64()),
            "value": value,
        }
    )
    span = pc.min_max(ts)
    return EventTally(
        _group_tally(table, ("event_type", "count")),
        first=span["min"].as_py(),
        last=span["max"].as_py(),
    )


def _group_tally(table: pa.Table, count: tuple[str, str]) -> pa.Table:
    """Per (day, type): ``count`` (column and aggregation that counts), priced and value sums."""
    grouped = table.group_by(["day", "event_type"]).aggregate(
        [count, ("priced", "sum"), ("value", "sum")]
    )
    return pa.table(
        {
            "day": grouped.column("day"),
            "event_type": grouped.column("event_type"),
            "count": grouped.column("_".join(count)),
            "priced": grouped.column("priced_sum"),
            "value": grouped.column("value_sum"),
        }
    )


def _stored_day_type_counts(data: dict) -> DayTypeCounts:
    by_day = data.get("events_by_day") or {"days": [], "counts": {}}
    counts: DayTypeCounts = {}
    for event_type, per_day in by_day["counts"].items():
        for day, count in zip(by_day["days"], per_day, strict=True):
            if count:
                counts[(day, event_type)] = count
    return counts


def _event_layout(counts: DayTypeCounts, *, first: datetime | None, last: datetime | None) -> dict:
    """The summary's event figures from counts per (day, type)."""
    by_day: dict[str, dict[str, int]] = defaultdict(dict)
    by_type: dict[str, int] = defaultdict(int)
    for (day, event_type), count in counts.items():
        by_day[day][event_type] = count
        by_type[event_type] += count
    days = sorted(by_day)
    types = [value for value in EventType.values if value in by_type]
    types += sorted(set(by_type) - set(types))  # a type no longer offered keeps its counts
    return {
        "events": sum(by_type.values()),
        "first_event_at": _iso(first),
        "last_event_at": _iso(last),
        "events_by_type": [{"event_type": t, "count": by_type[t]} for t in types],
        "events_by_day": {
            "days": days,
            "counts": {t: [by_day[day].get(t, 0) for day in days] for t in types},
        },
    }


def _average_order_value(sums: dict) -> float | None:
    """Mean revenue of converted treatment rows with revenue, else mean value of priced
    purchase events, else None."""
    if sums["orders"]:
        return round(sums["order_revenue"] / sums["orders"], 2)
    if sums["purchases"]:
        return round(sums["purchase_value"] / sums["purchases"], 2)
    return None


def _event_figures(merchant: Merchant) -> dict:
    events = Event.objects.filter(merchant=merchant)
    totals = events.aggregate(first=Min("timestamp"), last=Max("timestamp"))
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
    counts: DayTypeCounts = {}
    purchase_value, purchases = 0.0, 0
    for group in per_day:
        day = group["day"].isoformat() if group["day"] else ""
        counts[(day, group["event_type"])] = group["count"]
        if group["event_type"] == EventType.PURCHASE:
            purchase_value += float(group["value"] or 0)
            purchases += group["priced"]
    return {
        **_event_layout(counts, first=totals["first"], last=totals["last"]),
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
