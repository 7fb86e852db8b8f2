"""Tenants (merchants), members and roles, the audit log; customers, events, coupon types and
treatment logs; data imports."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .choices import (
    CONTROL_ARM,
    AuditVerb,
    CouponKind,
    EventType,
    ImportKind,
    ImportSource,
    ImportStatus,
    Role,
    TreatmentSource,
)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone."), params={"value": value})


class MerchantQuerySet(models.QuerySet["Merchant"]):
    def for_user(self, user) -> MerchantQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Merchant(models.Model):
    """A shop: the tenant. Everything a merchant owns carries a foreign key to it."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    currency = models.CharField(
        _("currency"),
        max_length=3,
        default="CNY",
        validators=[RegexValidator(r"^[A-Z]{3}$", _("Use a three-letter ISO 4217 code."))],
    )
    timezone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[validate_timezone]
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = MerchantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="merchant_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one merchant. A user may belong to several merchants."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.VIEWER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("joined"), auto_now_add=True)

    class Meta:
        ordering = ["merchant__name", "user__username"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "merchant"], name="membership_unique_user"),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.merchant} ({self.role})"

    def has_role(self, required: Role | str) -> bool:
        return Role(self.role).includes(required)


class AuditEvent(models.Model):
    """Who did what, when: written explicitly by services, never by signals."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    verb = models.CharField(max_length=40, choices=AuditVerb.choices)
    target = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["merchant", "-created_at"], name="audit_merchant_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.verb} {self.target}"


class Customer(models.Model):
    """A shop's customer, known by the shop's own id. Attributes keep their types (JSON)."""

    id = models.BigAutoField(primary_key=True)
    # The unique (merchant, external_id) index serves lookups by merchant.
    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, db_index=False, related_name="customers"
    )
    external_id = models.CharField(_("customer id"), max_length=128)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    first_seen_at = models.DateTimeField(_("first seen"), null=True, blank=True)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "external_id"], name="customer_unique_external_id"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class Event(models.Model):
    """One behaviour event, stored in the order it is read: per merchant, customer and time.

    The primary key (merchant, customer, timestamp, fingerprint) is the table's only index: it
    serves reading a merchant's customers in time order, and it makes re-imports idempotent (the
    fingerprint is a stable hash of the row's content). Foreign keys are not enforced by the
    database here: rows only ever come in through the import merge, which joins each row to its
    customer, and a per-row constraint check halved the load rate (measured in bench/ingest.py).
    """

    pk = models.CompositePrimaryKey("merchant", "customer", "timestamp", "fingerprint")
    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+"
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        db_index=False,
        db_constraint=False,
        related_name="events",
    )
    timestamp = models.DateTimeField(_("time"))
    # A stable hash of the row's content: importing the same rows twice adds nothing.
    fingerprint = models.BigIntegerField()
    event_type = models.CharField(_("event type"), max_length=16, choices=EventType.choices)
    item_id = models.CharField(_("item"), max_length=128, blank=True)
    category = models.CharField(_("category"), max_length=128, blank=True)
    price = models.DecimalField(_("price"), max_digits=14, decimal_places=2, null=True, blank=True)
    quantity = models.IntegerField(_("quantity"), null=True, blank=True)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__isnull=True) | models.Q(price__gte=0),
                name="event_price_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__isnull=True) | models.Q(quantity__gte=0),
                name="event_quantity_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(event_type__in=EventType.values), name="event_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.event_type} {self.timestamp:%Y-%m-%d %H:%M}"


class CouponType(models.Model):
    """A kind of coupon the merchant can hand out, and what one redemption costs the merchant.

    Cost per redemption, given the order value v before the discount:
    percent off and member price: v x value / 100; amount off: value (at most v);
    threshold off: value when v >= min_spend; free shipping: value (the shipping fee the merchant
    absorbs) when v is below min_spend (the usual free-shipping level), else nothing.
    ``fixed_cost`` adds a per-redemption cost on top (printing, partner fees ...).
    """

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="coupon_types")
    code = models.CharField(
        _("code"),
        max_length=32,
        validators=[
            RegexValidator(
                r"^[A-Z0-9][A-Z0-9_-]*$",
                _("Use upper-case letters, digits, '-' and '_' (e.g. PCT10)."),
            )
        ],
    )
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=CouponKind.choices)
    value = models.DecimalField(
        _("value"),
        max_digits=12,
        decimal_places=2,
        help_text=_("Percent for percent-off and member price; an amount otherwise."),
    )
    min_spend = models.DecimalField(
        _("minimum spend"),
        max_digits=12,
        decimal_places=2,
        default=0,
        help_text=_(
            "Threshold discounts: the spend that unlocks them. Free shipping: the order "
            "value above which shipping is free anyway."
        ),
    )
    fixed_cost = models.DecimalField(
        _("fixed cost per redemption"), max_digits=12, decimal_places=2, default=0
    )
    validity_days = models.PositiveSmallIntegerField(_("valid for (days)"), default=7)
    per_customer_limit = models.PositiveSmallIntegerField(_("uses per customer"), default=1)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("coupon type")
        verbose_name_plural = _("coupon types")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "code"], name="coupon_type_unique_code"),
            models.CheckConstraint(
                condition=~models.Q(code=CONTROL_ARM.upper()), name="coupon_type_code_not_control"
            ),
            models.CheckConstraint(
                condition=models.Q(value__gte=0), name="coupon_value_non_negative"
            ),
            models.CheckConstraint(
                condition=~models.Q(kind__in=["percent_off", "member_price"])
                | models.Q(value__lte=100),
                name="coupon_percent_at_most_100",
            ),
            models.CheckConstraint(
                condition=models.Q(min_spend__gte=0) & models.Q(fixed_cost__gte=0),
                name="coupon_costs_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=CouponKind.values), name="coupon_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class TreatmentLog(models.Model):
    """Who got which coupon (or none: control), with what probability, and what happened."""

    id = models.BigAutoField(primary_key=True)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, db_index=False, related_name="+"
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, db_index=False, related_name="treatments"
    )
    coupon_type = models.ForeignKey(
        CouponType,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="treatments",
        help_text=_("Empty for the control arm."),
    )
    assigned_at = models.DateTimeField(_("assigned"))
    propensity = models.FloatField(_("propensity"))
    converted = models.BooleanField(_("converted"))
    revenue = models.DecimalField(_("revenue"), max_digits=14, decimal_places=2, default=0)
    source = models.CharField(
        _("source"), max_length=16, choices=TreatmentSource.choices, default=TreatmentSource.IMPORT
    )
    fingerprint = models.BigIntegerField()

    class Meta:
        verbose_name = _("treatment")
        verbose_name_plural = _("treatments")
        indexes = [
            models.Index(
                fields=["merchant", "customer", "assigned_at"], name="treatment_merchant_customer"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "fingerprint"], name="treatment_unique_fingerprint"
            ),
            models.CheckConstraint(
                condition=models.Q(propensity__gt=0) & models.Q(propensity__lte=1),
                name="treatment_propensity_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(revenue__gte=0), name="treatment_revenue_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.arm} {self.assigned_at:%Y-%m-%d}"

    @property
    def arm(self) -> str:
        return self.coupon_type.code if self.coupon_type_id else CONTROL_ARM


class DataImport(models.Model):
    """One import of customers, events or treatments, from any door, and what came of it."""

    MAX_STORED_ERRORS = 10_000

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="imports")
    kind = models.CharField(_("kind"), max_length=16, choices=ImportKind.choices)
    source = models.CharField(_("source"), max_length=12, choices=ImportSource.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    filename = models.CharField(_("file"), max_length=255, blank=True)
    stored_path = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    column_mapping = models.JSONField(_("column mapping"), default=dict, blank=True)
    create_missing_customers = models.BooleanField(_("create unknown customers"), default=False)
    rows_total = models.BigIntegerField(default=0)
    rows_inserted = models.BigIntegerField(default=0)
    rows_updated = models.BigIntegerField(default=0)
    rows_unchanged = models.BigIntegerField(default=0)
    customers_created = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    job = models.ForeignKey(
        "modeling.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("data import")
        verbose_name_plural = _("data imports")
        indexes = [models.Index(fields=["merchant", "-created_at"], name="import_merchant_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.filename or self.get_source_display()} #{self.pk}"


class MerchantDataSummary(models.Model):
    """A merchant's data health (counts, date range, events per type and day, arms), stored.

    Written by ``campaigns.summary.data_summary_refresh`` after each successful import, so that
    pages read one row instead of aggregating millions of events per request.
    """

    merchant = models.OneToOneField(Merchant, on_delete=models.CASCADE, related_name="data_summary")
    data = models.JSONField(default=dict, blank=True)
    refreshed_at = models.DateTimeField(_("refreshed"), null=True, blank=True)

    class Meta:
        verbose_name = _("data summary")
        verbose_name_plural = _("data summaries")

    def __str__(self) -> str:
        return f"{self.merchant} data summary"

    # Read accessors for templates; the layout of ``data`` is documented in campaigns/summary.py.

    @property
    def customers(self) -> int:
        return int(self.data.get("customers", 0))

    @property
    def events(self) -> int:
        return int(self.data.get("events", 0))

    @property
    def treatments(self) -> int:
        return int(self.data.get("treatments", 0))

    @property
    def first_event_at(self):
        return _parse_time(self.data.get("first_event_at"))

    @property
    def last_event_at(self):
        return _parse_time(self.data.get("last_event_at"))

    @property
    def last_import_at(self):
        return _parse_time(self.data.get("last_import_at"))

    @property
    def events_by_type(self) -> list[dict]:
        return list(self.data.get("events_by_type", []))

    @property
    def events_by_day(self) -> dict:
        return dict(self.data.get("events_by_day", {"days": [], "counts": {}}))

    @property
    def active_days(self) -> int:
        return len(self.events_by_day.get("days", []))

    @property
    def arms(self) -> list[dict]:
        return list(self.data.get("arms", []))


def _parse_time(value: str | None):
    from datetime import datetime

    return datetime.fromisoformat(value) if value else None
