"""Reads on merchants, memberships, campaigns, strategies and assignments."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Avg, DecimalField, ExpressionWrapper, F, QuerySet, Value
from django.db.models.functions import Coalesce

from .choices import EventType
from .models import (
    Assignment,
    AuditEvent,
    Campaign,
    Event,
    Membership,
    Merchant,
    MerchantDataSummary,
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
