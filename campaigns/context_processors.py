"""Template context for the navigation bar: the user's merchants and the current one."""

from __future__ import annotations

from django.http import HttpRequest

from .choices import Role
from .selectors import memberships_for_user


def tenancy(request: HttpRequest) -> dict:
    membership = getattr(request, "membership", None)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        # Lazy: evaluated only by templates that show the switcher.
        "my_memberships": memberships_for_user(user=user),
        "current_membership": membership,
        "current_merchant": getattr(request, "merchant", None),
        "can_manage": membership is not None and membership.has_role(Role.MANAGER),
        "is_owner": membership is not None and membership.has_role(Role.OWNER),
    }
