from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Merchants and campaigns")

    def ready(self) -> None:
        # Imported for their side effects: the tenancy system check, and the sign-in receiver
        # that remembers the user's language.
        from . import checks, preferences  # noqa: F401
