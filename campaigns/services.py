"""Writes on merchants, memberships, coupon types and campaigns. Views and the API call these;
they hold no logic. Strategies and assignments: campaigns/strategies.py and assignments.py."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from .choices import AuditVerb, CampaignStatus, Role, StrategyStatus
from .models import AuditEvent, Campaign, CouponType, Membership, Merchant, Strategy

User = get_user_model()


def audit_record(
    *, merchant: Merchant, actor, verb: AuditVerb, target: str = "", data: dict | None = None
) -> AuditEvent:
    return AuditEvent.objects.create(
        merchant=merchant,
        actor=actor if actor is not None and actor.is_authenticated else None,
        verb=verb,
        target=target[:200],
        data=data or {},
    )


@transaction.atomic
def merchant_create(*, name: str, slug: str, currency: str, timezone: str, owner) -> Merchant:
    merchant = Merchant(name=name, slug=slug, currency=currency, timezone=timezone)
    merchant.full_clean()
    merchant.save()
    Membership.objects.create(user=owner, merchant=merchant, role=Role.OWNER)
    return merchant


@transaction.atomic
def merchant_update(*, merchant: Merchant, actor, **fields: Any) -> Merchant:
    allowed = {"name", "currency", "timezone"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(
            _("These settings cannot be changed: %s") % ", ".join(sorted(unknown))
        )
    before = {key: getattr(merchant, key) for key in fields}
    for key, value in fields.items():
        setattr(merchant, key, value)
    merchant.full_clean()
    merchant.save(update_fields=list(fields))
    changed = {k: [before[k], v] for k, v in fields.items() if before[k] != v}
    if changed:
        audit_record(merchant=merchant, actor=actor, verb=AuditVerb.MERCHANT_UPDATED, data=changed)
    return merchant


@transaction.atomic
def member_invite(
    *, merchant: Merchant, email: str, role: Role | str, actor, site_url: str
) -> Membership:
    """Add a user by e-mail; one without an account gets one and an e-mail to set a password."""
    email = User.objects.normalize_email(email.strip()).lower()
    role = Role(role)
    user = User.objects.filter(email__iexact=email).order_by("pk").first()
    created_user = user is None
    if created_user:
        username = _free_username(email)
        user = User.objects.create_user(username=username, email=email)
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif Membership.objects.filter(merchant=merchant, user=user).exists():
        raise ValidationError(
            _("%(email)s is already a member of %(merchant)s."),
            params={"email": email, "merchant": merchant.name},
        )
    membership = Membership.objects.create(
        user=user, merchant=merchant, role=role, invited_by=actor
    )
    audit_record(
        merchant=merchant,
        actor=actor,
        verb=AuditVerb.MEMBER_INVITED,
        target=email,
        data={"role": role.value, "new_account": created_user},
    )
    transaction.on_commit(
        lambda: _send_invitation(
            membership=membership, actor=actor, site_url=site_url, new_account=created_user
        )
    )
    return membership


def _free_username(email: str) -> str:
    base = email[:140]
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _send_invitation(*, membership: Membership, actor, site_url: str, new_account: bool) -> None:
    user = membership.user
    context = {
        "membership": membership,
        "merchant": membership.merchant,
        "inviter": actor,
        "new_account": new_account,
        "site_url": site_url.rstrip("/"),
        "merchant_url": site_url.rstrip("/")
        + reverse("campaigns:home", kwargs={"merchant": membership.merchant.slug}),
    }
    if new_account:
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        context["set_password_url"] = site_url.rstrip("/") + reverse(
            "password_reset_confirm", kwargs={"uidb64": uid, "token": token}
        )
    subject = _("You have been invited to %(merchant)s on Promo Portal") % {
        "merchant": membership.merchant.name
    }
    body = render_to_string("campaigns/email/invitation.txt", context)
    send_mail(subject, body, None, [user.email])


def _ensure_other_owner(membership: Membership) -> None:
    if membership.role != Role.OWNER:
        return
    others = (
        Membership.objects.select_for_update()
        .filter(merchant=membership.merchant, role=Role.OWNER)
        .exclude(pk=membership.pk)
    )
    if not others.exists():
        raise ValidationError(_("A merchant must keep at least one owner."))


@transaction.atomic
def member_change_role(*, membership: Membership, role: Role | str, actor) -> Membership:
    role = Role(role)
    if membership.role == role:
        return membership
    if role != Role.OWNER:
        _ensure_other_owner(membership)
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        merchant=membership.merchant,
        actor=actor,
        verb=AuditVerb.MEMBER_ROLE_CHANGED,
        target=membership.user.email or membership.user.username,
        data={"from": before, "to": role.value},
    )
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor) -> None:
    _ensure_other_owner(membership)
    audit_record(
        merchant=membership.merchant,
        actor=actor,
        verb=AuditVerb.MEMBER_REMOVED,
        target=membership.user.email or membership.user.username,
        data={"role": membership.role},
    )
    membership.delete()


@transaction.atomic
def coupon_type_create(*, merchant: Merchant, actor, **fields: Any) -> CouponType:
    coupon = CouponType(merchant=merchant, **fields)
    coupon.code = coupon.code.strip().upper()
    coupon.full_clean()
    coupon.save()
    audit_record(
        merchant=merchant,
        actor=actor,
        verb=AuditVerb.COUPON_TYPE_CREATED,
        target=coupon.code,
        data={"kind": coupon.kind, "value": str(coupon.value)},
    )
    return coupon


@transaction.atomic
def coupon_type_update(*, coupon: CouponType, actor, **fields: Any) -> CouponType:
    """Change a coupon type; its code stays (treatment logs and assignments refer to it)."""
    fields.pop("code", None)
    before = {key: str(getattr(coupon, key)) for key in fields}
    for key, value in fields.items():
        setattr(coupon, key, value)
    coupon.full_clean()
    coupon.save()
    changed = {k: [before[k], str(v)] for k, v in fields.items() if before[k] != str(v)}
    if changed:
        audit_record(
            merchant=coupon.merchant,
            actor=actor,
            verb=AuditVerb.COUPON_TYPE_CHANGED,
            target=coupon.code,
            data=changed,
        )
    return coupon


# --- campaigns ----------------------------------------------------------------------------------

# The settings a strategy is computed from: changing one makes proposed strategies stale.
_STRATEGY_FIELDS = (
    "goal",
    "budget",
    "caps",
    "audience",
    "holdout_share",
    "exploration_share",
    "margin_rate",
    "average_order_value",
    "coupon_types",
)
_CAMPAIGN_FIELDS = (
    "name",
    "starts_at",
    "ends_at",
    "code_prefix",
    # Not a strategy setting, but fixed once a strategy is applied like the others: changing
    # the window after seeing results would let one choose the window that looks best.
    "attribution_window_days",
    *_STRATEGY_FIELDS,
)


def _campaign_coupon_types(*, merchant: Merchant, codes: list[str]) -> list[CouponType]:
    wanted = [str(code).strip().upper() for code in codes]
    if not wanted:
        raise ValidationError({"coupon_types": _("Offer at least one coupon type.")})
    if len(set(wanted)) != len(wanted):
        raise ValidationError({"coupon_types": _("Each coupon type may be listed once.")})
    found = {c.code: c for c in CouponType.objects.filter(merchant=merchant, code__in=wanted)}
    unknown = [code for code in wanted if code not in found]
    if unknown:
        raise ValidationError(
            {
                "coupon_types": _("This merchant has no coupon type %(codes)s.")
                % {"codes": ", ".join(unknown)}
            }
        )
    inactive = [code for code in wanted if not found[code].active]
    if inactive:
        raise ValidationError(
            {
                "coupon_types": _("Inactive coupon types cannot be offered: %(codes)s.")
                % {"codes": ", ".join(inactive)}
            }
        )
    return [found[code] for code in sorted(wanted)]


def _check_caps(caps: dict, codes: list[str]) -> None:
    unknown = sorted(set(caps) - set(codes))
    if unknown:
        raise ValidationError(
            {
                "caps": _("Caps name coupon types the campaign does not offer: %(codes)s.")
                % {"codes": ", ".join(unknown)}
            }
        )


def _campaign_change_value(value: Any) -> Any:
    """A JSON-friendly form of a campaign setting, for the audit log."""
    if isinstance(value, list | tuple):
        return [_campaign_change_value(v) for v in value]
    if isinstance(value, dict | int | float | bool) or value is None:
        return value
    return str(value)


@transaction.atomic
def campaign_create(
    *, merchant: Merchant, actor, coupon_types: list[str], **fields: Any
) -> Campaign:
    """A draft campaign. Unset margin rate and average order value default from the data."""
    from .selectors import merchant_average_order_value

    unknown = set(fields) - set(_CAMPAIGN_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown campaign settings: %s") % ", ".join(sorted(unknown)))
    coupons = _campaign_coupon_types(merchant=merchant, codes=coupon_types)
    if fields.get("margin_rate") is None:
        fields.pop("margin_rate", None)  # the model's documented default
    if fields.get("average_order_value") is None:
        fields["average_order_value"] = merchant_average_order_value(merchant=merchant)
    fields["caps"] = {str(k).strip().upper(): v for k, v in (fields.get("caps") or {}).items()}
    fields["code_prefix"] = (fields.get("code_prefix") or "").strip().upper()
    fields.setdefault("audience", {})
    campaign = Campaign(
        merchant=merchant,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        **fields,
    )
    campaign.full_clean()
    _check_caps(campaign.caps, [c.code for c in coupons])
    campaign.save()
    campaign.coupon_types.set(coupons)
    audit_record(
        merchant=merchant,
        actor=actor,
        verb=AuditVerb.CAMPAIGN_CREATED,
        target=campaign.name,
        data={
            "campaign": campaign.pk,
            "goal": campaign.goal,
            "budget": str(campaign.budget),
            "coupon_types": [c.code for c in coupons],
        },
    )
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, actor, **fields: Any) -> Campaign:
    """Change a campaign's settings. Changing what a strategy depends on supersedes the
    proposed strategies (they were computed for the old settings); once a strategy is applied,
    only the name can change until it is rolled back."""
    unknown = set(fields) - set(_CAMPAIGN_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown campaign settings: %s") % ", ".join(sorted(unknown)))
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    before = {
        key: (
            sorted(campaign.coupon_types.values_list("code", flat=True))
            if key == "coupon_types"
            else getattr(campaign, key)
        )
        for key in fields
    }
    if "coupon_types" in fields:
        coupons = _campaign_coupon_types(merchant=campaign.merchant, codes=fields["coupon_types"])
        fields["coupon_types"] = [c.code for c in coupons]
    if "caps" in fields:
        fields["caps"] = {str(k).strip().upper(): v for k, v in (fields["caps"] or {}).items()}
    if "code_prefix" in fields:
        fields["code_prefix"] = (fields["code_prefix"] or "").strip().upper()
    if fields.get("audience", {}) is None:
        fields["audience"] = {}
    changed = {k: v for k, v in fields.items() if before[k] != v}
    if campaign.status in (CampaignStatus.APPLIED, CampaignStatus.COMPLETED) and set(changed) - {
        "name"
    }:
        raise ValidationError(
            _("This campaign is %(status)s: roll its strategy back before changing it.")
            % {"status": campaign.status}
        )
    if not changed:
        return campaign
    for key, value in changed.items():
        if key != "coupon_types":
            setattr(campaign, key, value)
    campaign.full_clean()
    codes = changed.get("coupon_types", before.get("coupon_types")) or list(
        campaign.coupon_types.values_list("code", flat=True)
    )
    _check_caps(campaign.caps, codes)
    stale = bool(set(changed) & set(_STRATEGY_FIELDS))
    if stale:
        campaign.revision += 1
        # Rolled-back strategies keep their status; their old revision stops them being applied.
        superseded = Strategy.objects.filter(
            campaign=campaign, status=StrategyStatus.PROPOSED
        ).update(status=StrategyStatus.SUPERSEDED)
        if campaign.status == CampaignStatus.READY:
            campaign.status = CampaignStatus.DRAFT
    campaign.save()
    if "coupon_types" in changed:
        campaign.coupon_types.set(
            CouponType.objects.filter(merchant=campaign.merchant, code__in=changed["coupon_types"])
        )
    data = {
        k: [_campaign_change_value(before[k]), _campaign_change_value(v)]
        for k, v in changed.items()
    }
    if stale:
        data["superseded_strategies"] = superseded
    audit_record(
        merchant=campaign.merchant,
        actor=actor,
        verb=AuditVerb.CAMPAIGN_CHANGED,
        target=campaign.name,
        data={"campaign": campaign.pk, **data},
    )
    return campaign


def campaign_is_deletable(campaign: Campaign) -> bool:
    """Only a campaign that never went out may be deleted: no strategy of it was ever applied
    (rolled-back strategies count: their holdout was recorded and may be measured)."""
    return (
        campaign.status in (CampaignStatus.DRAFT, CampaignStatus.READY)
        and not Strategy.objects.filter(
            campaign=campaign,
            status__in=(StrategyStatus.APPLIED, StrategyStatus.ROLLED_BACK),
        ).exists()
    )


@transaction.atomic
def campaign_delete(*, campaign: Campaign, actor) -> None:
    """Delete a campaign that never went out (see :func:`campaign_is_deletable`) with its
    proposed strategies and their decision files. Campaigns that went out are kept: their
    assignments and holdout are the record the realized uplift is measured against."""
    from pathlib import Path

    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if not campaign_is_deletable(campaign):
        raise ValidationError(
            _(
                "Only a campaign whose coupons never went out can be deleted; this one keeps "
                "its assignments and holdout for measuring."
            )
        )
    files = [
        Path(path)
        for path in Strategy.objects.filter(campaign=campaign).values_list(
            "choices_path", flat=True
        )
        if path
    ]
    audit_record(
        merchant=campaign.merchant,
        actor=actor,
        verb=AuditVerb.CAMPAIGN_CHANGED,
        target=campaign.name,
        data={"campaign": campaign.pk, "deleted": True},
    )
    campaign.delete()
    transaction.on_commit(lambda: [path.unlink(missing_ok=True) for path in files])
