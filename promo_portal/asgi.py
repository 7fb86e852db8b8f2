"""ASGI entry point. Production sets DJANGO_SETTINGS_MODULE."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_portal.settings.local")
application = get_asgi_application()
