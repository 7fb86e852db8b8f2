"""Coupon type, campaign and strategy pages, mounted under /m/<merchant>/ (namespace "promo")."""

from __future__ import annotations

from django.urls import path

from . import campaign_views as views

app_name = "promo"

urlpatterns = [
    path("coupons/", views.CouponTypeListView.as_view(), name="coupons"),
    path("coupons/new/", views.CouponTypeFormView.as_view(), name="coupon-create"),
    path(
        "coupons/<int:coupon_type_id>/edit/",
        views.CouponTypeFormView.as_view(),
        name="coupon-edit",
    ),
    path(
        "coupons/<int:coupon_type_id>/archive/",
        views.CouponTypeArchiveView.as_view(),
        name="coupon-archive",
    ),
    path("campaigns/", views.CampaignListView.as_view(), name="campaigns"),
    path("campaigns/new/", views.CampaignFormView.as_view(), name="campaign-create"),
    path("campaigns/<int:campaign_id>/", views.CampaignDetailView.as_view(), name="campaign"),
    path(
        "campaigns/<int:campaign_id>/edit/",
        views.CampaignFormView.as_view(),
        name="campaign-edit",
    ),
    path(
        "campaigns/<int:campaign_id>/delete/",
        views.CampaignDeleteView.as_view(),
        name="campaign-delete",
    ),
    path(
        "campaigns/<int:campaign_id>/propose/",
        views.CampaignProposeView.as_view(),
        name="campaign-propose",
    ),
    path(
        "campaigns/<int:campaign_id>/jobs/<int:job_id>/",
        views.CampaignJobView.as_view(),
        name="campaign-job",
    ),
    path("strategies/<int:strategy_id>/", views.StrategyDetailView.as_view(), name="strategy"),
    path(
        "strategies/<int:strategy_id>/apply/",
        views.StrategyApplyView.as_view(),
        name="strategy-apply",
    ),
    path(
        "strategies/<int:strategy_id>/rollback/",
        views.StrategyRollbackView.as_view(),
        name="strategy-rollback",
    ),
    path(
        "strategies/<int:strategy_id>/assignments.csv",
        views.StrategyAssignmentsExportView.as_view(),
        name="strategy-assignments",
    ),
]
