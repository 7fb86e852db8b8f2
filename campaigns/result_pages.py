"""The strategy page's realized-results section: table rows and the chart, from the stored
results (``RealizedResult.data``, layout in campaigns/results.py). Formatting only: the
numbers are computed by campaigns/results.py and modeling/realized.py."""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from .charts import GREY, figure_layout, palette_colour
from .choices import lifecycle_label
from .models import RealizedResult
from .templatetags.portal import money


def _points(value: float | None, places: int = 2) -> str:
    """A difference of two rates in percentage points: ``+2.10 pp``."""
    if value is None:
        return "—"
    sign = "+" if value > 0 else ""
    return _("%(value)s pp") % {"value": sign + number_format(100.0 * value, places)}


def _amount(value: float | None, currency: str, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    text = money(value, currency)
    return f"+{text}" if signed and value > 0 else text


def _difference(
    entry: dict[str, Any] | None, render, *, predicted: float | None = None
) -> dict[str, Any] | None:
    """A difference with its interval, ready to show; None where there is no number."""
    if not entry:
        return None
    return {
        "value": render(entry["difference"]),
        "interval": f"[{render(entry['low'])}, {render(entry['high'])}]",
        "significant": bool(entry["significant"]),
        "predicted": None if predicted is None else render(predicted),
    }


def _row(label: str, entry: dict[str, Any], currency: str) -> dict[str, Any]:
    treated, control = entry["treated"], entry["control"]
    predicted = entry.get("predicted") or {}

    def signed_money(value):
        return _amount(value, currency, signed=True)

    return {
        "label": label,
        "enough": entry["enough"],
        "treated": treated,
        "control": control,
        "conversion": _difference(
            entry.get("conversion_rate"), _points, predicted=predicted.get("conversion_rate")
        ),
        "revenue": _difference(
            entry.get("revenue_per_customer"),
            signed_money,
            predicted=predicted.get("revenue_per_customer"),
        ),
        "profit": _difference(
            entry.get("profit_per_customer"),
            signed_money,
            predicted=predicted.get("profit_per_customer"),
        ),
        "predicted_conversion": _points(predicted.get("conversion_rate")),
        "predicted_profit": _amount(predicted.get("profit_per_customer"), currency, signed=True),
        "coupon_cost": _amount(entry.get("coupon_cost"), currency),
        "given": entry.get("given"),
        "given_cost": _amount((entry.get("given") or {}).get("coupon_cost"), currency),
    }


def _totals(overall: dict[str, Any], currency: str) -> list[dict[str, Any]]:
    """The strategy's totals, realized (with intervals where they have one) beside predicted.
    The coupon cost is what was spent, shown whatever the group sizes; the rest needs enough
    customers on both sides."""
    predicted = overall.get("predicted") or {}
    enough = overall["enough"]

    def whole(value):
        return "—" if value is None else number_format(value, 1, force_grouping=True)

    def amount(value):
        return _amount(value, currency)

    def share(value):
        return "—" if value is None else number_format(100.0 * value, 1) + "%"

    def plain(text: str) -> dict[str, Any]:
        return {"value": text, "interval": "", "significant": False}

    cards = [
        (
            _("Incremental conversions"),
            _difference(overall.get("incremental_conversions"), whole),
            whole(predicted.get("incremental_conversions")),
        ),
        (
            _("Incremental revenue"),
            _difference(overall.get("incremental_revenue"), amount),
            amount(predicted.get("incremental_revenue")),
        ),
        (
            _("Incremental profit"),
            _difference(overall.get("incremental_profit"), amount),
            amount(predicted.get("incremental_profit")),
        ),
        (
            _("ROI (profit / coupon cost)"),
            plain(share(overall.get("roi"))),
            share(predicted.get("roi")),
        ),
        (
            _("Cost per incremental conversion"),
            plain(amount(overall.get("cost_per_incremental_conversion"))),
            "—",
        ),
    ]
    spent = {
        "title": _("Coupon cost"),
        "realized": plain(amount(overall.get("coupon_cost"))),
        "predicted": amount(predicted.get("coupon_cost")),
    }
    return [spent] + [
        {"title": title, "realized": realized if enough else None, "predicted": expected}
        for title, realized, expected in cards
    ]


def realized_figure(data: dict[str, Any]) -> dict[str, Any] | None:
    """Conversion uplift (percentage points) per lifecycle segment and overall: realized with
    its 95 % interval as error bars, beside the model's prediction. Groups with too few
    customers are left out."""
    groups = [(_("All customers"), data["overall"])] + [
        (lifecycle_label(str(row["key"])), row)
        for row in (data.get("segments") or {}).get("lifecycle", [])
    ]
    groups = [(label, row) for label, row in groups if row.get("enough")]
    if not groups:
        return None
    labels = [label for label, _row in groups]
    realized, plus, minus, predicted = [], [], [], []
    for _label, row in groups:
        entry = row["conversion_rate"]
        value = 100.0 * entry["difference"]
        realized.append(value)
        plus.append(100.0 * entry["high"] - value)
        minus.append(value - 100.0 * entry["low"])
        expected = (row.get("predicted") or {}).get("conversion_rate")
        predicted.append(None if expected is None else 100.0 * expected)
    hover = _("%{x}: %{y:+.2f} pp") + "<extra>%{fullData.name}</extra>"
    traces = [
        {
            "type": "bar",
            # xgettext:no-python-format (a literal "%", not a placeholder)
            "name": _("Realized (95% interval)"),
            "x": labels,
            "y": realized,
            "marker": {"color": palette_colour(0)},
            "error_y": {
                "type": "data",
                "symmetric": False,
                "array": plus,
                "arrayminus": minus,
                "color": "#000000",
            },
            "hovertemplate": hover,
        },
        {
            "type": "bar",
            "name": _("Predicted by the model"),
            "x": labels,
            "y": predicted,
            "marker": {"color": GREY},
            "hovertemplate": hover,
        },
    ]
    layout = figure_layout(
        title=_("Conversion uplift against the holdout: realized and predicted"),
        x_title=_("Lifecycle segment"),
        y_title=_("Conversion uplift (percentage points)"),
        barmode="group",
    )
    return {"data": traces, "layout": layout}


def realized_context(result: RealizedResult | None, *, currency: str) -> dict[str, Any]:
    """The template's ``realized`` (None until outcomes are measured) and ``realized_chart``."""
    if result is None or not result.data or not result.orders:
        return {"realized": None, "realized_chart": None}
    data = result.data
    window = data.get("window") or {}
    segments = data.get("segments") or {}
    realized = {
        "orders": result.orders,
        "refreshed_at": result.refreshed_at,
        "customers": data.get("customers", 0),
        "redemptions": data.get("redemptions", 0),
        "min_customers": data.get("min_customers"),
        "window_days": window.get("days"),
        "window_closes": parse_datetime(window["closes"]) if window.get("closes") else None,
        "complete": bool(window.get("complete")),
        "overall": _row(_("All customers"), data["overall"], currency),
        "totals": _totals(data["overall"], currency),
        "coupons": [_row(entry["arm"], entry, currency) for entry in data.get("coupons", [])],
        "lifecycle": [
            _row(lifecycle_label(str(row["key"])), row, currency)
            for row in segments.get("lifecycle", [])
            if row["treated"]["customers"] or row["control"]["customers"]
        ],
        "deciles": [
            _row(str(row["key"]), row, currency)
            for row in segments.get("uplift_deciles", [])
            if row["treated"]["customers"] or row["control"]["customers"]
        ],
    }
    return {"realized": realized, "realized_chart": realized_figure(data)}
