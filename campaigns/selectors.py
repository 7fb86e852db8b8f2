"""Reads on merchants, memberships, campaigns, strategies and assignments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
from django.db.models import Avg, DecimalField, ExpressionWrapper, F, QuerySet, Value
from django.db.models.functions import Coalesce

from promo_portal.arrow_sql import epoch_microseconds, read_arrow

from .choices import EventType
from .models import (
    Assignment,
    AuditEvent,
    Campaign,
    CouponType,
    Event,
    Membership,
    Merchant,
    MerchantDataSummary,
    Outcome,
    RealizedResult,
    Strategy,
    TreatmentLog,
)


def merchants_for_user(*, user) -> QuerySet[Merchant]:
    return Merchant.objects.for_user(user).order_by("name")


def memberships_for_user(*, user) -> QuerySet[Membership]:
    if not user.is_authenticated:
        return Membership.objects.none()
    return (
        Membership.objects.filter(user=user).select_related("merchant").order_by("merchant__name")
    )


def merchant_members(*, merchant: Merchant) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(merchant=merchant)
        .select_related("user", "invited_by")
        .order_by("user__username")
    )


def merchant_audit_events(*, merchant: Merchant, limit: int = 50) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(merchant=merchant).select_related("actor")[:limit]


# --- campaigns, strategies, assignments ---------------------------------------------------------


def merchant_average_order_value(*, merchant: Merchant) -> Decimal | None:
    """The merchant's average order value from its data: the mean revenue of converted
    treatment rows (what the model's order values are learned from), else the mean value of
    purchase events (price x quantity), else None (no data to tell).

    Read from the data summary stored after each import (one row); computed from the tables
    only for a merchant whose summary predates the figure."""
    stored = (
        MerchantDataSummary.objects.filter(merchant=merchant).values_list("data", flat=True).first()
    )
    if stored is not None and "average_order_value" in stored:
        value = stored["average_order_value"]
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))
    value = (
        TreatmentLog.objects.filter(merchant=merchant, converted=True, revenue__gt=0)
        .aggregate(mean=Avg("revenue"))
        .get("mean")
    )
    if value is None:
        line_value = ExpressionWrapper(
            F("price") * Coalesce(F("quantity"), Value(1)),
            output_field=DecimalField(max_digits=20, decimal_places=2),
        )
        value = (
            Event.objects.filter(merchant=merchant, event_type=EventType.PURCHASE, price__gt=0)
            .aggregate(mean=Avg(line_value))
            .get("mean")
        )
    if value is None:
        return None
    return Decimal(value).quantize(Decimal("0.01"))


def merchant_campaigns(*, merchant: Merchant) -> QuerySet[Campaign]:
    return (
        Campaign.objects.filter(merchant=merchant)
        .select_related("created_by")
        .prefetch_related("coupon_types")
    )


def merchant_strategies(*, merchant: Merchant) -> QuerySet[Strategy]:
    return Strategy.objects.filter(merchant=merchant).select_related(
        "campaign", "model_version", "created_by", "applied_by", "rolled_back_by"
    )


def campaign_applied_strategy(*, campaign: Campaign) -> Strategy | None:
    return Strategy.objects.filter(campaign=campaign, status="applied").first()


def merchant_assignments(
    *,
    merchant: Merchant,
    campaign: int | None = None,
    strategy: int | None = None,
    customer: str | None = None,
    code: str | None = None,
    kind: str | None = None,
    coupon_type: str | None = None,
) -> QuerySet[Assignment]:
    """The merchant's assignments, optionally only one campaign's, strategy's, customer's
    (the shop's customer id), code's, kind's or coupon type's (code, or "control" for none)."""
    queryset = Assignment.objects.filter(merchant=merchant)
    if campaign is not None:
        queryset = queryset.filter(campaign_id=campaign)
    if strategy is not None:
        queryset = queryset.filter(strategy_id=strategy)
    if customer:
        queryset = queryset.filter(customer__merchant=merchant, customer__external_id=customer)
    if code:
        queryset = queryset.filter(code=code.strip().upper())
    if kind:
        queryset = queryset.filter(kind=kind)
    if coupon_type:
        if coupon_type == "control":
            queryset = queryset.filter(coupon_type__isnull=True)
        else:
            queryset = queryset.filter(coupon_type__code=coupon_type.strip().upper())
    return queryset.select_related("customer", "coupon_type")


def merchant_latest_realized(*, merchant: Merchant) -> RealizedResult | None:
    """The realized results of the merchant's most recently applied strategy that has any,
    with its strategy and campaign."""
    return (
        RealizedResult.objects.filter(strategy__merchant=merchant)
        .select_related("strategy__campaign")
        .order_by("-strategy__applied_at", "-strategy_id")
        .first()
    )


def strategy_assignments(
    *,
    strategy: Strategy,
    kinds: Sequence[str] | None = None,
    customer_range: tuple[int, int] | None = None,
) -> pa.Table:
    """A strategy's assignments (of these kinds; of customers first..last), by customer, as
    Arrow columns: id, customer_id, kind, coupon_type_id (null: no coupon), code (the coupon
    type's, "" for none), assigned_at (microseconds since the epoch)."""
    where, params = ["a.strategy_id = %s"], [strategy.pk]
    if kinds is not None:
        where.append(f"a.kind IN ({', '.join(['%s'] * len(kinds))})")
        params += list(kinds)
    if customer_range is not None:
        where.append("a.customer_id BETWEEN %s AND %s")
        params += list(customer_range)
    return read_arrow(
        f"""SELECT a.id, a.customer_id, a.kind, a.coupon_type_id, COALESCE(ct.code, ''),
            {epoch_microseconds("a.assigned_at")}
        FROM {Assignment._meta.db_table} a
        LEFT JOIN {CouponType._meta.db_table} ct ON ct.id = a.coupon_type_id
        WHERE {" AND ".join(where)}
        ORDER BY a.customer_id""",
        params,
        {
            "id": pa.int64(),
            "customer_id": pa.int64(),
            "kind": pa.string(),
            "coupon_type_id": pa.int64(),
            "code": pa.string(),
            "assigned_at": pa.int64(),
        },
    )


def strategy_orders(
    *, strategy: Strategy, start: datetime, end: datetime, kinds: Sequence[str] | None = None
) -> pa.Table:
    """Orders placed from ``start`` until ``end`` by the customers of the strategy's
    assignments (of these kinds), as Arrow columns: customer_id, ordered_at (microseconds since
    the epoch), revenue, code ("" for none), assignment_id (null: not attributed)."""
    params: list = [strategy.merchant_id, start, end, strategy.pk]
    of_kinds = ""
    if kinds is not None:
        of_kinds = f"AND a.kind IN ({', '.join(['%s'] * len(kinds))})"
        params += list(kinds)
    return read_arrow(
        f"""SELECT o.customer_id, {epoch_microseconds("o.ordered_at")}, o.revenue, o.code,
            o.assignment_id
        FROM {Outcome._meta.db_table} o
        WHERE o.merchant_id = %s AND o.ordered_at >= %s AND o.ordered_at < %s
            AND o.customer_id IN (
                SELECT a.customer_id FROM {Assignment._meta.db_table} a
                WHERE a.strategy_id = %s {of_kinds})""",
        params,
        {
            "customer_id": pa.int64(),
            "ordered_at": pa.int64(),
            "revenue": pa.float64(),
            "code": pa.string(),
            "assignment_id": pa.int64(),
        },
    )
