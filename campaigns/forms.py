from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from modeling.segments import LIFECYCLE_SEGMENTS

from .choices import CURRENCIES, LIFECYCLE_LABELS, CampaignGoal, Role
from .models import (
    DEFAULT_ATTRIBUTION_WINDOW_DAYS,
    DEFAULT_EXPLORATION_SHARE,
    DEFAULT_HOLDOUT_SHARE,
    DEFAULT_MARGIN_RATE,
    MAX_ATTRIBUTION_WINDOW_DAYS,
    Campaign,
    CouponType,
    Merchant,
)


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("E-mail"), max_length=254)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class MerchantSettingsForm(forms.ModelForm):
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCIES)
    timezone = forms.ChoiceField(
        label=_("Time zone"),
        choices=[(name, name) for name in sorted(zoneinfo.available_timezones())],
    )

    class Meta:
        model = Merchant
        fields = ["name", "currency", "timezone"]


# --- coupon types and campaigns ------------------------------------------------------------------


class CouponTypeForm(forms.ModelForm):
    """A coupon type; its code is fixed once created (logs and assignments refer to it)."""

    class Meta:
        model = CouponType
        fields = [
            "code",
            "name",
            "kind",
            "value",
            "min_spend",
            "fixed_cost",
            "validity_days",
            "per_customer_limit",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["code"].disabled = True
            self.fields["code"].help_text = _("The code cannot change once created.")

    def clean_code(self) -> str:
        return (self.cleaned_data.get("code") or "").strip().upper()


DATETIME_INPUT = "%Y-%m-%dT%H:%M"


def _percent_field(
    label, *, initial: float, maximum: float = 99.9, minimum: float = 0, help_text=""
):
    return forms.FloatField(
        label=label,
        min_value=minimum,
        max_value=maximum,
        initial=initial,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )


class CampaignForm(forms.Form):
    """The campaign builder. Shares are entered in percent; caps as one field per coupon type
    (``cap_<code>``); the audience from its parts (campaigns/audience.py)."""

    name = forms.CharField(label=_("Name"), max_length=200)
    goal = forms.ChoiceField(label=_("Goal"), choices=CampaignGoal.choices)
    coupon_types = forms.MultipleChoiceField(
        label=_("Coupon types offered"), widget=forms.CheckboxSelectMultiple
    )
    budget = forms.DecimalField(
        label=_("Budget"),
        min_value=0,
        max_digits=14,
        decimal_places=2,
        help_text=_("The expected coupon spend, in the merchant's currency."),
    )
    starts_at = forms.DateTimeField(
        label=_("Starts"),
        input_formats=[DATETIME_INPUT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_INPUT),
    )
    ends_at = forms.DateTimeField(
        label=_("Ends"),
        input_formats=[DATETIME_INPUT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_INPUT),
    )
    lifecycle = forms.MultipleChoiceField(
        label=_("Lifecycle segments"),
        required=False,
        choices=[(name, LIFECYCLE_LABELS.get(name, name)) for name in LIFECYCLE_SEGMENTS],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every segment."),
    )
    min_uplift = forms.FloatField(
        label=_("Minimum predicted uplift (percentage points)"),
        required=False,
        min_value=-100,
        max_value=100,
        help_text=_("Only customers whose best coupon lifts their conversion at least this much."),
    )
    max_uplift = forms.FloatField(
        label=_("Maximum predicted uplift (percentage points)"),
        required=False,
        min_value=-100,
        max_value=100,
    )
    attributes = forms.JSONField(
        label=_("Customer attributes"),
        required=False,
        help_text=_('Optional, e.g. {"member_level": ["gold", "silver"], "city_tier": 1}.'),
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    holdout_percent = _percent_field(
        _("Holdout (%)"),
        initial=DEFAULT_HOLDOUT_SHARE * 100,
        help_text=_("Eligible customers kept without a coupon, at random, to measure the uplift."),
    )
    exploration_percent = _percent_field(
        _("Exploration (%)"),
        initial=DEFAULT_EXPLORATION_SHARE * 100,
        help_text=_("Eligible customers given a random arm, logged, so the model keeps learning."),
    )
    attribution_window_days = forms.IntegerField(
        label=_("Attribution window (days)"),
        required=False,
        min_value=1,
        max_value=MAX_ATTRIBUTION_WINDOW_DAYS,
        initial=DEFAULT_ATTRIBUTION_WINDOW_DAYS,
        help_text=_(
            "Orders count for the campaign this many days from when its coupons can first be "
            "used; the same for the holdout, so the comparison stays fair."
        ),
    )
    margin_percent = _percent_field(
        _("Gross margin (%)"),
        initial=DEFAULT_MARGIN_RATE * 100,
        minimum=0.1,
        maximum=100,
        help_text=_("Gross margin as a share of an order's net value."),
    )
    average_order_value = forms.DecimalField(
        label=_("Average order value"),
        required=False,
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        help_text=_("Used where the model predicts no order value; defaults from the data."),
    )
    code_prefix = forms.CharField(
        label=_("Coupon code prefix"),
        max_length=12,
        required=False,
        help_text=_("Upper-case letters, digits and '-' (e.g. SPRING-)."),
    )

    def __init__(self, *args, coupon_types, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.coupon_codes = [c.code for c in coupon_types]
        self.fields["coupon_types"].choices = [
            (c.code, f"{c.code} — {c.name}") for c in coupon_types
        ]
        for coupon in coupon_types:
            self.fields[f"cap_{coupon.code}"] = forms.IntegerField(
                label=_("Most customers with %(code)s") % {"code": coupon.code},
                required=False,
                min_value=0,
                help_text=_("Empty: no cap."),
            )

    @property
    def cap_fields(self) -> list:
        return [self[f"cap_{code}"] for code in self.coupon_codes]

    def clean(self) -> dict:
        data = super().clean()
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", _("The campaign must end after it starts."))
        low, high = data.get("min_uplift"), data.get("max_uplift")
        if low is not None and high is not None and low > high:
            self.add_error("max_uplift", _("The maximum must not be below the minimum."))
        attributes = data.get("attributes")
        if attributes not in (None, "", {}) and not isinstance(attributes, dict):
            self.add_error("attributes", _("Give an object of attribute name -> value(s)."))
        holdout, explore = data.get("holdout_percent"), data.get("exploration_percent")
        if holdout is not None and explore is not None and holdout + explore >= 100:
            self.add_error(
                "exploration_percent",
                _("The holdout and exploration shares together must stay below 100%."),
            )
        return data

    def service_fields(self) -> dict:
        """The cleaned data in the services' terms (campaign_create / campaign_update)."""
        data = self.cleaned_data
        audience: dict = {}
        if data.get("lifecycle"):
            audience["lifecycle"] = list(data["lifecycle"])
        for key in ("min_uplift", "max_uplift"):
            if data.get(key) is not None:
                audience[key] = round(data[key] / 100, 6)
        if data.get("attributes"):
            audience["attributes"] = data["attributes"]
        offered = list(data["coupon_types"])
        caps = {
            code: data[f"cap_{code}"] for code in offered if data.get(f"cap_{code}") is not None
        }
        return {
            "name": data["name"],
            "goal": data["goal"],
            "coupon_types": offered,
            "budget": data["budget"],
            "caps": caps,
            "starts_at": data["starts_at"],
            "ends_at": data["ends_at"],
            "audience": audience,
            "holdout_share": round(data["holdout_percent"] / 100, 6),
            "exploration_share": round(data["exploration_percent"] / 100, 6),
            "margin_rate": round(data["margin_percent"] / 100, 6),
            "average_order_value": data.get("average_order_value"),
            "code_prefix": data.get("code_prefix") or "",
            # Empty: the default for a new campaign, unchanged for an existing one.
            **(
                {"attribution_window_days": data["attribution_window_days"]}
                if data.get("attribution_window_days") is not None
                else {}
            ),
        }

    @staticmethod
    def initial_for(campaign: Campaign) -> dict:
        """The form's initial values for an existing campaign."""
        audience = campaign.audience or {}
        initial = {
            "name": campaign.name,
            "goal": campaign.goal,
            "coupon_types": [c.code for c in campaign.coupon_types.all()],
            "budget": campaign.budget,
            "starts_at": campaign.starts_at,
            "ends_at": campaign.ends_at,
            "lifecycle": audience.get("lifecycle", []),
            "attributes": audience.get("attributes"),
            "holdout_percent": round(campaign.holdout_share * 100, 4),
            "exploration_percent": round(campaign.exploration_share * 100, 4),
            "attribution_window_days": campaign.attribution_window_days,
            "margin_percent": round(campaign.margin_rate * 100, 4),
            "average_order_value": campaign.average_order_value,
            "code_prefix": campaign.code_prefix,
        }
        for key in ("min_uplift", "max_uplift"):
            if key in audience:
                initial[key] = round(audience[key] * 100, 4)
        for code, cap in (campaign.caps or {}).items():
            initial[f"cap_{code}"] = cap
        return initial


class ProposeForm(forms.Form):
    budget = forms.DecimalField(
        label=_("Budget"),
        min_value=0,
        max_digits=14,
        decimal_places=2,
        help_text=_("The expected coupon spend to propose a strategy for."),
    )
