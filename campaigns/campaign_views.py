"""Coupon type, campaign and strategy pages, mounted under /m/<merchant>/ (campaign_urls.py).

Thin: each view validates its input, calls one service or selector, and renders. Viewers read
every page (forms show disabled); every POST needs the manager role (``write_role``).
Long actions (propose, apply) are jobs: the campaign job page shows the job's live progress
(modeling/_job_progress.html) and, once the job succeeds, goes on to the strategy it made.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import timedelta
from itertools import pairwise
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views import View
from django.views.generic import DetailView, FormView, ListView, TemplateView

from modeling.choices import JobStatus
from modeling.selectors import merchant_jobs

from . import selectors, services
from .assignments import (
    EXPORT_HEADER,
    assignment_export_rows,
    strategy_apply_enqueue,
    strategy_rollback,
)
from .charts import GREY, figure_layout, palette_colour
from .choices import CONTROL_ARM, AssignmentKind, StrategyStatus, lifecycle_label
from .exports import csv_response
from .forms import CampaignForm, CouponTypeForm, ProposeForm
from .models import Campaign, CouponType, Strategy
from .result_pages import realized_context
from .results import strategy_results
from .strategies import strategy_is_applicable, strategy_propose
from .tenancy import MerchantViewMixin


class _MerchantTimeMixin:
    """Runs the handler in the merchant's time zone; placed after MerchantViewMixin, so the
    membership is bound when it runs."""

    merchant: Any

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any):
        try:
            zone = zoneinfo.ZoneInfo(self.merchant.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        with timezone.override(zone):
            response = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()  # render while the merchant's zone is active
            return response


class PageMixin(MerchantViewMixin, _MerchantTimeMixin):
    """Base of these pages: merchant-scoped, shown in the merchant's time zone."""


def _validation_messages(error: ValidationError) -> str:
    return " ".join(error.messages)


def _add_service_errors(form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form: on its field where the form has one."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            target = field if field in form.fields else None
            for item in errors:
                form.add_error(target, item)
    else:
        form.add_error(None, error)


# --- coupon types --------------------------------------------------------------------------------


class CouponTypeListView(PageMixin, ListView):
    template_name = "campaigns/coupons/list.html"
    context_object_name = "coupon_types"

    def get_queryset(self):
        return (
            self.scoped(CouponType)
            .annotate(campaign_count=Count("campaigns"))
            .order_by("-active", "code")
        )


class CouponTypeFormView(PageMixin, FormView):
    """Create (no ``coupon_type_id``) or edit a coupon type."""

    template_name = "campaigns/coupons/form.html"
    form_class = CouponTypeForm
    coupon: CouponType | None = None

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        coupon_id = self.kwargs.get("coupon_type_id")
        if coupon_id is not None:
            self.coupon = get_object_or_404(self.scoped(CouponType), pk=coupon_id)
            kwargs["instance"] = self.coupon
        return kwargs

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["coupon"] = self.coupon
        return context

    def form_valid(self, form: CouponTypeForm) -> HttpResponse:
        fields = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            if self.coupon is None:
                coupon = services.coupon_type_create(
                    merchant=self.merchant, actor=self.request.user, **fields
                )
                messages.success(
                    self.request, _("Coupon type %(code)s created.") % {"code": coupon.code}
                )
            else:
                fields.pop("code")
                coupon = services.coupon_type_update(
                    coupon=CouponType.objects.get(pk=self.coupon.pk),
                    actor=self.request.user,
                    **fields,
                )
                messages.success(
                    self.request, _("Coupon type %(code)s saved.") % {"code": coupon.code}
                )
        except ValidationError as error:
            _add_service_errors(form, error)
            return self.form_invalid(form)
        return redirect("promo:coupons", merchant=self.merchant.slug)


class CouponTypeArchiveView(PageMixin, View):
    """Archive (``active`` = False: no new campaign may offer it) or restore a coupon type.
    Coupon types are never deleted: treatment logs, models and assignments refer to them."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, coupon_type_id: int) -> HttpResponse:
        coupon = get_object_or_404(self.scoped(CouponType), pk=coupon_type_id)
        restore = request.POST.get("restore") == "1"
        services.coupon_type_update(coupon=coupon, actor=request.user, active=restore)
        if restore:
            messages.success(request, _("Coupon type %(code)s restored.") % {"code": coupon.code})
        else:
            messages.success(
                request,
                _("Coupon type %(code)s archived: new campaigns cannot offer it.")
                % {"code": coupon.code},
            )
        return redirect("promo:coupons", merchant=self.merchant.slug)


# --- campaigns -----------------------------------------------------------------------------------


class CampaignListView(PageMixin, ListView):
    template_name = "campaigns/campaigns/list.html"
    context_object_name = "campaigns"
    paginate_by = 25

    def get_queryset(self):
        return (
            selectors.merchant_campaigns(merchant=self.merchant)
            .annotate(strategy_count=Count("strategies", distinct=True))
            .order_by("-created_at", "-id")
        )


class CampaignFormView(PageMixin, FormView):
    """The campaign builder: create (no ``campaign_id``) or edit a campaign."""

    template_name = "campaigns/campaigns/form.html"
    form_class = CampaignForm
    campaign: Campaign | None = None

    def _campaign(self) -> Campaign | None:
        campaign_id = self.kwargs.get("campaign_id")
        if campaign_id is not None and self.campaign is None:
            self.campaign = get_object_or_404(
                selectors.merchant_campaigns(merchant=self.merchant), pk=campaign_id
            )
        return self.campaign

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        campaign = self._campaign()
        coupons = list(self.scoped(CouponType).order_by("code"))
        offered = {c.pk for c in campaign.coupon_types.all()} if campaign else set()
        # Archived coupon types stay listed where the campaign offers them already.
        kwargs["coupon_types"] = [c for c in coupons if c.active or c.pk in offered]
        return kwargs

    def get_initial(self) -> dict[str, Any]:
        campaign = self._campaign()
        if campaign is not None:
            return CampaignForm.initial_for(campaign)
        start = timezone.localtime().replace(minute=0, second=0, microsecond=0)
        start += timedelta(days=1)
        return {
            "starts_at": start,
            "ends_at": start + timedelta(days=14),
            "average_order_value": selectors.merchant_average_order_value(merchant=self.merchant),
        }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["campaign"] = self.campaign
        return context

    def form_valid(self, form: CampaignForm) -> HttpResponse:
        fields = form.service_fields()
        try:
            if self.campaign is None:
                campaign = services.campaign_create(
                    merchant=self.merchant, actor=self.request.user, **fields
                )
                messages.success(self.request, _("Campaign created: propose a strategy next."))
            else:
                campaign = services.campaign_update(
                    campaign=self.campaign, actor=self.request.user, **fields
                )
                messages.success(self.request, _("Campaign saved."))
        except ValidationError as error:
            _add_service_errors(form, error)
            return self.form_invalid(form)
        return redirect("promo:campaign", merchant=self.merchant.slug, campaign_id=campaign.pk)


class CampaignDetailView(PageMixin, DetailView):
    template_name = "campaigns/campaigns/detail.html"
    context_object_name = "campaign"
    pk_url_kwarg = "campaign_id"

    def get_queryset(self):
        return selectors.merchant_campaigns(merchant=self.merchant)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        campaign = self.object
        strategies = list(
            selectors.merchant_strategies(merchant=self.merchant).filter(campaign=campaign)[:25]
        )
        context["strategies"] = strategies
        context["deletable"] = services.campaign_is_deletable(campaign)
        context["propose_form"] = ProposeForm(initial={"budget": campaign.budget})
        context["audience"] = _audience_rows(campaign.audience or {})
        return context


def _audience_rows(audience: dict) -> list[tuple[str, str]]:
    rows = []
    if audience.get("lifecycle"):
        labels = [lifecycle_label(key) for key in audience["lifecycle"]]
        rows.append((_("Lifecycle segments"), pgettext("list separator", ", ").join(labels)))
    for key, label in (("min_uplift", _("Minimum uplift")), ("max_uplift", _("Maximum uplift"))):
        if key in audience:
            points = f"{audience[key] * 100:g}"
            rows.append((label, _("%(points)s pp") % {"points": points}))
    for name, wanted in (audience.get("attributes") or {}).items():
        rows.append((_("Attribute %(name)s") % {"name": name}, str(wanted)))
    return rows


class CampaignDeleteView(PageMixin, View):
    """Delete a campaign whose coupons never went out (services.campaign_is_deletable)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, campaign_id: int) -> HttpResponse:
        campaign = get_object_or_404(self.scoped(Campaign), pk=campaign_id)
        try:
            services.campaign_delete(campaign=campaign, actor=request.user)
        except ValidationError as error:
            messages.error(request, _validation_messages(error))
            return redirect("promo:campaign", merchant=self.merchant.slug, campaign_id=campaign.pk)
        messages.success(request, _("Campaign %(name)s deleted.") % {"name": campaign.name})
        return redirect("promo:campaigns", merchant=self.merchant.slug)


class CampaignProposeView(PageMixin, View):
    """Queue a proposal for a budget; the job page follows its progress to the strategy."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, campaign_id: int) -> HttpResponse:
        campaign = get_object_or_404(self.scoped(Campaign), pk=campaign_id)
        back = request.POST.get("next") or ""
        form = ProposeForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return self._back(back, campaign)
        try:
            job = strategy_propose(
                campaign=campaign, actor=request.user, budget=form.cleaned_data["budget"]
            )
        except ValidationError as error:
            messages.error(request, _validation_messages(error))
            return self._back(back, campaign)
        return redirect(
            "promo:campaign-job",
            merchant=self.merchant.slug,
            campaign_id=campaign.pk,
            job_id=job.pk,
        )

    def _back(self, back: str, campaign: Campaign) -> HttpResponse:
        prefix = f"/m/{self.merchant.slug}/"
        if back.startswith(prefix):  # only a page of this merchant
            return redirect(back)
        return redirect("promo:campaign", merchant=self.merchant.slug, campaign_id=campaign.pk)


class CampaignJobView(PageMixin, TemplateView):
    """A propose or apply job's live progress; once it has succeeded, its strategy's page."""

    template_name = "campaigns/campaigns/job.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.campaign = get_object_or_404(self.scoped(Campaign), pk=kwargs["campaign_id"])
        self.job = get_object_or_404(merchant_jobs(merchant=self.merchant), pk=kwargs["job_id"])
        strategy_id = (self.job.result or {}).get("strategy_id")
        if self.job.status == JobStatus.SUCCEEDED and strategy_id:
            strategy = self.scoped(Strategy).filter(pk=strategy_id, campaign=self.campaign).first()
            if strategy is not None:
                return redirect(
                    "promo:strategy", merchant=self.merchant.slug, strategy_id=strategy.pk
                )
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(campaign=self.campaign, job=self.job)
        return context


# --- strategies ----------------------------------------------------------------------------------


def _strategy_queryset(view: MerchantViewMixin):
    return selectors.merchant_strategies(merchant=view.merchant)


class StrategyDetailView(PageMixin, DetailView):
    """The efficient frontier, the allocation, the expected numbers; propose, apply, roll back."""

    template_name = "campaigns/strategies/detail.html"
    context_object_name = "strategy"
    pk_url_kwarg = "strategy_id"

    def get_queryset(self):
        # The realized results (campaigns/results.py) come with the strategy, in one query.
        return _strategy_queryset(self).select_related("realized_result")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        strategy: Strategy = self.object
        campaign = strategy.campaign
        currency = self.merchant.currency
        allocation = strategy_allocation(strategy)
        now = timezone.now()
        context.update(
            campaign=campaign,
            allocation=allocation,
            segment_rows=strategy_segment_rows(strategy),
            frontier_chart=frontier_figure(strategy, currency=currency),
            allocation_chart=allocation_figure(strategy),
            applicable=strategy_is_applicable(strategy),
            can_roll_back=strategy.status == StrategyStatus.APPLIED and now < campaign.starts_at,
            has_assignments=strategy.status == StrategyStatus.APPLIED,
            propose_form=ProposeForm(initial={"budget": strategy.budget}),
            **realized_context(strategy_results(strategy=strategy), currency=currency),
            latest_id=self.scoped(Strategy)
            .filter(campaign=campaign)
            .order_by("-proposed_at", "-id")
            .values_list("pk", flat=True)
            .first(),
        )
        return context


def strategy_allocation(strategy: Strategy) -> dict[str, Any]:
    """Customers per arm and kind (from ``counts``), for the table and the apply confirmation."""
    counts = strategy.counts or {}
    rows = []
    for arm in strategy.arms or []:
        treatment = int(counts.get(AssignmentKind.TREATMENT, {}).get(arm, 0))
        exploration = int(counts.get(AssignmentKind.EXPLORATION, {}).get(arm, 0))
        holdout = int(counts.get(AssignmentKind.HOLDOUT, {}).get(arm, 0))
        rows.append(
            {
                "arm": arm,
                "is_coupon": arm != CONTROL_ARM,
                "treatment": treatment,
                "exploration": exploration,
                "holdout": holdout,
                "total": treatment + exploration + holdout,
            }
        )
    coupons = [row for row in rows if row["is_coupon"]]
    no_coupon = next((row for row in rows if not row["is_coupon"]), None)
    return {
        "rows": rows,
        "coupons": coupons,
        "coupon_customers": sum(row["total"] for row in coupons),
        "model_no_coupon": no_coupon["treatment"] if no_coupon else 0,
        "explore_no_coupon": no_coupon["exploration"] if no_coupon else 0,
        "total": sum(row["total"] for row in rows),
    }


def strategy_segment_rows(strategy: Strategy) -> list[dict[str, Any]]:
    rows = []
    for row in (strategy.segments or {}).get("lifecycle", []):
        arms = row.get("arms", {})
        rows.append(
            {
                **row,
                "label": lifecycle_label(row.get("segment", "")),
                "per_arm": [int(arms.get(arm, 0)) for arm in strategy.arms or []],
            }
        )
    return rows


def _finite_points(xs: list, ys: list) -> tuple[list, list]:
    points = [
        (x, y)
        for x, y in zip(xs, ys, strict=False)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    return [p[0] for p in points], [p[1] for p in points]


def frontier_figure(strategy: Strategy, *, currency: str) -> dict | None:
    """Expected incremental profit against expected coupon spend: the model's frontier beside
    the baselines (best single coupon for everyone, random targeting), the chosen budget marked."""
    curves = (strategy.frontier or {}).get("curves") or {}
    if not curves.get("model"):
        return None
    names = {
        "model": _("Uplift model"),
        "best_single_coupon": _("Best single coupon"),
        "random": _("Random targeting"),
    }
    dashes = {"model": "solid", "best_single_coupon": "dash", "random": "dot"}
    traces = []
    for index, key in enumerate(("model", "best_single_coupon", "random")):
        curve = curves.get(key)
        if not curve:
            continue
        xs, ys = _finite_points(curve.get("spend", []), curve.get("profit", []))
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": names[key],
                "x": xs,
                "y": ys,
                "line": {"color": palette_colour(index), "dash": dashes[key]},
                "hovertemplate": f"%{{x:,.2f}} {currency} → %{{y:,.2f}} {currency}"
                "<extra>%{fullData.name}</extra>",
            }
        )
    summary = strategy.summary or {}
    chosen_spend = summary.get("model_cost")
    if chosen_spend is None:
        chosen_spend = strategy.expected_cost
    chosen_profit = strategy.expected_profit
    model = curves["model"]
    xs, ys = _finite_points(model.get("spend", []), model.get("profit", []))
    if xs:
        # The frontier covers the customers the model decides for (exploration aside).
        chosen_profit = _interpolate(chosen_spend, xs, ys)
    traces.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": _("Chosen budget"),
            "x": [chosen_spend],
            "y": [chosen_profit],
            "marker": {
                "color": palette_colour(3),
                "size": 14,
                "symbol": "diamond",
                "line": {"color": "#000000", "width": 1},
            },
            "hovertemplate": _("Chosen budget") + f": %{{x:,.2f}} {currency}<extra></extra>",
        }
    )
    layout = figure_layout(
        title=_("Efficient frontier: expected incremental profit by coupon spend"),
        x_title=_("Expected coupon spend (%(currency)s)") % {"currency": currency},
        y_title=_("Expected incremental profit (%(currency)s)") % {"currency": currency},
    )
    budget_x = summary.get("model_budget")
    if budget_x is not None:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": budget_x,
                "x1": budget_x,
                "y0": 0,
                "y1": 1,
                "line": {"color": GREY, "dash": "dash", "width": 1},
            }
        ]
        layout["annotations"] = [
            {
                "x": budget_x,
                "y": 1,
                "xref": "x",
                "yref": "paper",
                "text": _("budget"),
                "showarrow": False,
                "yanchor": "bottom",
            }
        ]
    return {"data": traces, "layout": layout}


def _interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    pairs = sorted(zip(xs, ys, strict=True))
    if x <= pairs[0][0]:
        return pairs[0][1]
    for (x0, y0), (x1, y1) in pairwise(pairs):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pairs[-1][1]


def allocation_figure(strategy: Strategy) -> dict | None:
    """Customers per lifecycle segment, stacked by arm (the model's choice and exploration)."""
    rows = (strategy.segments or {}).get("lifecycle") or []
    if not rows:
        return None
    segments = [lifecycle_label(row["segment"]) for row in rows]
    traces = []
    for index, arm in enumerate(strategy.arms or []):
        is_coupon = arm != CONTROL_ARM
        traces.append(
            {
                "type": "bar",
                "name": arm if is_coupon else _("No coupon (incl. holdout)"),
                "x": segments,
                "y": [int(row.get("arms", {}).get(arm, 0)) for row in rows],
                "marker": {"color": palette_colour(index - 1) if is_coupon else GREY},
            }
        )
    layout = figure_layout(
        title=_("Allocation by lifecycle segment"),
        x_title=_("Lifecycle segment"),
        y_title=_("Customers (count)"),
        barmode="stack",
    )
    return {"data": traces, "layout": layout}


class StrategyApplyView(PageMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, strategy_id: int) -> HttpResponse:
        strategy = get_object_or_404(self.scoped(Strategy), pk=strategy_id)
        try:
            job = strategy_apply_enqueue(strategy=strategy, actor=request.user)
        except ValidationError as error:
            messages.error(request, _validation_messages(error))
            return redirect("promo:strategy", merchant=self.merchant.slug, strategy_id=strategy.pk)
        if job is None:
            messages.info(request, _("This strategy is applied already."))
            return redirect("promo:strategy", merchant=self.merchant.slug, strategy_id=strategy.pk)
        return redirect(
            "promo:campaign-job",
            merchant=self.merchant.slug,
            campaign_id=strategy.campaign_id,
            job_id=job.pk,
        )


class StrategyRollbackView(PageMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, merchant: str, strategy_id: int) -> HttpResponse:
        strategy = get_object_or_404(self.scoped(Strategy), pk=strategy_id)
        try:
            strategy_rollback(strategy=strategy, actor=request.user)
        except ValidationError as error:
            messages.error(request, _validation_messages(error))
        else:
            messages.success(
                request, _("Strategy rolled back: its coupon codes and assignments are deleted.")
            )
        return redirect("promo:strategy", merchant=self.merchant.slug, strategy_id=strategy.pk)


class StrategyAssignmentsExportView(PageMixin, View):
    """The strategy's assignments as a streamed CSV (the API export's rows and header)."""

    def get(self, request: HttpRequest, merchant: str, strategy_id: int) -> HttpResponse:
        strategy = get_object_or_404(self.scoped(Strategy), pk=strategy_id)
        queryset = selectors.merchant_assignments(merchant=self.merchant, strategy=strategy.pk)
        return csv_response(
            filename=f"assignments-{self.merchant.slug}-strategy-{strategy.pk}.csv",
            header=EXPORT_HEADER,
            rows=assignment_export_rows(queryset),
        )
