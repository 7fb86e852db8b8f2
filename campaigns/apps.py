from __future__ import annotations

from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Merchants and campaigns"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the tenancy system check)
