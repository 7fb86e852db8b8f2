"""Template filters of the portal pages: ``{% load portal %}``.

``{{ amount|money:merchant.currency }}`` shows an amount in the merchant's currency, with the
active language's separators; ``{{ share|percent }}`` shows a share (0.1) as a percentage.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.utils.formats import number_format

register = template.Library()

# Currencies whose amounts have no minor unit in everyday use (ISO 4217 exponent 0).
NO_DECIMALS = {"JPY", "KRW", "TWD"}


@register.filter
def money(value, currency: str = "") -> str:
    """``CNY 1,234.56``; an empty string for a missing value."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    places = 0 if currency in NO_DECIMALS else 2
    text = number_format(amount, places, force_grouping=True)
    return f"{currency} {text}".strip()


@register.filter
def percent(value, places: int = 1) -> str:
    """0.1 -> ``10.0%``; an empty string for a missing value."""
    if value is None or value == "":
        return ""
    return f"{number_format(float(value) * 100, int(places))}%"
