"""Writes on merchants and memberships. Views and the API call these; they hold no logic."""

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

from .choices import AuditVerb, Role
from .models import AuditEvent, CouponType, Membership, Merchant

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
