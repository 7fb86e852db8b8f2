"""Domain choices of the merchant side, in one place."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    MANAGER = "manager", _("Manager")
    VIEWER = "viewer", _("Viewer")

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def includes(self, required: Role | str) -> bool:
        """Whether this role may do what ``required`` may: owner > manager > viewer."""
        return self.rank >= _ROLE_RANK[Role(required)]


_ROLE_RANK = {Role.VIEWER: 0, Role.MANAGER: 1, Role.OWNER: 2}


class AuditVerb(models.TextChoices):
    MEMBER_INVITED = "member.invited", _("Member invited")
    MEMBER_ROLE_CHANGED = "member.role_changed", _("Member role changed")
    MEMBER_REMOVED = "member.removed", _("Member removed")
    MERCHANT_UPDATED = "merchant.updated", _("Merchant settings changed")
    JOB_CANCELLED = "job.cancelled", _("Job cancelled")
    DATA_IMPORTED = "data.imported", _("Data imported")
    COUPON_TYPE_CREATED = "coupon_type.created", _("Coupon type created")
    COUPON_TYPE_CHANGED = "coupon_type.changed", _("Coupon type changed")
    MODEL_PROMOTED = "model.promoted", _("Model promoted to champion")
    CAMPAIGN_CREATED = "campaign.created", _("Campaign created")
    CAMPAIGN_CHANGED = "campaign.changed", _("Campaign changed")
    STRATEGY_PROPOSED = "strategy.proposed", _("Strategy proposed")
    STRATEGY_APPLIED = "strategy.applied", _("Strategy applied")
    STRATEGY_ROLLED_BACK = "strategy.rolled_back", _("Strategy rolled back")


# ISO 4217 codes offered in forms; any three-letter upper-case code is accepted by the model.
CURRENCIES = [
    ("CNY", _("CNY — Chinese yuan")),
    ("USD", _("USD — US dollar")),
    ("EUR", _("EUR — Euro")),
    ("GBP", _("GBP — Pound sterling")),
    ("JPY", _("JPY — Japanese yen")),
    ("HKD", _("HKD — Hong Kong dollar")),
    ("TWD", _("TWD — New Taiwan dollar")),
    ("SGD", _("SGD — Singapore dollar")),
    ("KRW", _("KRW — South Korean won")),
    ("AUD", _("AUD — Australian dollar")),
    ("CAD", _("CAD — Canadian dollar")),
    ("CHF", _("CHF — Swiss franc")),
    ("INR", _("INR — Indian rupee")),
]


class EventType(models.TextChoices):
    VIEW = "view", _("View")
    SEARCH = "search", _("Search")
    CART = "cart", _("Add to cart")
    FAVORITE = "favorite", _("Favorite")
    PURCHASE = "purchase", _("Purchase")
    REFUND = "refund", _("Refund")
    REVIEW = "review", _("Review")


class CouponKind(models.TextChoices):
    PERCENT_OFF = "percent_off", _("Percent off")
    AMOUNT_OFF = "amount_off", _("Amount off")
    THRESHOLD_OFF = "threshold_off", _("Amount off above a minimum spend")
    FREE_SHIPPING = "free_shipping", _("Free shipping")
    MEMBER_PRICE = "member_price", _("Member price")

    @property
    def is_percentage(self) -> bool:
        return self in (CouponKind.PERCENT_OFF, CouponKind.MEMBER_PRICE)


class TreatmentSource(models.TextChoices):
    IMPORT = "import", _("Imported history")
    API = "api", _("Pushed through the API")
    STRATEGY = "strategy", _("Applied strategy (targeted)")
    HOLDOUT = "holdout", _("Applied strategy (holdout)")
    EXPLORATION = "exploration", _("Applied strategy (exploration)")


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    EVENTS = "events", _("Behaviour events")
    TREATMENTS = "treatments", _("Treatments and outcomes")
    OUTCOMES = "outcomes", _("Orders after a campaign started (outcomes)")


class ImportSource(models.TextChoices):
    UPLOAD = "upload", _("Browser upload")
    API = "api", _("REST API")
    COMMAND = "command", _("Management command")


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Uploaded, waiting for the column mapping")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Imported")
    REJECTED = "rejected", _("Rejected: the file has errors, nothing was imported")
    FAILED = "failed", _("Failed: nothing was imported")


class CampaignGoal(models.TextChoices):
    """What the optimizer maximizes: incremental profit, revenue or conversions."""

    PROFIT = "profit", _("Incremental profit")
    REVENUE = "revenue", _("Incremental revenue")
    CONVERSIONS = "conversions", _("Incremental conversions")


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft: no strategy proposed yet")
    READY = "ready", _("Ready: a strategy can be applied")
    APPLIED = "applied", _("Applied: coupons assigned")
    COMPLETED = "completed", _("Completed: the campaign has ended")


class StrategyStatus(models.TextChoices):
    PROPOSED = "proposed", _("Proposed")
    APPLIED = "applied", _("Applied")
    ROLLED_BACK = "rolled_back", _("Rolled back")
    SUPERSEDED = "superseded", _("Superseded: the campaign changed after it was proposed")


class AssignmentKind(models.TextChoices):
    """Why a customer got what they got. Only ``treatment`` rows follow the model."""

    TREATMENT = "treatment", _("The model's choice (a coupon or none)")
    HOLDOUT = "holdout", _("Randomized holdout (no coupon)")
    EXPLORATION = "exploration", _("Exploration (an arm drawn at random)")


CONTROL_ARM = "control"

# Lifecycle segments as modeling/segments.py names them (audiences and strategies store the keys).
LIFECYCLE_LABELS = {
    "new": _("New"),
    "active": _("Active"),
    "lapsing": _("Lapsing"),
    "lost": _("Lost"),
    "prospect": _("Prospect (never bought)"),
}


def lifecycle_label(key: str) -> str:
    """The segment's name in the active language (the key itself where it is unknown)."""
    return str(LIFECYCLE_LABELS.get(key, key))
