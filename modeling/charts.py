"""Plotly figures (data and layout as plain dicts) for the model and segments pages.

The pages put each figure in a ``json_script`` element and ``static/js/charts.js`` draws it with
the locally served Plotly. Colours are Okabe-Ito (``campaigns.charts.PALETTE``: distinguishable
with the common colour-vision deficiencies); titles and axes carry their units.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.charts import BLACK, PALETTE

REFERENCE = BLACK  # random line, perfect ranking, diagonal, best-epoch marker

# The model and the baselines of ``training_service._evaluate``, in the order they are shown.
METHOD_LABELS = {
    "lstm": gettext_lazy("LSTM uplift model"),
    "static_network": gettext_lazy("Same network, no sequence"),
    "t_learner": gettext_lazy("T-learner (gradient boosting)"),
    "best_single_coupon": gettext_lazy("Best single coupon for all"),
    "response_model": gettext_lazy("Response model (likeliest buyers)"),
    "random": gettext_lazy("Random targeting"),
}


def _methods(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The model and its baselines in the order of METHOD_LABELS (PostgreSQL's jsonb keeps
    keys sorted, not in the order they were written)."""
    found = {"lstm": evaluation, **(evaluation.get("baselines") or {})}
    order = [name for name in METHOD_LABELS if name in found]
    return {name: found[name] for name in order + sorted(set(found) - set(order))}


def _arms(evaluation: dict[str, Any]) -> list[tuple[str, Any]]:
    """Coupon arms in code order, as ``ModelVersion.arms`` lists them (whatever the database
    did to the key order)."""
    return sorted((evaluation.get("arms") or {}).items())


def method_label(name: str) -> str:
    return str(METHOD_LABELS.get(name, name))


def _layout(title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    layout = {
        "title": {"text": title},
        "xaxis": {"title": {"text": x_title}, "automargin": True},
        "yaxis": {"title": {"text": y_title}, "automargin": True},
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 60, "r": 20, "b": 40, "l": 60},
        "height": 420,
        "colorway": list(PALETTE),
    }
    layout.update(extra)
    return layout


def training_figures(curves: dict[str, Any]) -> list[dict[str, Any]]:
    """Loss per epoch of the encoder pretraining, of the uplift training and of the fine-tuning
    of the coupon effects (train and validation), each its own chart: the losses are of
    different tasks and scales."""
    figures = []
    parts = (
        ("pretraining", _("Encoder pretraining loss per epoch"), None),
        ("epochs", _("Uplift training loss per epoch"), curves.get("best_epoch")),
        (
            "fine_tuning",
            _("Coupon-effect fine-tuning loss per epoch"),
            curves.get("fine_tuning_best_epoch"),
        ),
    )
    for key, title, best_epoch in parts:
        rows = curves.get(key) or []
        if not rows:
            continue
        epochs = [row.get("epoch") for row in rows]
        traces = []
        for name, label, colour, dash in (
            ("loss", _("training"), PALETTE[0], "solid"),
            ("val_loss", _("validation"), PALETTE[1], "dash"),
        ):
            if any(name in row for row in rows):
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "lines+markers",
                        "name": label,
                        "x": epochs,
                        "y": [row.get(name) for row in rows],
                        "line": {"color": colour, "dash": dash},
                    }
                )
        layout = _layout(title, _("Epoch"), _("Loss (cross-entropy, lower is better)"))
        layout["height"] = 320
        if best_epoch:
            layout["shapes"] = [
                {
                    "type": "line",
                    "x0": best_epoch,
                    "x1": best_epoch,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": REFERENCE, "dash": "dot", "width": 1},
                }
            ]
            layout["annotations"] = [
                {
                    "x": best_epoch,
                    "yref": "paper",
                    "y": 1,
                    "text": _("best epoch (kept)"),
                    "showarrow": False,
                    "yanchor": "bottom",
                }
            ]
        figures.append(
            {
                "key": key,
                "json_id": f"training-{key}-data",
                "figure": {"data": traces, "layout": layout},
            }
        )
    return figures


def _percent(values: list[float | None]) -> list[float | None]:
    return [None if v is None else 100.0 * v for v in values]


def qini_figures(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """Per coupon: the Qini curves of the model and every baseline on one chart, with the
    random line and (hidden until clicked in the legend) the perfect ranking."""
    methods = _methods(evaluation)
    figures = []
    for arm, entry in _arms(evaluation):
        traces = []
        for position, (name, report) in enumerate(methods.items()):
            curve = ((report.get("arms") or {}).get(arm) or {}).get("qini_curve")
            if not curve:
                continue
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": method_label(name),
                    "x": _percent(curve["share"]),
                    "y": _percent(curve["qini"]),
                    "line": {
                        "color": PALETTE[position % len(PALETTE)],
                        "width": 3 if name == "lstm" else 1.5,
                    },
                    "hovertemplate": "%{x:.0f}%: %{y:.2f}<extra>%{fullData.name}</extra>",
                }
            )
        curve = entry.get("qini_curve") or {}
        if curve:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": _("Random (no targeting)"),
                    "x": _percent(curve["share"]),
                    "y": _percent(curve["random"]),
                    "line": {"color": REFERENCE, "dash": "dot", "width": 1},
                }
            )
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": _("Perfect ranking"),
                    "x": _percent(curve["share"]),
                    "y": _percent(curve["perfect"]),
                    "line": {"color": REFERENCE, "dash": "dashdot", "width": 1},
                    "visible": "legendonly",
                }
            )
        layout = _layout(
            _("Qini curve: coupon %(arm)s against no coupon") % {"arm": arm},
            _("Customers targeted, best predicted uplift first (%)"),
            _("Incremental conversions per 100 customers"),
        )
        layout["height"] = 460
        figures.append(
            {
                "arm": arm,
                "json_id": f"qini-{len(figures)}-data",
                "figure": {"data": traces, "layout": layout},
            }
        )
    return figures


def calibration_figure(evaluation: dict[str, Any]) -> dict[str, Any] | None:
    """Mean predicted against observed conversion per decile of the prediction, for all
    held-out rows (the arm each received) and per coupon, beside the diagonal."""
    overall = evaluation.get("calibration") or {}
    if not overall.get("mean_predicted"):
        return None
    series = [(_("All held-out customers (arm received)"), overall)]
    series += [
        (_("Coupon %(arm)s") % {"arm": arm}, entry.get("calibration") or {})
        for arm, entry in _arms(evaluation)
    ]
    traces = []
    top = 0.0
    hover = _("predicted %{x:.1f}%, observed %{y:.1f}% (%{customdata} customers)")
    for position, (label, data) in enumerate(series):
        if not data.get("mean_predicted"):
            continue
        x, y = _percent(data["mean_predicted"]), _percent(data["observed"])
        top = max([top, *(v for v in x + y if v is not None)])
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": label,
                "x": x,
                "y": y,
                "customdata": data.get("count"),
                "line": {
                    "color": PALETTE[position % len(PALETTE)],
                    "width": 3 if position == 0 else 1.5,
                },
                "hovertemplate": hover + "<extra>%{fullData.name}</extra>",
            }
        )
    traces.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": _("Perfect calibration"),
            "x": [0, top],
            "y": [0, top],
            "line": {"color": REFERENCE, "dash": "dot", "width": 1},
            "hoverinfo": "skip",
        }
    )
    return {
        "data": traces,
        "layout": _layout(
            _("Calibration: predicted vs observed conversion, by decile of the prediction"),
            _("Mean predicted conversion (%)"),
            _("Observed conversion (%)"),
        ),
    }


def segment_uplift_figure(
    *, title: str, labels: list[str], segments: list[dict[str, Any]], coupons: list[str]
) -> dict[str, Any] | None:
    """Mean predicted conversion uplift per segment and coupon (percentage points) with the
    95 % intervals as error bars."""
    if not segments or not coupons:
        return None
    traces = []
    # Plotly's placeholders, not Python's: %{y} is the uplift in percentage points.
    hover = _("%{x}: %{y:+.2f} pp") + "<extra>%{fullData.name}</extra>"
    for position, coupon in enumerate(coupons):
        means, plus, minus = [], [], []
        for segment in segments:
            entry = (segment.get("uplift") or {}).get(coupon)
            if entry is None:
                means.append(None)
                plus.append(None)
                minus.append(None)
                continue
            mean = 100.0 * entry["mean"]
            means.append(mean)
            plus.append(None if entry["high"] is None else 100.0 * entry["high"] - mean)
            minus.append(None if entry["low"] is None else mean - 100.0 * entry["low"])
        traces.append(
            {
                "type": "bar",
                "name": coupon,
                "x": labels,
                "y": means,
                "marker": {"color": PALETTE[position % len(PALETTE)]},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": plus,
                    "arrayminus": minus,
                    "color": REFERENCE,
                },
                "hovertemplate": hover,
            }
        )
    layout = _layout(
        title,
        _("Segment"),
        _("Mean predicted conversion uplift (percentage points)"),
        barmode="group",
    )
    layout["legend"]["title"] = {"text": _("Coupon")}
    return {"data": traces, "layout": layout}


# --- tables ------------------------------------------------------------------------------------


def _estimate_pct(estimate: dict[str, Any] | None) -> dict[str, float] | None:
    """A policy-value estimate (a share of customers) in percent, or None."""
    if not estimate or estimate.get("value") is None:
        return None
    return {
        key: (None if estimate.get(key) is None else 100.0 * estimate[key])
        for key in ("value", "low", "high")
    }


def _metric(
    metrics: dict[str, Any], intervals: dict[str, Any], key: str, scale: float = 1.0
) -> dict[str, float | None] | None:
    """A ranking metric with its bootstrap interval (``low``/``high`` None for versions
    evaluated before intervals were stored), scaled (100 for percentage points), or None."""
    value = metrics.get(key)
    if value is None:
        return None
    low, high = intervals.get(key) or (None, None)
    return {
        "value": scale * value,
        "low": None if low is None else scale * low,
        "high": None if high is None else scale * high,
    }


def evaluation_tables(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The held-out metrics of the model and every baseline, side by side: one summary row per
    method (policy values with their 95 % intervals, in percent) and, per coupon, one row per
    method with its ranking metrics and their 95 % bootstrap intervals (uplift at k in
    percentage points)."""
    methods = _methods(evaluation)
    summary = []
    for name, report in methods.items():
        policy = report.get("policy") or {}
        summary.append(
            {
                "name": name,
                "label": method_label(name),
                "is_model": name == "lstm",
                "mean_qini": report.get("mean_qini_coefficient"),
                "ipw": _estimate_pct(policy.get("ipw")),
                "dr": _estimate_pct(policy.get("dr")),
                "dr_lift": _estimate_pct(policy.get("dr_lift")),
            }
        )
    per_arm = []
    for arm, entry in _arms(evaluation):
        rows = []
        for name, report in methods.items():
            metrics = (report.get("arms") or {}).get(arm)
            if not metrics:
                continue
            intervals = metrics.get("intervals") or {}
            rows.append(
                {
                    "label": method_label(name),
                    "is_model": name == "lstm",
                    "qini": _metric(metrics, intervals, "qini_coefficient"),
                    "auuc": _metric(metrics, intervals, "auuc"),
                    "uplift_at": [
                        _metric(metrics, intervals, f"uplift_at_{k}", scale=100.0)
                        for k in (10, 20, 30)
                    ],
                }
            )
        per_arm.append(
            {
                "arm": arm,
                "n_treated": entry.get("n_treated"),
                "n_control": entry.get("n_control"),
                "rows": rows,
            }
        )
    return {"summary": summary, "per_arm": per_arm}
