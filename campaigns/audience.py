"""A campaign's audience filter: which of the merchant's customers are eligible.

Stored as a small JSON object on the campaign; every key is optional and they combine with AND
(an empty object means every scored customer)::

    {
      "lifecycle": ["active", "lapsing"],   # lifecycle segments to include
      "min_uplift": 0.01,                   # predicted conversion uplift of the best offered
      "max_uplift": 0.5,                    #   coupon against no coupon, between -1 and 1
      "attributes": {                       # customer attribute equals the value,
        "member_level": ["gold", "silver"], #   or one of the listed values
        "city_tier": 1
      }
    }

Lifecycle segments are the ML core's (``modeling.segments.LIFECYCLE_SEGMENTS``); the uplift is
read from the model version the strategy is proposed from; attributes are the customer
attributes imported with the customers (compared with their stored type: 1 is not "1").
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from modeling.segments import LIFECYCLE_SEGMENTS

AUDIENCE_KEYS = ("lifecycle", "min_uplift", "max_uplift", "attributes")
MAX_ATTRIBUTE_VALUES = 200


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_audience(value: Any) -> None:
    """Raise ValidationError naming each problem; the audience layout is in the module doc."""
    if not isinstance(value, dict):
        raise ValidationError(_("The audience must be a JSON object."))
    problems: list[str] = []
    unknown = sorted(set(value) - set(AUDIENCE_KEYS))
    if unknown:
        problems.append(
            _("Unknown audience keys: %(keys)s (use %(known)s).")
            % {"keys": ", ".join(unknown), "known": ", ".join(AUDIENCE_KEYS)}
        )
    if "lifecycle" in value:
        segments = value["lifecycle"]
        known = LIFECYCLE_SEGMENTS
        if (
            not isinstance(segments, list)
            or not segments
            or not all(isinstance(s, str) for s in segments)
        ):
            problems.append(_("lifecycle must be a non-empty list of segment names."))
        else:
            bad = sorted(set(segments) - set(known))
            if bad:
                problems.append(
                    _("Unknown lifecycle segments: %(bad)s (use %(known)s).")
                    % {"bad": ", ".join(bad), "known": ", ".join(known)}
                )
    bounds = {}
    for key in ("min_uplift", "max_uplift"):
        if key in value:
            bound = value[key]
            if not _is_number(bound) or not -1 <= bound <= 1:
                problems.append(_("%(key)s must be a number from -1 to 1.") % {"key": key})
            else:
                bounds[key] = bound
    if len(bounds) == 2 and bounds["min_uplift"] > bounds["max_uplift"]:
        problems.append(_("min_uplift must not exceed max_uplift."))
    if "attributes" in value:
        attributes = value["attributes"]
        if not isinstance(attributes, dict) or not attributes:
            problems.append(_("attributes must be a non-empty object of name -> value(s)."))
        else:
            for name, wanted in attributes.items():
                values = wanted if isinstance(wanted, list) else [wanted]
                if (
                    not name
                    or not values
                    or len(values) > MAX_ATTRIBUTE_VALUES
                    or not all(_is_scalar(v) for v in values)
                ):
                    problems.append(
                        _(
                            "Attribute %(name)s: give a text, number or true/false, or a list "
                            "of up to %(n)d of them."
                        )
                        % {"name": name or "''", "n": MAX_ATTRIBUTE_VALUES}
                    )
    if problems:
        raise ValidationError(problems)


def audience_attribute_values(audience: dict) -> dict[str, list]:
    """The attribute filter as name -> accepted values (always a list)."""
    return {
        name: wanted if isinstance(wanted, list) else [wanted]
        for name, wanted in (audience.get("attributes") or {}).items()
    }
