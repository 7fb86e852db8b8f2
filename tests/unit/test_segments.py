"""The segment summary (computed once per scored version) and the segments page."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from django.urls import reverse

from modeling.models import ModelVersion
from modeling.scoring_service import scoring_finish
from modeling.segment_service import (
    SUMMARY_FORMAT,
    model_version_segment_summary_refresh,
    segment_summary,
)
from modeling.segments import LIFECYCLE_SEGMENTS, uplift_deciles
from tests.factories import JobFactory, ModelVersionFactory, StrategyFactory
from tests.scored import scored_merchant

pytestmark = pytest.mark.django_db

SEGMENTS_URL = reverse("modeling:segments", kwargs={"merchant": "shop-a"})
# session, user, membership, the champion (its stored summary), the latest realized results,
# the navbar's memberships
QUERIES_SEGMENTS_PAGE = 6


def test_the_summary_holds_sizes_traits_and_uplift_intervals_per_segment():
    # given four customers in two lifecycle segments, one coupon
    p = np.array([[0.1, 0.2], [0.3, 0.3], [0.2, 0.6], [0.4, 0.5]])
    value = np.array([[100.0, 110.0], [200.0, 200.0], [50.0, 60.0], [80.0, 90.0]])
    lifecycle = np.array([1, 1, 3, 3], dtype=np.int8)  # active, active, lost, lost

    summary = segment_summary(
        arms=["control", "PCT10"], p_convert=p, order_value=value, lifecycle=lifecycle
    )

    lifecycle_group, deciles = summary["groups"]
    by_key = {s["key"]: s for s in lifecycle_group["segments"]}
    assert [s["key"] for s in lifecycle_group["segments"]] == list(LIFECYCLE_SEGMENTS)
    active = by_key["active"]
    assert active["size"] == 2 and active["share"] == 0.5
    assert active["p_control"] == pytest.approx(0.2)
    assert active["order_value_control"] == pytest.approx(150.0)
    uplift = np.array([0.1, 0.0])
    half = 1.959963984540054 * uplift.std(ddof=1) / np.sqrt(2)
    assert active["uplift"]["PCT10"] == pytest.approx(
        {"mean": 0.05, "low": 0.05 - half, "high": 0.05 + half}
    )
    incremental = np.array([0.2 * 110 - 0.1 * 100, 0.0])
    assert active["incremental_value"]["PCT10"]["mean"] == pytest.approx(incremental.mean())
    assert by_key["new"]["size"] == 0 and by_key["new"]["uplift"]["PCT10"] is None
    assert deciles["kind"] == "uplift_decile"
    assert sum(s["size"] for s in deciles["segments"]) == 4
    json.dumps(summary)  # stored as JSON as it is


def test_the_summary_of_a_scored_merchant_matches_its_scores(merchant_a):
    scored = scored_merchant(merchant_a, customers=400, seed=3)

    summary = model_version_segment_summary_refresh(version=scored.version)

    assert summary["format"] == SUMMARY_FORMAT and summary["customers"] == 400
    assert ModelVersion.objects.get(pk=scored.version.pk).segment_summary == summary
    p = scored.p_convert.astype(np.float64)
    uplift = p[:, 1:] - p[:, :1]
    lifecycle, deciles = summary["groups"]
    for code, segment in enumerate(lifecycle["segments"]):
        rows = scored.lifecycle == code
        assert segment["size"] == rows.sum()
        assert segment["p_control"] == pytest.approx(p[rows, 0].mean())
        for position, coupon in enumerate(scored.arms[1:]):
            entry = segment["uplift"][coupon]
            values = uplift[rows, position]
            assert entry["mean"] == pytest.approx(values.mean())
            half = 1.959963984540054 * values.std(ddof=1) / np.sqrt(rows.sum())
            assert entry["high"] - entry["low"] == pytest.approx(2 * half)
    decile = uplift_deciles(uplift.max(axis=1))
    assert [s["key"] for s in deciles["segments"]] == [str(d) for d in range(10, 0, -1)]
    assert [s["size"] for s in deciles["segments"]] == [40] * 10
    top = deciles["segments"][0]["uplift"][scored.arms[1]]["mean"]
    assert top == pytest.approx(uplift[decile == 10, 0].mean())


def test_scoring_finish_stores_the_summary(merchant_a):
    scored = scored_merchant(merchant_a, customers=200, seed=1)
    ModelVersion.objects.filter(pk=scored.version.pk).update(scored_at=None)
    job = JobFactory(merchant=merchant_a, status="running")

    scoring_finish(job=job, version=scored.version, chunks=2)

    version = ModelVersion.objects.get(pk=scored.version.pk)
    assert version.scored_at is not None
    assert version.segment_summary["customers"] == 200


@pytest.mark.parametrize("customers", [50, 500])
def test_the_page_shows_sizes_intervals_and_no_outcomes_yet_reading_one_row(
    merchant_a, vera, client_for, django_assert_num_queries, customers
):
    # given a scored champion whose summary was not stored yet (scored before summaries)
    scored_merchant(merchant_a, customers=customers, seed=2)
    client = client_for(vera)
    first = client.get(SEGMENTS_URL).content.decode()  # computes it once and stores it

    # when the page is read again
    with django_assert_num_queries(QUERIES_SEGMENTS_PAGE):
        response = client.get(SEGMENTS_URL)

    # then it shows every segment's size, intervals per coupon and no realized uplift yet
    page = response.content.decode()
    assert 'data-testid="segments-lifecycle"' in first
    summary = ModelVersion.objects.get(merchant=merchant_a, is_champion=True).segment_summary
    assert summary["customers"] == customers  # stored by the first request
    for group in summary["groups"]:
        assert f'data-testid="segments-{group["kind"]}"' in page
        for segment in group["segments"]:
            assert f'data-segment="{segment["key"]}"' in page
    active = summary["groups"][0]["segments"][1]
    entry = active["uplift"]["PCT10"]
    assert f"[{100 * entry['low']:.2f}, {100 * entry['high']:.2f}]" in page
    assert page.count('data-testid="no-outcomes"') == 15  # 5 lifecycle + 10 deciles rows
    assert "No outcomes yet" in page
    assert f"(predicted, {merchant_a.currency})" in page  # amounts in the merchant's currency
    figure = json.loads(
        re.search(
            r'<script id="segments-lifecycle-data" type="application/json">(.*?)</script>',
            page,
            re.S,
        ).group(1)
    )
    assert [t["name"] for t in figure["data"]] == ["PCT10", "AMT20", "SPEND199_30"]
    assert figure["data"][0]["y"][1] == pytest.approx(100 * entry["mean"])
    assert "percentage points" in figure["layout"]["yaxis"]["title"]["text"]


def test_without_a_scored_champion_the_page_says_so(merchant_a, vera, client_for):
    client = client_for(vera)
    assert 'data-testid="no-champion"' in client.get(SEGMENTS_URL).content.decode()
    ModelVersionFactory(merchant=merchant_a, is_champion=True)
    assert 'data-testid="not-scored"' in client.get(SEGMENTS_URL).content.decode()


def test_the_navbar_links_the_segments_page_and_viewers_change_nothing(
    merchant_a, vera, client_for
):
    client = client_for(vera)
    page = client.get(SEGMENTS_URL).content.decode()
    assert f'href="{SEGMENTS_URL}"' in page
    assert client.post(SEGMENTS_URL).status_code == 403


def _comparison(key, treated: int, control: int, diff: float, low: float, high: float) -> dict:
    enough = min(treated, control) >= 100
    return {
        "key": key,
        "label": key,
        "enough": enough,
        "treated": {"customers": treated},
        "control": {"customers": control},
        "conversion_rate": {
            "difference": diff, "low": low, "high": high, "significant": low > 0 or high < 0
        } if enough else None,
    }  # fmt: skip


def test_realized_uplift_shows_beside_the_prediction_once_outcomes_exist(
    merchant_a, vera, client_for, django_assert_num_queries
):
    from django.utils import timezone

    from campaigns.models import RealizedResult

    scored = scored_merchant(merchant_a, customers=300, seed=2)
    strategy = StrategyFactory(
        campaign__merchant=merchant_a,
        model_version=scored.version,
        status="applied",
        applied_at=timezone.now(),
    )
    RealizedResult.objects.create(
        strategy=strategy,
        refreshed_at=timezone.now(),
        data={
            "min_customers": 100,
            "segments": {
                "lifecycle": [
                    _comparison("active", 900, 120, 0.052, 0.011, 0.093),
                    _comparison("lapsing", 400, 140, 0.01, -0.03, 0.05),
                    _comparison("new", 60, 8, 0.0, 0.0, 0.0),
                ],
                "uplift_deciles": [_comparison(10, 300, 150, 0.08, 0.02, 0.14)],
            },
        },
    )
    client = client_for(vera)
    client.get(SEGMENTS_URL)
    with django_assert_num_queries(QUERIES_SEGMENTS_PAGE):
        page = client.get(SEGMENTS_URL).content.decode()

    def row(key: str) -> str:
        return page.split(f'data-segment="{key}"')[1].split("</tr>")[0]

    assert "[1.10, 9.30]" in row("active") and "significant" in row("active")
    assert "900 treated vs 120 held out" in row("active")
    assert "[-3.00, 5.00]" in row("lapsing") and "significant" not in row("lapsing")
    assert "Too few customers (60 treated, 8 held out)" in row("new")
    lifecycle = page.split('data-testid="segments-uplift_deciles"')[0]
    assert "No outcomes yet" not in lifecycle  # outcomes exist: a segment without is "—"
    assert "[2.00, 14.00]" in row("10")  # the same model: its deciles compare
    assert f"strategy #{strategy.pk}" in page

    # uplift deciles of another model rank customers differently: not shown against these
    strategy.model_version = ModelVersionFactory(merchant=merchant_a)
    strategy.save()
    page = client.get(SEGMENTS_URL).content.decode()
    assert "[2.00, 14.00]" not in row("10") and "[1.10, 9.30]" in row("active")
