"""Tenants (merchants), members and roles, the audit log; customers, events, coupon types and
treatment logs; data imports; campaigns, their proposed strategies and coupon assignments."""

from __future__ import annotations

import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .audience import validate_audience
from .choices import (
    CONTROL_ARM,
    AssignmentKind,
    AuditVerb,
    CampaignGoal,
    CampaignStatus,
    CouponKind,
    EventType,
    ImportKind,
    ImportSource,
    ImportStatus,
    Role,
    StrategyStatus,
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


class UserPreference(models.Model):
    """Per-user settings that follow the user across merchants: the interface language."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=settings.LANGUAGES,
        default=settings.LANGUAGE_CODE,
    )

    class Meta:
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(language__in=[code for code, _name in settings.LANGUAGES]),
                name="userpreference_language_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.language}"


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


# --- campaigns, strategies, assignments ---------------------------------------------------------

# Documented assumption when the merchant states none: the share of an order's net value that
# is gross margin. Shops' data carries prices, not costs, so it cannot be learned from the data.
DEFAULT_MARGIN_RATE = 0.30
DEFAULT_HOLDOUT_SHARE = 0.10
DEFAULT_EXPLORATION_SHARE = 0.05
# How long after its coupons could first be used an order still counts for a campaign
# (campaigns/imports/attribution.py): two weeks covers a coupon's usual validity and the
# purchases it pulls forward, without counting next month's habits.
DEFAULT_ATTRIBUTION_WINDOW_DAYS = 14
MAX_ATTRIBUTION_WINDOW_DAYS = 365


def validate_caps(value) -> None:
    """Per-coupon caps ``{"PCT10": 1000, ...}``: coupon code -> most customers (integer >= 0)."""
    if not isinstance(value, dict):
        raise ValidationError(_("Caps must be an object of coupon code -> maximum count."))
    for code, cap in value.items():
        if not isinstance(code, str) or not code:
            raise ValidationError(_("Cap keys must be coupon codes."))
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValidationError(
                _("The cap of %(code)s must be a whole number of customers, 0 or more."),
                params={"code": code},
            )


def _new_salt() -> str:
    return secrets.token_hex(16)


class Campaign(models.Model):
    """A promotion: which coupons may go out, under what budget and caps, to whom, and when.

    ``budget`` is the expected coupon spend (each coupon's expected cost to the merchant summed
    over the customers who get it, in the merchant's currency). ``holdout_share`` of the eligible
    customers get nothing, at random (stratified by lifecycle segment, and sticky: a held-out
    customer stays held out for the campaign); ``exploration_share`` get an arm drawn at random,
    with its propensity logged, so that outcomes keep teaching the model without bias.
    ``randomization_salt`` is a per-campaign secret that the holdout draw hashes customers with.
    """

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(_("name"), max_length=200)
    goal = models.CharField(
        _("goal"), max_length=16, choices=CampaignGoal.choices, default=CampaignGoal.PROFIT
    )
    coupon_types = models.ManyToManyField(
        CouponType, related_name="campaigns", verbose_name=_("coupon types offered")
    )
    budget = models.DecimalField(
        _("budget"),
        max_digits=14,
        decimal_places=2,
        help_text=_("The expected coupon spend, in the merchant's currency."),
    )
    caps = models.JSONField(
        _("caps per coupon"),
        default=dict,
        blank=True,
        validators=[validate_caps],
        help_text=_("Coupon code -> the most customers who may get it."),
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    attribution_window_days = models.PositiveSmallIntegerField(
        _("attribution window (days)"),
        default=DEFAULT_ATTRIBUTION_WINDOW_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ATTRIBUTION_WINDOW_DAYS)],
        help_text=_(
            "Orders count for the campaign this many days from when its coupons could first be "
            "used (the later of the assignment and the campaign's start)."
        ),
    )
    audience = models.JSONField(
        _("audience"),
        default=dict,
        blank=True,
        validators=[validate_audience],
        help_text=_("Which customers are eligible; see campaigns/audience.py."),
    )
    holdout_share = models.FloatField(_("holdout share"), default=DEFAULT_HOLDOUT_SHARE)
    exploration_share = models.FloatField(_("exploration share"), default=DEFAULT_EXPLORATION_SHARE)
    margin_rate = models.FloatField(
        _("margin rate"),
        default=DEFAULT_MARGIN_RATE,
        help_text=_("Gross margin as a share of an order's net value."),
    )
    average_order_value = models.DecimalField(
        _("average order value"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Used where the model predicts no order value; defaults from the data."),
    )
    code_prefix = models.CharField(
        _("coupon code prefix"),
        max_length=12,
        blank=True,
        validators=[
            RegexValidator(
                r"^[A-Z0-9][A-Z0-9-]*$", _("Use upper-case letters, digits and '-' (e.g. SPRING-).")
            )
        ],
    )
    status = models.CharField(
        _("status"), max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    # Bumped by every change of the settings a strategy depends on: a proposal computed for an
    # older revision is not saved (and proposed strategies of older revisions are superseded).
    revision = models.PositiveIntegerField(default=1)
    randomization_salt = models.CharField(max_length=32, default=_new_salt, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("changed"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        indexes = [models.Index(fields=["merchant", "-created_at"], name="campaign_merchant_time")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(budget__gte=0), name="campaign_budget_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(holdout_share__gte=0, holdout_share__lt=1),
                name="campaign_holdout_share_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(exploration_share__gte=0, exploration_share__lt=1),
                name="campaign_exploration_share_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    holdout_share__lt=models.Value(1.0) - models.F("exploration_share")
                ),
                name="campaign_shares_below_1",
            ),
            models.CheckConstraint(
                condition=models.Q(margin_rate__gt=0, margin_rate__lte=1),
                name="campaign_margin_rate_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(average_order_value__isnull=True)
                | models.Q(average_order_value__gt=0),
                name="campaign_aov_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="campaign_ends_after_start",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    attribution_window_days__gte=1,
                    attribution_window_days__lte=MAX_ATTRIBUTION_WINDOW_DAYS,
                ),
                name="campaign_attribution_window_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(goal__in=CampaignGoal.values), name="campaign_goal_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=CampaignStatus.values), name="campaign_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = _("The campaign must end after it starts.")
        for name in ("holdout_share", "exploration_share"):
            share = getattr(self, name)
            if share is not None and not 0 <= share < 1:
                errors[name] = _("A share is at least 0 and below 1 (0.1 = 10 %).")
        if (
            "holdout_share" not in errors
            and "exploration_share" not in errors
            and self.holdout_share + self.exploration_share >= 1
        ):
            errors["exploration_share"] = _(
                "The holdout and exploration shares together must stay below 1."
            )
        if self.margin_rate is not None and not 0 < self.margin_rate <= 1:
            errors["margin_rate"] = _("The margin rate is above 0 and at most 1 (0.3 = 30 %).")
        if self.budget is not None and self.budget < 0:
            errors["budget"] = _("The budget cannot be negative.")
        if self.average_order_value is not None and self.average_order_value <= 0:
            errors["average_order_value"] = _("The average order value must be positive.")
        if errors:
            raise ValidationError(errors)


class Strategy(models.Model):
    """One proposed allocation of a campaign's coupons, computed from a model version's scores.

    The numbers are expectations from the model: incremental conversions, revenue, coupon cost
    and profit against giving nothing, summed over the treated and exploration customers (the
    holdout gets nothing). Per customer, the decision (arm, kind, propensity) lives in a Parquet
    file (``choices_path``), never in a JSON field: a merchant may have a million customers.
    ``frontier`` holds the efficient frontier (three curves: the model, the best single coupon,
    random targeting) and ``segments`` the breakdown per lifecycle segment and uplift decile;
    their layouts are documented in campaigns/strategies.py.
    """

    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, db_index=False, related_name="+"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="strategies")
    model_version = models.ForeignKey(
        "modeling.ModelVersion", on_delete=models.RESTRICT, related_name="strategies"
    )
    status = models.CharField(
        _("status"),
        max_length=12,
        choices=StrategyStatus.choices,
        default=StrategyStatus.PROPOSED,
    )
    goal = models.CharField(_("goal"), max_length=16, choices=CampaignGoal.choices)
    budget = models.DecimalField(_("budget"), max_digits=14, decimal_places=2)
    margin_rate = models.FloatField(_("margin rate"))
    average_order_value = models.FloatField(_("average order value"), null=True, blank=True)
    holdout_share = models.FloatField(_("holdout share"))
    exploration_share = models.FloatField(_("exploration share"))
    campaign_revision = models.PositiveIntegerField()
    arms = models.JSONField(_("arms"), default=list, help_text=_("control, then coupon codes"))
    seed = models.BigIntegerField(help_text=_("Seed of the exploration draw."))
    eligible_customers = models.PositiveIntegerField(_("eligible customers"), default=0)
    treated_customers = models.PositiveIntegerField(
        _("customers given a coupon"), default=0, help_text=_("By the model or by exploration.")
    )
    holdout_customers = models.PositiveIntegerField(_("holdout customers"), default=0)
    exploration_customers = models.PositiveIntegerField(_("exploration customers"), default=0)
    expected_conversions = models.FloatField(_("expected incremental conversions"), default=0)
    expected_revenue = models.FloatField(_("expected incremental revenue"), default=0)
    expected_cost = models.FloatField(_("expected coupon cost"), default=0)
    expected_profit = models.FloatField(_("expected incremental profit"), default=0)
    expected_roi = models.FloatField(_("expected ROI"), null=True, blank=True)
    counts = models.JSONField(_("customers per arm"), default=dict, blank=True)
    segments = models.JSONField(_("segment breakdown"), default=dict, blank=True)
    frontier = models.JSONField(_("efficient frontier"), default=dict, blank=True)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    choices_path = models.CharField(max_length=500, blank=True)
    job = models.ForeignKey(
        "modeling.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    proposed_at = models.DateTimeField(_("proposed"), auto_now_add=True)
    applied_at = models.DateTimeField(_("applied"), null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rolled_back_at = models.DateTimeField(_("rolled back"), null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-proposed_at", "-id"]
        verbose_name = _("strategy")
        verbose_name_plural = _("strategies")
        indexes = [models.Index(fields=["merchant", "-proposed_at"], name="strategy_merchant_time")]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign"],
                condition=models.Q(status="applied"),
                name="strategy_one_applied_per_campaign",
            ),
            models.CheckConstraint(
                condition=models.Q(budget__gte=0), name="strategy_budget_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=StrategyStatus.values), name="strategy_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} — strategy #{self.pk} ({self.get_status_display()})"


class Assignment(models.Model):
    """What one customer gets in one campaign: a coupon with its unique code, or nothing.

    ``kind`` says why: the model's choice (``treatment``; it may be no coupon), the randomized
    ``holdout`` (never a coupon) or ``exploration`` (an arm drawn uniformly at random among no
    coupon and the campaign's coupons). ``propensity`` is the probability that this customer
    would get this arm under the strategy's randomization, over all three kinds together:
    ``h [arm = none] + x / (k + 1) + t [arm = the model's choice]`` with h, x and t the holdout,
    exploration and model shares (h + x + t = 1) and k coupon types. It is what an inverse-
    propensity-weighted retraining divides by; exploration rows alone are uniform (1 / (k + 1)
    given exploration).

    Foreign keys are not enforced by the database here (as for events; deletes still cascade
    through the ORM): rows only come in through ``strategy_apply``, which takes the merchant's
    customers and coupon types and the locked campaign and strategy in the same transaction, and
    the per-row checks at commit doubled the time of an apply (200k rows on PostgreSQL: 8 s with
    them, 4 s without).
    """

    id = models.BigAutoField(primary_key=True)
    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+"
    )
    # The unique (campaign, customer) index serves lookups by campaign.
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        db_index=False,
        db_constraint=False,
        related_name="assignments",
    )
    strategy = models.ForeignKey(
        Strategy, on_delete=models.CASCADE, db_constraint=False, related_name="assignments"
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        db_index=False,
        db_constraint=False,
        related_name="assignments",
    )
    coupon_type = models.ForeignKey(
        CouponType,
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
        related_name="assignments",
        help_text=_("Empty: no coupon."),
    )
    kind = models.CharField(_("kind"), max_length=12, choices=AssignmentKind.choices)
    code = models.CharField(_("coupon code"), max_length=40, null=True, blank=True, unique=True)
    propensity = models.FloatField(_("propensity"))
    assigned_at = models.DateTimeField(_("assigned"))

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        indexes = [models.Index(fields=["customer"], name="assignment_customer")]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer"], name="assignment_one_per_customer"
            ),
            models.CheckConstraint(
                condition=models.Q(coupon_type__isnull=True, code__isnull=True)
                | models.Q(coupon_type__isnull=False, code__isnull=False),
                name="assignment_code_iff_coupon",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind=AssignmentKind.HOLDOUT)
                | models.Q(coupon_type__isnull=True),
                name="assignment_holdout_no_coupon",
            ),
            models.CheckConstraint(
                condition=models.Q(propensity__gt=0) & models.Q(propensity__lte=1),
                name="assignment_propensity_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=AssignmentKind.values), name="assignment_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.customer_id}: {self.arm} ({self.kind})"

    @property
    def arm(self) -> str:
        return self.coupon_type.code if self.coupon_type_id else CONTROL_ARM


class CampaignHoldout(models.Model):
    """A customer once held out of a campaign stays held out of it (rollbacks keep these rows)."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, db_index=False, related_name="holdout"
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False, related_name="+"
    )

    class Meta:
        verbose_name = _("held-out customer")
        verbose_name_plural = _("held-out customers")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer"], name="holdout_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.customer_id}"


class Outcome(models.Model):
    """One order a customer placed after a campaign started (imported as kind "outcomes").

    ``code`` is the coupon code redeemed on the order ("" when none); ``assignment`` is the
    campaign assignment the order is attributed to, or null (the rule is in
    campaigns/imports/attribution.py). Orders are known by the shop's own ``order_id``: importing
    the same order again adds nothing. The foreign key to the assignment is not enforced by the
    database, so rollbacks keep deleting a strategy's assignments in one statement
    (``strategy_rollback`` detaches the orders first); deletes through the ORM leave it alone.
    """

    id = models.BigAutoField(primary_key=True)
    # The unique (merchant, order_id) index serves lookups by merchant.
    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, db_index=False, related_name="+"
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, db_index=False, related_name="outcomes"
    )
    order_id = models.CharField(_("order id"), max_length=128)
    ordered_at = models.DateTimeField(_("ordered"))
    revenue = models.DecimalField(
        _("net revenue"),
        max_digits=14,
        decimal_places=2,
        help_text=_("What the customer paid for the order, after any discount."),
    )
    code = models.CharField(_("coupon code"), max_length=40, blank=True)
    assignment = models.ForeignKey(
        Assignment,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="outcomes",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("outcome")
        verbose_name_plural = _("outcomes")
        indexes = [
            models.Index(fields=["customer", "ordered_at"], name="outcome_customer_time"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "order_id"], name="outcome_unique_order"),
            models.CheckConstraint(
                condition=models.Q(revenue__gte=0), name="outcome_revenue_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.ordered_at:%Y-%m-%d %H:%M}"


class RealizedResult(models.Model):
    """An applied strategy's realized results against its holdout, stored.

    Written by ``campaigns.results.strategy_results_refresh`` after each outcomes import that
    touches the strategy, so that its page and the API read one row; ``data``'s layout is
    documented in campaigns/results.py.
    """

    strategy = models.OneToOneField(
        Strategy, on_delete=models.CASCADE, related_name="realized_result"
    )
    data = models.JSONField(default=dict, blank=True)
    orders = models.PositiveIntegerField(_("orders counted"), default=0)
    refreshed_at = models.DateTimeField(_("refreshed"))

    class Meta:
        verbose_name = _("realized result")
        verbose_name_plural = _("realized results")

    def __str__(self) -> str:
        return f"strategy #{self.strategy_id}: {self.orders} orders"
