"""Proposing a strategy: the Django side around the ML core's allocation.

``strategy_propose`` checks the request and queues a job (queue ``default``); its task calls
``strategy_compute``, which

1. reads the model version's scores of every customer in one pass over its chunk files, with
   each customer's lifecycle segment (written at scoring time);
2. keeps the campaign's eligible customers (its audience, ``campaigns/audience.py``);
3. holds out ``holdout_share`` of them (stratified by lifecycle segment, sticky per campaign)
   and draws ``exploration_share`` for exploration (an arm uniform among no coupon and the
   campaign's coupons), as far as the budget and caps allow (``campaigns/randomization.py``);
4. prices every (customer, arm) with ``modeling.allocation.arm_values`` and lets
   ``allocate`` choose for the rest under what is left of the budget and caps; computes the
   efficient frontier for them (the model, the best single coupon, random targeting);
5. writes the per-customer decisions to a Parquet file (atomically) and saves the Strategy.

The budget is on expected spend: a coupon's expected cost to the merchant (its chance of being
redeemed times its cost on the predicted order) summed over the customers who get it; the
treated and the exploration customers together never exceed it, nor any cap.

Layouts of the strategy's JSON fields (numbers are expectations against giving no coupon):

``counts``: customers per kind and arm:
``{"treatment": {"control": n, "PCT10": n, ...}, "exploration": {...}, "holdout": {...}}``.

``segments``: ``{"lifecycle": [row, ...], "uplift_deciles": [row, ...]}``, a row per lifecycle
segment (``"segment"``) or uplift decile (``"decile"``, 10 = the customers whose best offered
coupon lifts their conversion most): ``customers``, ``holdout``, ``exploration``, ``treated``
(given a coupon, by the model or by exploration), ``arms`` (customers per arm, all kinds),
``expected_conversions``, ``expected_revenue``, ``expected_cost``, ``expected_profit``, and per
coupon the mean predicted conversion uplift and incremental profit if every customer of the row
got it (``uplift_per_coupon``, ``profit_per_coupon``).

``frontier``: ``{"unconstrained_spend": x, "exploration_cost": x, "curves": {"model": curve,
"best_single_coupon": curve, "random": curve}}``, a curve being lists ``budget``, ``spend``,
``objective``, ``profit``, ``revenue``, ``conversions`` and ``roi`` (null where nothing is spent),
over the customers the model decides for.

``summary["offpolicy"]``: the strategy's value estimated from the randomized data already held
(IPW and doubly robust, with intervals), beside the model's own numbers; its layout is in
campaigns/offpolicy.py.

The choices file: one row per eligible customer: ``customer_id`` (int64), ``kind`` (int8:
0 treatment, 1 holdout, 2 exploration), ``arm`` (int16, index into ``strategy.arms``; 0 = no
coupon), ``propensity`` (float32, see ``Assignment``), ``lifecycle`` (int8), ``decile`` (int8)
and the row's ``expected_conversions``, ``expected_cost`` and ``expected_profit`` (float32).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django.utils.translation import gettext as _

from modeling.allocation import allocate, arm_values, efficient_frontier
from modeling.choices import JobKind, ModelStatus
from modeling.economics import CouponTerms
from modeling.models import Job, ModelVersion
from modeling.scoring_service import ScoringError, model_version_scores
from modeling.segments import LIFECYCLE_SEGMENTS, uplift_deciles
from modeling.selectors import merchant_champion
from modeling.services import job_enqueue

from .audience import audience_attribute_values
from .choices import CONTROL_ARM, AssignmentKind, AuditVerb, CampaignStatus, StrategyStatus
from .models import Campaign, CampaignHoldout, Customer, Strategy
from .offpolicy import strategy_offpolicy_estimate
from .randomization import (
    affordable_prefix,
    exploration_draw,
    hash_uniform,
    stratified_holdout,
)
from .services import audit_record

logger = logging.getLogger(__name__)

KIND_CODES: dict[str, int] = {
    AssignmentKind.TREATMENT: 0,
    AssignmentKind.HOLDOUT: 1,
    AssignmentKind.EXPLORATION: 2,
}
KIND_NAMES = {code: kind for kind, code in KIND_CODES.items()}
FRONTIER_POINTS = 25
Report = Callable[[int, str], None]


class StrategyError(Exception):
    """The strategy cannot be proposed (no scored model, a coupon the model does not know ...)."""


# --- queueing ------------------------------------------------------------------------------------


def _proposable_version(*, campaign: Campaign, version: ModelVersion | None) -> ModelVersion:
    version = version or merchant_champion(merchant=campaign.merchant)
    if version is None:
        raise ValidationError(_("There is no champion model yet: train a model first."))
    if version.merchant_id != campaign.merchant_id:
        raise ValidationError(_("That model belongs to another merchant."))
    if version.status != ModelStatus.READY:
        raise ValidationError(_("Model v%(n)d is not ready.") % {"n": version.number})
    if version.scored_at is None and not version.score_chunks.exists():
        raise ValidationError(
            _("Model v%(n)d has not scored the customers yet: score them first.")
            % {"n": version.number}
        )
    codes = list(campaign.coupon_types.values_list("code", flat=True))
    if not codes:
        raise ValidationError(_("The campaign offers no coupon types."))
    missing = sorted(set(codes) - set(version.arms))
    if missing:
        raise ValidationError(
            _(
                "Model v%(n)d was not trained on %(codes)s: train a model on data with these "
                "coupons, or offer others."
            )
            % {"n": version.number, "codes": ", ".join(missing)}
        )
    return version


@transaction.atomic
def strategy_propose(
    *,
    campaign: Campaign,
    actor,
    budget: Decimal | None = None,
    version: ModelVersion | None = None,
) -> Job:
    """Queue a proposal job for the campaign (from the champion model unless ``version``);
    ``budget`` overrides the campaign's for this proposal. The job's result names the strategy."""
    from .tasks import propose_strategy

    if campaign.status == CampaignStatus.COMPLETED:
        raise ValidationError(_("The campaign has ended."))
    if budget is not None and budget < 0:
        raise ValidationError({"budget": _("The budget cannot be negative.")})
    version = _proposable_version(campaign=campaign, version=version)
    return job_enqueue(
        merchant=campaign.merchant,
        kind=JobKind.PROPOSE,
        task=propose_strategy,
        created_by=actor,
        params={
            "campaign_id": campaign.pk,
            "version_id": version.pk,
            "budget": None if budget is None else str(budget),
        },
    )


# --- computing -----------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Per scored customer (row): eligibility, kind, arm, propensity; and the totals."""

    customer_ids: np.ndarray
    eligible: np.ndarray
    kind: np.ndarray  # int8, -1 = not eligible
    arm: np.ndarray  # int16 into arms
    propensity: np.ndarray
    lifecycle: np.ndarray
    decile: np.ndarray


def _coupon_terms(campaign: Campaign) -> list[CouponTerms]:
    return [
        CouponTerms(
            code=c.code,
            kind=c.kind,
            value=float(c.value),
            min_spend=float(c.min_spend),
            fixed_cost=float(c.fixed_cost),
        )
        for c in campaign.coupon_types.order_by("code")
    ]


def _merchant_customer_ids(campaign: Campaign) -> np.ndarray:
    return np.fromiter(
        Customer.objects.filter(merchant=campaign.merchant)
        .order_by("id")
        .values_list("id", flat=True)
        .iterator(chunk_size=100_000),
        dtype=np.int64,
    )


def _attribute_matches(campaign: Campaign, wanted: dict[str, list]) -> np.ndarray:
    """Ids of the merchant's customers whose attributes match every filter (sorted)."""
    queryset = Customer.objects.filter(merchant=campaign.merchant)
    for position, (name, values) in enumerate(wanted.items()):
        alias = f"_attribute_{position}"
        queryset = queryset.alias(**{alias: KeyTransform(name, "attributes")}).filter(
            **{f"{alias}__in": values}
        )
    return np.sort(
        np.fromiter(
            queryset.values_list("id", flat=True).iterator(chunk_size=100_000), dtype=np.int64
        )
    )


def _sticky_holdout_ids(campaign: Campaign) -> np.ndarray:
    return np.sort(
        np.fromiter(
            CampaignHoldout.objects.filter(campaign=campaign)
            .values_list("customer_id", flat=True)
            .iterator(chunk_size=100_000),
            dtype=np.int64,
        )
    )


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _curve_dict(curve) -> dict[str, list]:
    return {
        name: [_finite(v) for v in np.asarray(getattr(curve, name), dtype=np.float64)]
        for name in ("budget", "spend", "objective", "profit", "revenue", "conversions", "roi")
    }


def _breakdown(
    *,
    groups: np.ndarray,
    labels: list,
    label_key: str,
    kind: np.ndarray,
    arm: np.ndarray,
    arms: list[str],
    row_values: dict[str, np.ndarray],
    uplift: np.ndarray,
    profit: np.ndarray,
) -> list[dict[str, Any]]:
    """One row per group label over the eligible customers (vectorized with bincount)."""
    n_groups = len(labels)
    n_arms = len(arms)

    def count(mask: np.ndarray | None = None) -> np.ndarray:
        chosen = groups if mask is None else groups[mask]
        return np.bincount(chosen, minlength=n_groups)

    def total(weights: np.ndarray) -> np.ndarray:
        return np.bincount(groups, weights=weights, minlength=n_groups)

    customers = count()
    holdout = count(kind == KIND_CODES[AssignmentKind.HOLDOUT])
    exploration = count(kind == KIND_CODES[AssignmentKind.EXPLORATION])
    treated = count(arm > 0)  # given a coupon, by the model or by exploration
    per_arm = np.bincount(groups * n_arms + arm, minlength=n_groups * n_arms).reshape(
        n_groups, n_arms
    )
    sums = {name: total(values) for name, values in row_values.items()}
    uplift_sums = np.stack([total(uplift[:, a]) for a in range(1, n_arms)], axis=1)
    profit_sums = np.stack([total(profit[:, a]) for a in range(1, n_arms)], axis=1)
    rows = []
    for g, label in enumerate(labels):
        size = int(customers[g])
        rows.append(
            {
                label_key: label,
                "customers": size,
                "holdout": int(holdout[g]),
                "exploration": int(exploration[g]),
                "treated": int(treated[g]),
                "arms": {arms[a]: int(per_arm[g, a]) for a in range(n_arms)},
                **{f"expected_{name}": float(sums[name][g]) for name in sums},
                "uplift_per_coupon": {
                    arms[a]: (float(uplift_sums[g, a - 1] / size) if size else None)
                    for a in range(1, n_arms)
                },
                "profit_per_coupon": {
                    arms[a]: (float(profit_sums[g, a - 1] / size) if size else None)
                    for a in range(1, n_arms)
                },
            }
        )
    return rows


def _write_choices(*, campaign: Campaign, columns: dict[str, pa.Array]) -> Path:
    folder = Path(settings.MEDIA_ROOT) / "strategies" / str(campaign.merchant_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"campaign-{campaign.pk}-{uuid.uuid4().hex}"
    path = folder / f"{name}.parquet"
    partial = folder / f".{name}.tmp"
    pq.write_table(pa.table(columns), partial)
    os.replace(partial, path)  # readers see the whole file or none
    return path


def read_choices(strategy: Strategy) -> pa.Table:
    """The strategy's per-customer decisions (layout in the module doc)."""
    if not strategy.choices_path or not Path(strategy.choices_path).is_file():
        raise StrategyError(_("This strategy's decisions file is missing; propose it again."))
    return pq.read_table(strategy.choices_path)


def strategy_compute(
    *,
    campaign: Campaign,
    version: ModelVersion,
    actor=None,
    budget: Decimal | None = None,
    job: Job | None = None,
    report: Report | None = None,
) -> Strategy:
    """Compute and save one proposed strategy (the proposal job's body; see the module doc)."""
    report = report or (lambda progress, message: None)
    campaign = Campaign.objects.get(pk=campaign.pk)
    revision = campaign.revision
    try:
        _proposable_version(campaign=campaign, version=version)
    except ValidationError as error:
        raise StrategyError(" ".join(error.messages)) from None
    budget_value = Decimal(campaign.budget if budget is None else budget)
    coupons = _coupon_terms(campaign)
    arms = [CONTROL_ARM, *[c.code for c in coupons]]
    n_arms = len(arms)

    report(5, _("Reading the model's scores"))
    try:
        scores = model_version_scores(version=version)
    except ScoringError as error:
        raise StrategyError(str(error)) from None
    if scores.lifecycle is None:
        raise StrategyError(
            _("Model v%(n)d's scores carry no lifecycle segments: score the customers again.")
            % {"n": version.number}
        )
    columns = [scores.arms.index(arm) for arm in arms]
    existing = _merchant_customer_ids(campaign)
    known = np.isin(scores.customer_ids, existing, assume_unique=True)
    customer_ids = scores.customer_ids[known]
    p_convert = scores.p_convert[known][:, columns].astype(np.float64)
    order_value = (
        None
        if scores.order_value is None
        else scores.order_value[known][:, columns].astype(np.float64)
    )
    lifecycle = scores.lifecycle[known].astype(np.int64)
    n = customer_ids.size

    report(
        20,
        _("Pricing %(n)s customers x %(coupons)s coupons") % {"n": f"{n:,}", "coupons": n_arms - 1},
    )
    aov = None if campaign.average_order_value is None else float(campaign.average_order_value)
    if order_value is None and aov is None:
        raise StrategyError(
            _("The model predicts no order values: set the campaign's average order value.")
        )
    values = arm_values(
        p_convert,
        order_value,
        coupons,
        margin_rate=float(campaign.margin_rate),
        goal=campaign.goal,
        average_order_value=aov,
        arms=tuple(arms),
    )
    uplift = p_convert - p_convert[:, :1]
    best_uplift = uplift[:, 1:].max(axis=1)
    decile = uplift_deciles(best_uplift).astype(np.int64)

    # Who is eligible: the audience filter.
    audience = campaign.audience or {}
    eligible = np.ones(n, dtype=bool)
    if audience.get("lifecycle"):
        wanted = [LIFECYCLE_SEGMENTS.index(s) for s in audience["lifecycle"]]
        eligible &= np.isin(lifecycle, wanted)
    if "min_uplift" in audience:
        eligible &= best_uplift >= float(audience["min_uplift"])
    if "max_uplift" in audience:
        eligible &= best_uplift <= float(audience["max_uplift"])
    attributes = audience_attribute_values(audience)
    if attributes:
        eligible &= np.isin(customer_ids, _attribute_matches(campaign, attributes))
    n_eligible = int(eligible.sum())

    report(
        40,
        _("Holding out and exploring among %(n)s eligible customers") % {"n": f"{n_eligible:,}"},
    )
    holdout = np.zeros(n, dtype=bool)
    sticky = np.isin(customer_ids, _sticky_holdout_ids(campaign), assume_unique=True)
    holdout[eligible] = stratified_holdout(
        uniform=hash_uniform(customer_ids[eligible], salt=campaign.randomization_salt),
        strata=lifecycle[eligible],
        share=float(campaign.holdout_share),
        sticky=sticky[eligible],
    )
    seed = secrets.randbits(62)
    rng = np.random.default_rng(seed)
    caps = [campaign.caps.get(code) for code in arms[1:]]
    explore_rows, explore_arms = exploration_draw(
        candidates=eligible & ~holdout,
        count=math.floor(float(campaign.exploration_share) * n_eligible + 0.5),
        n_arms=n_arms,
        rng=rng,
    )
    explore_spend = values.spend[explore_rows, explore_arms]
    wanted_explorers = explore_rows.size
    keep = affordable_prefix(
        spend=explore_spend, arms=explore_arms, budget=float(budget_value), caps=caps
    )
    explore_rows, explore_arms = explore_rows[:keep], explore_arms[:keep]
    exploration_cost = float(explore_spend[:keep].sum())
    explored = np.zeros(n, dtype=bool)
    explored[explore_rows] = True

    report(55, _("Allocating coupons under the budget and caps"))
    exploit = eligible & ~holdout & ~explored
    explore_counts = np.bincount(explore_arms, minlength=n_arms)
    remaining_caps = [
        None if cap is None else max(int(cap) - int(explore_counts[j + 1]), 0)
        for j, cap in enumerate(caps)
    ]
    remaining_budget = max(float(budget_value) - exploration_cost, 0.0)
    allocation = allocate(values, budget=remaining_budget, caps=remaining_caps, eligible=exploit)
    report(70, _("Computing the efficient frontier"))
    frontier = efficient_frontier(
        values, caps=remaining_caps, eligible=exploit, points=FRONTIER_POINTS, seed=seed % 2**32
    )

    kind = np.full(n, -1, dtype=np.int8)
    kind[exploit] = KIND_CODES[AssignmentKind.TREATMENT]
    kind[holdout] = KIND_CODES[AssignmentKind.HOLDOUT]
    kind[explored] = KIND_CODES[AssignmentKind.EXPLORATION]
    arm = np.zeros(n, dtype=np.int64)
    arm[exploit] = np.asarray(allocation.choice, dtype=np.int64)[exploit]
    arm[explore_rows] = explore_arms
    n_holdout, n_explore = int(holdout.sum()), int(explored.sum())
    n_exploit = n_eligible - n_holdout - n_explore
    # P(kind, arm | customer): the kind's share times the arm's chance within it (Assignment).
    share = {
        KIND_CODES[AssignmentKind.TREATMENT]: n_exploit / max(n_eligible, 1),
        KIND_CODES[AssignmentKind.HOLDOUT]: n_holdout / max(n_eligible, 1),
        KIND_CODES[AssignmentKind.EXPLORATION]: n_explore / max(n_eligible, 1) / n_arms,
    }
    propensity = np.zeros(n, dtype=np.float64)
    for code, value in share.items():
        propensity[kind == code] = value

    rows = np.flatnonzero(eligible)
    acted = (kind == KIND_CODES[AssignmentKind.TREATMENT]) | (
        kind == KIND_CODES[AssignmentKind.EXPLORATION]
    )
    picked = {
        name: np.where(acted, getattr(values, name)[np.arange(n), arm], 0.0)
        for name in ("conversions", "revenue", "spend", "profit")
    }
    expected = {name: float(picked[name].sum()) for name in picked}
    roi = expected["profit"] / expected["spend"] if expected["spend"] > 0 else None

    counts = {
        kind_name: {
            arms[a]: int(c)
            for a, c in enumerate(
                np.bincount(arm[kind == code], minlength=n_arms) if n else np.zeros(n_arms, int)
            )
            if c or kind_name != AssignmentKind.HOLDOUT
        }
        for kind_name, code in KIND_CODES.items()
    }
    row_values = {
        "conversions": picked["conversions"][rows],
        "revenue": picked["revenue"][rows],
        "cost": picked["spend"][rows],
        "profit": picked["profit"][rows],
    }
    breakdown_args = {
        "kind": kind[rows],
        "arm": arm[rows],
        "arms": arms,
        "row_values": row_values,
        "uplift": uplift[rows],
        "profit": values.profit[rows],
    }
    segments = {
        "lifecycle": _breakdown(
            groups=lifecycle[rows],
            labels=list(LIFECYCLE_SEGMENTS),
            label_key="segment",
            **breakdown_args,
        ),
        "uplift_deciles": _breakdown(
            groups=decile[rows] - 1,
            labels=list(range(1, 11)),
            label_key="decile",
            **breakdown_args,
        ),
    }
    report(80, _("Estimating its value from the randomized data already held"))
    offpolicy = strategy_offpolicy_estimate(
        merchant=campaign.merchant,
        version=version,
        customer_ids=customer_ids[rows],
        policy=arm[rows],
        arms=arms,
        coupons=coupons,
        p_convert=p_convert[rows],
        order_value=None if order_value is None else order_value[rows],
        margin_rate=float(campaign.margin_rate),
        average_order_value=aov,
        expected={name: expected[name] for name in ("profit", "conversions", "revenue")},
    )
    report(85, _("Writing the decisions"))
    path = _write_choices(
        campaign=campaign,
        columns={
            "customer_id": pa.array(customer_ids[rows], pa.int64()),
            "kind": pa.array(kind[rows], pa.int8()),
            "arm": pa.array(arm[rows].astype(np.int16), pa.int16()),
            "propensity": pa.array(propensity[rows].astype(np.float32), pa.float32()),
            "lifecycle": pa.array(lifecycle[rows].astype(np.int8), pa.int8()),
            "decile": pa.array(decile[rows].astype(np.int8), pa.int8()),
            "expected_conversions": pa.array(row_values["conversions"], pa.float32()),
            "expected_cost": pa.array(row_values["cost"], pa.float32()),
            "expected_profit": pa.array(row_values["profit"], pa.float32()),
        },
    )
    summary = {
        "scored_customers": int(scores.customer_ids.size),
        "customers": int(existing.size),
        "unscored_customers": int(existing.size - n),
        "excluded_by_audience": int(n - n_eligible),
        "exploration_wanted": int(wanted_explorers),
        "exploration_cost": exploration_cost,
        "model_cost": float(allocation.spend),
        "model_budget": remaining_budget,
        "budget_multiplier": _finite(allocation.multiplier),
        "unconstrained_spend": _finite(frontier.unconstrained_spend),
        "caps": {code: cap for code, cap in zip(arms[1:], caps, strict=True) if cap is not None},
        "order_values": "model" if order_value is not None else "average",
        "offpolicy": offpolicy,
    }
    try:
        with transaction.atomic():
            locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
            if locked.revision != revision:
                raise StrategyError(
                    _("The campaign changed while the strategy was computed: propose again.")
                )
            if locked.status == CampaignStatus.COMPLETED:
                raise StrategyError(_("The campaign has ended."))
            strategy = Strategy.objects.create(
                merchant=campaign.merchant,
                campaign=campaign,
                model_version=version,
                goal=campaign.goal,
                budget=budget_value,
                margin_rate=float(campaign.margin_rate),
                average_order_value=aov,
                holdout_share=float(campaign.holdout_share),
                exploration_share=float(campaign.exploration_share),
                campaign_revision=revision,
                arms=arms,
                seed=seed,
                eligible_customers=n_eligible,
                treated_customers=int(((arm > 0) & acted).sum()),
                holdout_customers=n_holdout,
                exploration_customers=n_explore,
                expected_conversions=expected["conversions"],
                expected_revenue=expected["revenue"],
                expected_cost=expected["spend"],
                expected_profit=expected["profit"],
                expected_roi=roi,
                counts=counts,
                segments=segments,
                frontier={
                    "unconstrained_spend": _finite(frontier.unconstrained_spend),
                    "exploration_cost": exploration_cost,
                    "curves": {name: _curve_dict(curve) for name, curve in frontier.curves.items()},
                },
                summary=summary,
                choices_path=str(path),
                job=job,
                created_by=actor if actor is not None and actor.is_authenticated else None,
            )
            if locked.status == CampaignStatus.DRAFT:
                Campaign.objects.filter(pk=locked.pk).update(status=CampaignStatus.READY)
            audit_record(
                merchant=campaign.merchant,
                actor=actor,
                verb=AuditVerb.STRATEGY_PROPOSED,
                target=f"{campaign.name} #{strategy.pk}",
                data={
                    "campaign": campaign.pk,
                    "strategy": strategy.pk,
                    "model_version": version.number,
                    "budget": str(budget_value),
                    "expected_profit": round(expected["profit"], 2),
                    "expected_cost": round(expected["spend"], 2),
                },
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    report(100, _("Proposed"))
    return strategy


def strategy_numbers(strategy: Strategy) -> dict[str, Any]:
    """The figures a manager reviews, for commands and job results."""
    return {
        "strategy": strategy.pk,
        "campaign": strategy.campaign_id,
        "model_version": strategy.model_version.number,
        "budget": str(strategy.budget),
        "eligible_customers": strategy.eligible_customers,
        "treated_customers": strategy.treated_customers,
        "holdout_customers": strategy.holdout_customers,
        "exploration_customers": strategy.exploration_customers,
        "expected_conversions": round(strategy.expected_conversions, 2),
        "expected_revenue": round(strategy.expected_revenue, 2),
        "expected_cost": round(strategy.expected_cost, 2),
        "expected_profit": round(strategy.expected_profit, 2),
        "expected_roi": None if strategy.expected_roi is None else round(strategy.expected_roi, 3),
        "counts": strategy.counts,
    }


def strategy_is_applicable(strategy: Strategy) -> bool:
    """Whether this strategy may be applied now: proposed (or rolled back) for the campaign's
    current settings, with no other strategy of the campaign applied and the campaign not over
    (``strategy_apply`` checks the same under the campaign's row lock)."""
    campaign = strategy.campaign
    return (
        strategy.status in (StrategyStatus.PROPOSED, StrategyStatus.ROLLED_BACK)
        and strategy.campaign_revision == campaign.revision
        and campaign.status in (CampaignStatus.DRAFT, CampaignStatus.READY)
        and campaign.ends_at > timezone.now()
    )
