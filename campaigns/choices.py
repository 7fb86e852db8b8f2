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


# ISO 4217 codes offered in forms; any three-letter upper-case code is accepted by the model.
CURRENCIES = [
    ("CNY", "CNY — Chinese yuan"),
    ("USD", "USD — US dollar"),
    ("EUR", "EUR — Euro"),
    ("GBP", "GBP — Pound sterling"),
    ("JPY", "JPY — Japanese yen"),
    ("HKD", "HKD — Hong Kong dollar"),
    ("TWD", "TWD — New Taiwan dollar"),
    ("SGD", "SGD — Singapore dollar"),
    ("KRW", "KRW — South Korean won"),
    ("AUD", "AUD — Australian dollar"),
    ("CAD", "CAD — Canadian dollar"),
    ("CHF", "CHF — Swiss franc"),
    ("INR", "INR — Indian rupee"),
]
