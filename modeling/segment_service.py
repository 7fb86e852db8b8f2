"""Segment summary of a scored model version: what the segments page shows, computed once.

For each segment (the lifecycle stages of ``modeling.segments`` and the ten uplift deciles of
the version's own scores) over every scored customer: its size and share of the customers, its
traits (mean predicted conversion and order value without a coupon) and, per coupon, the mean
predicted conversion uplift ``P(convert | coupon) - P(convert | no coupon)`` and the mean
predicted incremental order value ``P(convert | coupon) x value(coupon) - P(convert | none) x
value(none)`` (in the merchant's currency), each with a 95 % interval.

What the interval means: the normal-approximation interval of the *mean over the segment's
customers* of the model's per-customer predictions (mean +- 1.96 sd / sqrt(n)). It says how
precisely the segment's average is pinned down given how much the predictions vary between its
customers; it does not include the model's own error, which only the held-out evaluation and,
later, the realized uplift against the holdout measure.

The uplift decile score is the predicted conversion uplift of the customer's best coupon
(10 = highest). Everything is vectorized over customers (``np.bincount`` per column), so a
million customers take well under a second; ``scoring_finish`` stores the result on the version
(``ModelVersion.segment_summary``) and pages read that one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modeling.models import ModelVersion
from modeling.scoring_service import ScoringError, model_version_scores
from modeling.segments import LIFECYCLE_SEGMENTS, uplift_deciles

SUMMARY_FORMAT = 1  # bump when the layout changes: older summaries are recomputed lazily
LIFECYCLE = "lifecycle"
UPLIFT_DECILE = "uplift_decile"
_Z95 = 1.959963984540054


def _interval(count: np.ndarray, total: np.ndarray, squares: np.ndarray) -> list[dict | None]:
    """Mean and 95 % normal interval per group from its count, sum and sum of squares."""
    out: list[dict | None] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        variance = np.maximum(squares - total * mean, 0.0) / (count - 1)
        half = _Z95 * np.sqrt(variance / count)
    for n, m, h in zip(count, mean, half, strict=True):
        if n == 0:
            out.append(None)
        elif n == 1 or not np.isfinite(h):
            out.append({"mean": float(m), "low": None, "high": None})
        else:
            out.append({"mean": float(m), "low": float(m - h), "high": float(m + h)})
    return out


def _group_sums(codes: np.ndarray, k: int, values: np.ndarray) -> tuple[np.ndarray, ...]:
    count = np.bincount(codes, minlength=k).astype(np.float64)
    total = np.stack(
        [np.bincount(codes, weights=values[:, j], minlength=k) for j in range(values.shape[1])],
        axis=1,
    )
    squares = np.stack(
        [
            np.bincount(codes, weights=values[:, j] * values[:, j], minlength=k)
            for j in range(values.shape[1])
        ],
        axis=1,
    )
    return count, total, squares


def segment_summary(
    *,
    arms: Sequence[str],
    p_convert: np.ndarray,
    order_value: np.ndarray | None,
    lifecycle: np.ndarray | None,
) -> dict[str, Any]:
    """The summary (JSON-ready) of customers' predictions ``p_convert`` [n, A] and
    ``order_value`` [n, A] (arm 0 = control), grouped by ``lifecycle`` codes (into
    ``LIFECYCLE_SEGMENTS``; None: not known) and by uplift decile."""
    arms = list(arms)
    coupons = arms[1:]
    p = np.asarray(p_convert, dtype=np.float64)
    n = p.shape[0]
    uplift = p[:, 1:] - p[:, :1]
    columns = [p[:, :1], uplift]
    value = None if order_value is None else np.asarray(order_value, dtype=np.float64)
    if value is not None:
        expected = p * value
        columns += [value[:, :1], expected[:, 1:] - expected[:, :1]]
    values = np.concatenate(columns, axis=1)  # [n, 1 + C (+ 1 + C)]
    best = uplift.max(axis=1) if coupons else np.zeros(n)

    groups: list[tuple[str, np.ndarray, list[str]]] = []
    if lifecycle is not None:
        groups.append((LIFECYCLE, np.asarray(lifecycle, dtype=np.int64), list(LIFECYCLE_SEGMENTS)))
    # Highest decile first: the table reads from the best targets down.
    decile_codes = 10 - uplift_deciles(best).astype(np.int64)
    groups.append((UPLIFT_DECILE, decile_codes, [str(10 - i) for i in range(10)]))

    out_groups = []
    c = len(coupons)
    for kind, codes, keys in groups:
        count, total, squares = _group_sums(codes, len(keys), values)
        stats = [_interval(count, total[:, j], squares[:, j]) for j in range(values.shape[1])]
        segments = []
        for g, key in enumerate(keys):
            size = int(count[g])
            means = [None if column[g] is None else column[g]["mean"] for column in stats]
            segment: dict[str, Any] = {
                "key": key,
                "size": size,
                "share": size / n if n else 0.0,
                "p_control": means[0],
                "uplift": {coupon: stats[1 + i][g] for i, coupon in enumerate(coupons)},
            }
            if value is not None:
                segment["order_value_control"] = means[1 + c]
                segment["incremental_value"] = {
                    coupon: stats[2 + c + i][g] for i, coupon in enumerate(coupons)
                }
            segments.append(segment)
        out_groups.append({"kind": kind, "segments": segments})
    return {
        "format": SUMMARY_FORMAT,
        "customers": int(n),
        "coupons": coupons,
        "has_order_value": value is not None,
        "groups": out_groups,
    }


def model_version_segment_summary_refresh(*, version: ModelVersion) -> dict[str, Any]:
    """Compute the version's segment summary from its score chunks and store it on the row."""
    scores = model_version_scores(version=version)
    summary = segment_summary(
        arms=scores.arms,
        p_convert=scores.p_convert,
        order_value=scores.order_value,
        lifecycle=scores.lifecycle,
    )
    ModelVersion.objects.filter(pk=version.pk).update(segment_summary=summary)
    version.segment_summary = summary
    return summary


def model_version_segments(*, version: ModelVersion) -> dict[str, Any] | None:
    """The stored summary; computed once, lazily, for a version scored before summaries were
    stored (or in an older layout). None when the version has not scored its customers."""
    summary = version.segment_summary or {}
    if summary.get("format") == SUMMARY_FORMAT:
        return summary
    if version.scored_at is None:
        return None
    try:
        return model_version_segment_summary_refresh(version=version)
    except ScoringError:
        return None
