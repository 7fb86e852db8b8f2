"""Top-level URLs. Merchant pages live under /m/<merchant>/, the API under /api/v1/."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from campaigns import views as campaign_views
from campaigns.preference_views import LanguagePreferenceView
from campaigns.tenancy import tenant_exempt

admin.site.site_header = _("Promo Portal administration")
admin.site.site_title = _("Promo Portal admin")

_auth = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("token/", campaign_views.ApiTokenView.as_view(), name="api_token"),
    path("language/", LanguagePreferenceView.as_view(), name="language"),
]
# Sign-in, sign-out, password, token and language pages concern the user, not a merchant.
for _pattern in _auth:
    tenant_exempt(_pattern.callback)

urlpatterns = [
    path("", campaign_views.HomeRedirectView.as_view(), name="home"),
    path("healthz/", campaign_views.HealthView.as_view(), name="health"),
    path("accounts/", include(_auth)),
    path("m/<slug:merchant>/", include("campaigns.urls")),
    path("m/<slug:merchant>/data/", include("campaigns.data_urls")),
    path("m/<slug:merchant>/", include("modeling.urls")),
    path("m/<slug:merchant>/", include("campaigns.campaign_urls")),
    path("api/v1/", include("promo_portal.api_urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
