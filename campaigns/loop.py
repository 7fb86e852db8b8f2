"""The whole loop on a simulated merchant: train, propose, apply, play the period, import its
outcomes, measure against the holdout, retrain.

``manage.py demo_loop`` runs it on a fresh simulated merchant and prints the realized
incremental profit beside the simulator's truth; ``manage.py load_demo`` takes the demo merchant
round it once; the integration suite runs it through a real worker. Each step goes through the
product's own services and jobs (eagerly in the embedded setup, on the workers when a broker is
configured), so this module only orders them and waits for their jobs.

The campaign is placed in the past, so the loop can be played now: it started
``CAMPAIGN_STARTED_DAYS_AGO`` days ago and ran for the truth's outcome window (7 days), its
strategy was applied an hour before it started (``strategy_apply``'s ``now``), and its
attribution window is that outcome window, closed by now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from modeling.choices import JobStatus, ModelStatus
from modeling.models import Job, ModelVersion
from modeling.scoring_service import model_version_score
from modeling.selectors import merchant_champion
from modeling.simulation import GroundTruth
from modeling.training_service import model_version_train

from .assignments import campaigns_complete_ended, strategy_apply
from .models import Campaign, CouponType, Merchant, RealizedResult, Strategy
from .results import strategy_results_refresh
from .services import campaign_create
from .simulated import SimulatedOutcomes, merchant_import_outcomes, strategy_simulate_outcomes
from .strategies import strategy_propose

Report = Callable[[str], None]
CAMPAIGN_STARTED_DAYS_AGO = 9
JOB_TIMEOUT_S = 3 * 60 * 60


class LoopError(Exception):
    """A step of the loop failed (its job's error says why)."""


@dataclass
class LoopResult:
    """What one round of the loop produced, and the numbers to judge it by."""

    campaign: Campaign
    strategy: Strategy
    outcomes: SimulatedOutcomes
    result: RealizedResult
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def realized_profit(self) -> dict[str, Any] | None:
        """The realized incremental profit (not held out vs holdout) with its 95 % interval:
        ``{"difference", "low", "high", "significant"}``, or None with too few customers."""
        return (self.result.data.get("overall") or {}).get("incremental_profit")

    @property
    def true_profit(self) -> float:
        return self.outcomes.true_totals()["profit"]

    @property
    def truth_inside(self) -> bool | None:
        realized = self.realized_profit
        if not realized:
            return None
        return bool(realized["low"] <= self.true_profit <= realized["high"])


def await_job(job: Job, *, timeout_s: float = JOB_TIMEOUT_S) -> Job:
    """Wait until the job has finished (at once in eager mode) and check that it succeeded."""
    deadline = time.monotonic() + timeout_s
    job.refresh_from_db()
    while job.status in JobStatus.active() and time.monotonic() < deadline:
        time.sleep(0.5)
        job.refresh_from_db()
    if job.status != JobStatus.SUCCEEDED:
        raise LoopError(f"{job}: {job.error or job.message or job.status}")
    return job


def loop_train(
    *, merchant: Merchant, epochs: int, report: Report, score: bool = True
) -> ModelVersion:
    """Train a new version on every randomized row so far (and score every customer with it
    when it is the champion, or ``score``)."""
    version = model_version_train(merchant=merchant, actor=None, epochs=epochs)
    await_job(version.job)
    version.refresh_from_db()
    if version.status != ModelStatus.READY:
        raise LoopError(f"Model v{version.number} is {version.status}: {version.error}")
    comparison = (version.evaluation or {}).get("champion_comparison")
    line = f"  model v{version.number}: ready, mean Qini {_number(version, 3)}"
    if comparison and comparison.get("difference"):
        d = comparison["difference"]
        line += (
            f"; against champion v{comparison['champion']} on {comparison['rows']:,} held-out "
            f"rows, DR conversion difference {100 * d['value']:+.2f} pp "
            f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]: "
            + ("promoted" if comparison.get("promote") else "the champion stays")
        )
    elif version.is_champion:
        line += "; champion"
    report(line)
    if score and version.is_champion:
        await_job(model_version_score(version=version, actor=None))
        version.refresh_from_db()
        report(f"  model v{version.number}: every customer scored")
    return version


def _number(version: ModelVersion, places: int) -> str:
    value = (version.evaluation or {}).get("mean_qini_coefficient")
    return "—" if value is None else f"{value:.{places}f}"


def loop_campaign(
    *,
    merchant: Merchant,
    truth: GroundTruth,
    budget: Decimal,
    seed: int,
    report: Report,
    name: str = "Loop",
    now: datetime | None = None,
) -> LoopResult:
    """One campaign round: create (in the past), propose from the champion, apply, play the
    period, import its outcomes, measure (module doc)."""
    now = now or timezone.now()
    clock: dict[str, float] = {}
    started = time.perf_counter()
    if merchant_champion(merchant=merchant) is None:
        raise LoopError("There is no champion model to propose from.")
    starts_at = (now - timedelta(days=CAMPAIGN_STARTED_DAYS_AGO)).replace(
        minute=0, second=0, microsecond=0
    )
    window = int(truth.outcome_window_days)
    codes = CouponType.objects.filter(merchant=merchant, active=True).values_list("code", flat=True)
    campaign = campaign_create(
        merchant=merchant,
        actor=None,
        coupon_types=list(codes),
        name=name,
        budget=budget,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(days=window),
        attribution_window_days=window,
    )
    job = await_job(strategy_propose(campaign=campaign, actor=None))
    strategy = Strategy.objects.get(pk=job.result["strategy_id"])
    clock["propose"] = time.perf_counter() - started
    report(
        f"  proposed strategy #{strategy.pk}: {strategy.treated_customers:,} coupons, "
        f"{strategy.holdout_customers:,} held out, {strategy.exploration_customers:,} exploring; "
        f"expected incremental profit {strategy.expected_profit:,.2f} "
        f"for {strategy.expected_cost:,.2f} of coupons"
    )
    offpolicy = strategy.summary.get("offpolicy") or {}
    dr = ((offpolicy.get("estimates") or {}).get("profit") or {}).get("dr")
    if dr:
        report(
            f"  off-policy estimate before applying (DR, {offpolicy['rows']:,} randomized rows): "
            f"{dr['value']:,.2f} [{dr['low']:,.2f}, {dr['high']:,.2f}]"
        )

    mark = time.perf_counter()
    applied = strategy_apply(strategy=strategy, actor=None, now=starts_at - timedelta(hours=1))
    campaigns_complete_ended(now=now)
    strategy = applied.strategy
    clock["apply"] = time.perf_counter() - mark
    report(f"  applied: {applied.created:,} assignments")

    mark = time.perf_counter()
    outcomes = strategy_simulate_outcomes(strategy=strategy, seed=seed, truth=truth)
    clock["simulate_outcomes"] = time.perf_counter() - mark
    mark = time.perf_counter()
    data_import = merchant_import_outcomes(merchant=merchant, path=outcomes.path)
    result = RealizedResult.objects.filter(strategy=strategy).first()
    if result is None:  # the import logs a failed refresh and goes on; measure here then
        result = strategy_results_refresh(strategy=strategy)
    clock["import_and_measure"] = time.perf_counter() - mark
    report(f"  outcomes: {outcomes.period.n_orders:,} orders; {data_import.message}")
    return LoopResult(
        campaign=campaign, strategy=strategy, outcomes=outcomes, result=result, seconds=clock
    )


def describe(loop: LoopResult, currency: str) -> list[str]:
    """The realized-against-true lines ``demo_loop`` prints."""
    realized = loop.realized_profit
    overall = loop.result.data.get("overall") or {}
    treated = (overall.get("treated") or {}).get("customers", 0)
    control = (overall.get("control") or {}).get("customers", 0)
    truth = loop.outcomes.true_totals()
    lines = [
        f"Strategy #{loop.strategy.pk}: {treated:,} customers not held out against "
        f"{control:,} held out",
        f"  model's expected incremental profit:          {currency} "
        f"{loop.strategy.expected_profit:>12,.2f}",
    ]
    if realized is None:
        lines.append("  realized incremental profit: too few customers to measure")
        return lines
    lines += [
        f"  realized incremental profit (vs holdout):     {currency} "
        f"{realized['difference']:>12,.2f}   95% CI [{realized['low']:,.2f}, "
        f"{realized['high']:,.2f}]",
        f"  simulator's true incremental profit:          {currency} {truth['profit']:>12,.2f}",
        f"  true value inside the reported interval:      {'yes' if loop.truth_inside else 'NO'}",
    ]
    return lines
