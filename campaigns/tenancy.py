"""The one place where requests are scoped to a merchant and checked against a role.

Every page and API endpoint is one of three things, and nothing else is served:

* **merchant-scoped**: its URL carries ``<merchant>`` (the slug) and its view derives from
  :class:`MerchantViewMixin` (pages) or :class:`MerchantAPIMixin` (API). The user must be a member
  (else 404, so other merchants' existence is not revealed) and hold the view's ``read_role`` for
  safe methods and ``write_role`` for the others (else 403). Querysets come from
  :meth:`scoped`, filtered to the merchant.
* **tenant-exempt**: explicitly marked with :func:`tenant_exempt` (login, the API schema, the
  health check, a user's own token page) or part of Django's admin (staff only).
* anything else is refused by :class:`TenancyGuardMiddleware` and reported by the
  ``campaigns.E001`` system check, so a new view cannot forget to choose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest
from rest_framework import exceptions as drf_exceptions
from rest_framework import permissions

from .choices import Role
from .models import Membership, Merchant

MERCHANT_KWARG = "merchant"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def membership_for(*, user, merchant_slug: str) -> Membership | None:
    """The user's membership in the merchant with this slug, or None (also for anonymous)."""
    if not user.is_authenticated or not user.is_active:
        return None
    return (
        Membership.objects.select_related("merchant")
        .filter(user=user, merchant__slug=merchant_slug)
        .first()
    )


def dangerously_unscoped(model: type[models.Model]) -> models.QuerySet:
    """All rows of every merchant: for admin tooling and cross-tenant jobs; named to stand out."""
    return model._default_manager.all()


class _Scoped:
    """Behaviour shared by page and API views once the membership is known."""

    read_role: Role = Role.VIEWER
    write_role: Role = Role.MANAGER
    request: HttpRequest
    merchant: Merchant
    membership: Membership

    def required_role(self, method: str) -> Role:
        return self.read_role if method in SAFE_METHODS else self.write_role

    def can(self, role: Role | str) -> bool:
        return self.membership.has_role(role)

    def scoped(self, model: type[models.Model]) -> models.QuerySet:
        """``model``'s rows of the current merchant only."""
        if model is Merchant:
            return Merchant.objects.filter(pk=self.merchant.pk)
        return model._default_manager.filter(merchant=self.merchant)

    def _bind(self, request: HttpRequest, membership: Membership) -> None:
        self.membership = membership
        self.merchant = membership.merchant
        request.membership = membership  # type: ignore[attr-defined]
        request.merchant = membership.merchant  # type: ignore[attr-defined]


class MerchantViewMixin(_Scoped, AccessMixin):
    """Base for every merchant page: login, membership (404) and role (403) checks."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = membership_for(user=request.user, merchant_slug=kwargs[MERCHANT_KWARG])
        if membership is None:
            raise Http404("No such merchant.")
        if not membership.has_role(self.required_role(request.method or "GET")):
            raise PermissionDenied("Your role does not allow this.")
        self._bind(request, membership)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        context.update(merchant=self.merchant, membership=self.membership)
        return context


class MerchantRolePermission(permissions.BasePermission):
    """DRF side of the same rule; resolves the membership before any handler runs."""

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            raise drf_exceptions.NotAuthenticated()
        membership = membership_for(user=request.user, merchant_slug=view.kwargs[MERCHANT_KWARG])
        if membership is None:
            raise drf_exceptions.NotFound("No such merchant.")
        view._bind(request, membership)
        # Bind on the wrapped Django request as well, for code that reads it there.
        view._bind(request._request, membership)
        return membership.has_role(view.required_role(request.method))


class MerchantAPIMixin(_Scoped):
    """Base for every merchant API view or viewset."""

    permission_classes = [MerchantRolePermission]
    model: type[models.Model]

    def get_queryset(self) -> models.QuerySet:
        return self.scoped(self.model)


# --- the guard ------------------------------------------------------------------------------


def tenant_exempt(view: Callable) -> Callable:
    """Mark a view as deliberately outside merchant scoping (it must still check its own access)."""
    view.tenant_exempt = True  # type: ignore[attr-defined]
    return view


def _view_class(view_func: Callable) -> type | None:
    return getattr(view_func, "view_class", None) or getattr(view_func, "cls", None)


def classify_view(view_func: Callable) -> str:
    """'scoped', 'exempt', 'admin' or 'unguarded' for a resolved view callable."""
    view_class = _view_class(view_func)
    if view_class is not None and issubclass(view_class, MerchantViewMixin | MerchantAPIMixin):
        return "scoped"
    if getattr(view_func, "tenant_exempt", False) or getattr(view_class, "tenant_exempt", False):
        return "exempt"
    if _is_admin_view(view_func):
        return "admin"
    return "unguarded"


def _is_admin_view(view_func: Callable) -> bool:
    """Django admin views: staff-only, guarded by the admin site itself."""
    from django.contrib.admin import AdminSite, ModelAdmin

    if hasattr(view_func, "admin_site") or hasattr(view_func, "model_admin"):
        return True
    layer: Callable | None = view_func
    while layer is not None:  # the admin wraps its bound methods in decorators
        if isinstance(getattr(layer, "__self__", None), AdminSite | ModelAdmin):
            return True
        layer = getattr(layer, "__wrapped__", None)
    return False


def guard_problem(view_func: Callable, kwarg_names: set[str] | dict) -> str | None:
    """Why this view may not be served at a URL with these kwargs, or None when it may."""
    kind = classify_view(view_func)
    has_merchant = MERCHANT_KWARG in kwarg_names
    name = getattr(view_func, "__qualname__", repr(view_func))
    if kind == "scoped" and not has_merchant:
        return f"{name} is merchant-scoped but its URL has no <{MERCHANT_KWARG}>."
    if kind != "scoped" and has_merchant:
        return f"{name} is served under <{MERCHANT_KWARG}> but does not use the tenancy mixins."
    if kind == "unguarded":
        return f"{name} is neither merchant-scoped nor marked tenant_exempt."
    return None


class TenancyGuardMiddleware:
    """Refuses to run any view that did not opt into scoping or out of it (fails closed)."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        problem = guard_problem(view_func, view_kwargs)
        if problem is not None:
            raise ImproperlyConfigured(problem)
        return None
