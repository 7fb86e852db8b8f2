"""Merchant pages: home, members, settings; plus the user's own pages outside any merchant."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.generic import FormView, TemplateView
from rest_framework.authtoken.models import Token

from modeling.choices import JobKind
from modeling.selectors import merchant_champion_headline, merchant_recent_jobs

from . import selectors, services
from .choices import Role
from .forms import InviteForm, MemberRoleForm, MerchantSettingsForm
from .models import Membership
from .summary import merchant_data_summary, merchant_next_steps
from .tenancy import MerchantViewMixin, tenant_exempt

SESSION_MERCHANT = "current_merchant"


class HomeRedirectView(LoginRequiredMixin, View):
    """``/``: the merchant used last, else the first one; a page of its own when there is none."""

    tenant_exempt = True

    def get(self, request: HttpRequest) -> HttpResponse:
        memberships = list(selectors.memberships_for_user(user=request.user))
        if not memberships:
            return TemplateView.as_view(template_name="campaigns/no_merchant.html")(request)
        last = request.session.get(SESSION_MERCHANT)
        chosen = next((m for m in memberships if m.merchant.slug == last), memberships[0])
        return redirect("campaigns:home", merchant=chosen.merchant.slug)


class MerchantHomeView(MerchantViewMixin, TemplateView):
    template_name = "campaigns/home.html"

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.session.get(SESSION_MERCHANT) != self.merchant.slug:
            request.session[SESSION_MERCHANT] = self.merchant.slug  # a session write only then
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        recent_jobs = merchant_recent_jobs(merchant=self.merchant, limit=5)
        champion = merchant_champion_headline(merchant=self.merchant)
        campaigns = list(
            selectors.merchant_campaigns(merchant=self.merchant).prefetch_related(None)[:5]
        )
        data_summary = merchant_data_summary(merchant=self.merchant)
        training_job = next(
            (job for job in recent_jobs if job.kind == JobKind.TRAIN and job.is_active), None
        )
        context.update(
            recent_jobs=recent_jobs,
            champion=champion,
            recent_campaigns=campaigns,
            member_count=selectors.merchant_members(merchant=self.merchant).count(),
            data_summary=data_summary,
            next_steps=merchant_next_steps(
                merchant=self.merchant,
                summary=data_summary,
                has_model=champion is not None,
                training_job=training_job,
                campaigns=campaigns,
            ),
        )
        return context


class MembersView(MerchantViewMixin, FormView):
    """Lists members; owners invite new ones here (POST)."""

    template_name = "campaigns/members.html"
    form_class = InviteForm
    write_role = Role.OWNER

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["members"] = selectors.merchant_members(merchant=self.merchant)
        context["roles"] = Role.choices
        context["audit_events"] = selectors.merchant_audit_events(merchant=self.merchant, limit=20)
        return context

    def form_valid(self, form: InviteForm) -> HttpResponse:
        try:
            membership = services.member_invite(
                merchant=self.merchant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=self.request.user,
                site_url=self.request.build_absolute_uri("/"),
            )
        except ValidationError as error:
            form.add_error("email", error)
            return self.form_invalid(form)
        messages.success(
            self.request,
            _("Invited %(email)s as %(role)s.")
            % {"email": membership.user.email, "role": membership.get_role_display()},
        )
        return redirect("campaigns:members", merchant=self.merchant.slug)


class MemberRoleView(MerchantViewMixin, View):
    write_role = Role.OWNER
    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, member_id: int) -> HttpResponse:
        membership = get_object_or_404(self.scoped(Membership), pk=member_id)
        form = MemberRoleForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Choose a valid role."))
        else:
            try:
                services.member_change_role(
                    membership=membership, role=form.cleaned_data["role"], actor=request.user
                )
                messages.success(request, _("Role changed."))
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
        return redirect("campaigns:members", merchant=self.merchant.slug)


class MemberRemoveView(MerchantViewMixin, View):
    write_role = Role.OWNER
    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, member_id: int) -> HttpResponse:
        membership = get_object_or_404(self.scoped(Membership), pk=member_id)
        try:
            services.member_remove(membership=membership, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("campaigns:members", merchant=self.merchant.slug)
        messages.success(request, _("Member removed."))
        if membership.user_id == request.user.pk:  # an owner who left: no access here any more
            return redirect("home")
        return redirect("campaigns:members", merchant=self.merchant.slug)


class MerchantSettingsView(MerchantViewMixin, FormView):
    template_name = "campaigns/settings.html"
    form_class = MerchantSettingsForm
    write_role = Role.OWNER

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["instance"] = self.merchant
        return kwargs

    def form_valid(self, form: MerchantSettingsForm) -> HttpResponse:
        services.merchant_update(
            merchant=self.merchant, actor=self.request.user, **form.cleaned_data
        )
        messages.success(self.request, _("Settings saved."))
        return redirect("campaigns:settings", merchant=self.merchant.slug)


class ApiTokenView(LoginRequiredMixin, TemplateView):
    """The signed-in user's own API token: shown, created or replaced. Not merchant data."""

    tenant_exempt = True
    template_name = "account/api_token.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["token"] = Token.objects.filter(user=self.request.user).first()
        context["memberships"] = selectors.memberships_for_user(user=self.request.user)
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        messages.success(request, _("A new API token was created; the old one no longer works."))
        return redirect("api_token")


@tenant_exempt
@method_decorator(never_cache, name="dispatch")
class HealthView(View):
    """For load balancers and docker healthchecks: 200 when the database answers."""

    def get(self, request: HttpRequest) -> JsonResponse:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok"})
