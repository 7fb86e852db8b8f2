"""The user's own settings outside any merchant: the interface language (navbar switch)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.i18n import set_language

from .preferences import remember_language, user_preference_set_language


class LanguageForm(forms.Form):
    language = forms.ChoiceField(label=gettext_lazy("Language"), choices=settings.LANGUAGES)


def safe_next_url(request: HttpRequest) -> str:
    """Where to go back to: ``next`` (POST), else the referring page, when it is on this site;
    else the home page."""
    for candidate in (request.POST.get("next"), request.META.get("HTTP_REFERER")):
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
    return reverse("home")


class LanguagePreferenceView(View):
    """POST ``language`` (and ``next``): signed-in users keep it as their preference, on every
    device; anonymous visitors (the sign-in page) get Django's ``set_language`` cookie."""

    tenant_exempt = True  # the user's own setting, not merchant data
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated:
            return set_language(request)
        form = LanguageForm(request.POST)
        response = HttpResponseRedirect(safe_next_url(request))
        if not form.is_valid():
            messages.error(request, _("Choose one of the languages offered."))
            return response
        language = form.cleaned_data["language"]
        user_preference_set_language(user=request.user, language=language)
        remember_language(request, language)
        translation.activate(language)  # the confirmation below is in the new language
        messages.success(
            request,
            _("The interface is now in %(language)s.")
            % {"language": dict(settings.LANGUAGES)[language]},
        )
        # The cookie keeps the sign-in page in this language after signing out.
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            secure=settings.LANGUAGE_COOKIE_SECURE,
            httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
        return response
