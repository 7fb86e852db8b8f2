"""Reads on merchants and memberships."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import AuditEvent, Membership, Merchant


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
