from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from .models import (
    Assignment,
    AuditEvent,
    Campaign,
    Membership,
    Merchant,
    Strategy,
    UserPreference,
)

User = get_user_model()


class MembershipForMerchantInline(admin.TabularInline):
    model = Membership
    fk_name = "merchant"
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["invited_by", "created_at"]
    fields = ["user", "role", "invited_by", "created_at"]


class MembershipForUserInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["merchant"]
    readonly_fields = ["invited_by", "created_at"]
    fields = ["merchant", "role", "invited_by", "created_at"]


class UserPreferenceInline(admin.StackedInline):
    model = UserPreference
    can_delete = True
    extra = 0
    max_num = 1
    fields = ["language"]


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "currency", "timezone", "member_count", "created_at"]
    list_filter = ["currency", "timezone", "created_at"]
    search_fields = ["name", "slug", "memberships__user__username", "memberships__user__email"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]
    inlines = [MembershipForMerchantInline]
    actions = ["check_workers"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    @admin.display(description=_("members"), ordering="_member_count")
    def member_count(self, merchant: Merchant) -> int:
        return merchant._member_count

    @admin.action(description=_("Check that workers serve every queue"))
    def check_workers(self, request, queryset):
        from modeling.services import worker_check_enqueue

        jobs = [
            job
            for merchant in queryset
            for job in worker_check_enqueue(merchant=merchant, actor=request.user)
        ]
        self.message_user(
            request,
            _("Queued %(n)d worker-check jobs; see them under Jobs.") % {"n": len(jobs)},
            messages.SUCCESS,
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "user_email", "merchant", "role", "invited_by", "created_at"]
    list_filter = ["role", "merchant"]
    search_fields = ["user__username", "user__email", "merchant__name", "merchant__slug"]
    list_select_related = ["user", "merchant", "invited_by"]
    autocomplete_fields = ["user", "merchant", "invited_by"]
    readonly_fields = ["created_at"]

    @admin.display(description=_("e-mail"), ordering="user__email")
    def user_email(self, membership: Membership) -> str:
        return membership.user.email


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is written by services alone."""

    list_display = ["created_at", "merchant", "actor", "verb", "target"]
    list_filter = ["verb", "merchant"]
    search_fields = ["target", "actor__username", "merchant__name"]
    list_select_related = ["merchant", "actor"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Inspect only: campaigns, strategies and assignments change through their services
    (which audit and keep the invariants), from the portal, the API or the commands."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Campaign)
class CampaignAdmin(_ReadOnlyAdmin):
    list_display = ["name", "merchant", "status", "goal", "budget", "starts_at", "ends_at"]
    list_filter = ["status", "goal", "merchant"]
    search_fields = ["name", "merchant__name", "merchant__slug"]
    list_select_related = ["merchant"]
    exclude = ["randomization_salt"]


@admin.register(Strategy)
class StrategyAdmin(_ReadOnlyAdmin):
    list_display = [
        "id",
        "campaign",
        "merchant",
        "status",
        "budget",
        "expected_cost",
        "expected_profit",
        "proposed_at",
        "applied_at",
    ]
    list_filter = ["status", "merchant"]
    search_fields = ["campaign__name", "merchant__name"]
    list_select_related = ["campaign", "merchant"]


@admin.register(Assignment)
class AssignmentAdmin(_ReadOnlyAdmin):
    list_display = ["id", "campaign", "customer", "kind", "coupon_type", "code", "assigned_at"]
    list_filter = ["kind", "merchant"]
    search_fields = ["=code", "=customer__external_id"]
    list_select_related = ["campaign", "customer", "coupon_type"]
    raw_id_fields = ["customer", "strategy", "campaign"]
    show_full_result_count = False  # millions of rows: no COUNT(*) per page


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [UserPreferenceInline, MembershipForUserInline]
    list_display = [
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "is_active",
        "merchant_count",
        "last_login",
    ]
    list_filter = [
        "is_staff",
        "is_superuser",
        "is_active",
        "memberships__role",
        "memberships__merchant",
        "preference__language",
    ]
    search_fields = ["username", "email", "first_name", "last_name", "memberships__merchant__name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_merchant_count=Count("memberships"))

    @admin.display(description=_("merchants"), ordering="_merchant_count")
    def merchant_count(self, user) -> int:
        return user._merchant_count
