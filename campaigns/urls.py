"""Merchant pages, mounted under /m/<merchant>/."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "campaigns"

urlpatterns = [
    path("", views.MerchantHomeView.as_view(), name="home"),
    path("members/", views.MembersView.as_view(), name="members"),
    path("members/<int:member_id>/role/", views.MemberRoleView.as_view(), name="member-role"),
    path("members/<int:member_id>/remove/", views.MemberRemoveView.as_view(), name="member-remove"),
    path("settings/", views.MerchantSettingsView.as_view(), name="settings"),
]
