from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ModelingConfig(AppConfig):
    name = "modeling"
    verbose_name = _("Modeling and jobs")
