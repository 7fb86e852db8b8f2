"""Shared pieces of the campaigns app's management commands."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import translation


class SiteLanguageMixin:
    """Runs the command in ``settings.LANGUAGE_CODE``, as a fresh ``manage.py`` process does,
    whatever language the process that calls it (``call_command``) has active: what it stores
    (import messages and problems) and the jobs it queues speak the site's language."""

    def execute(self, *args: Any, **options: Any) -> Any:
        with translation.override(settings.LANGUAGE_CODE):
            return super().execute(*args, **options)  # type: ignore[misc]
