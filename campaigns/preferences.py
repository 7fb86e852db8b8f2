"""Each user's interface language: stored in ``UserPreference``, activated on every request.

The preference is read from the database once, when the user signs in, and kept in the session
(:data:`SESSION_LANGUAGE`), so that a page costs no query for it. A user without a stored
preference sees what ``LocaleMiddleware`` negotiated (the language cookie, then the browser's
``Accept-Language``), as anonymous visitors do.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from .models import UserPreference

# The session holds the user's language, or "" for "no preference: negotiate".
SESSION_LANGUAGE = "user_language"


def supported_language(code: str | None) -> str | None:
    """``code`` when it is one of ``settings.LANGUAGES``, else None."""
    return code if code in {name for name, _label in settings.LANGUAGES} else None


def user_preferred_language(*, user) -> str | None:
    """The language the user chose, or None where they never chose one."""
    if not user.is_authenticated:
        return None
    language = UserPreference.objects.filter(user=user).values_list("language", flat=True).first()
    return supported_language(language)


@transaction.atomic
def user_preference_set_language(*, user, language: str) -> UserPreference:
    """Store the user's interface language (creating their preference row if missing)."""
    if supported_language(language) is None:
        raise ValueError(f"{language!r} is not one of settings.LANGUAGES")
    preference, _created = UserPreference.objects.update_or_create(
        user=user, defaults={"language": language}
    )
    return preference


def remember_language(request: HttpRequest, language: str | None) -> None:
    """Keep the language in the session so that the next requests need no query for it."""
    if hasattr(request, "session"):
        request.session[SESSION_LANGUAGE] = language or ""


@receiver(user_logged_in, dispatch_uid="campaigns.preferences.remember_on_login")
def _remember_on_login(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if request is not None:
        remember_language(request, user_preferred_language(user=user))


class UserLanguageMiddleware:
    """Activates the signed-in user's language over what ``LocaleMiddleware`` negotiated.

    Placed after ``AuthenticationMiddleware``; ``LocaleMiddleware`` (earlier) then sets the
    response's ``Content-Language`` from the language active here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = self._language(request)
        if language is not None:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()  # type: ignore[attr-defined]
        return self.get_response(request)

    @staticmethod
    def _language(request: HttpRequest) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        session = getattr(request, "session", None)
        if session is None:
            return user_preferred_language(user=user)
        if SESSION_LANGUAGE not in session:  # a session from before the preference existed
            remember_language(request, user_preferred_language(user=user))
        return supported_language(session.get(SESSION_LANGUAGE))
