"""Simulated merchants: the ground-truth simulator's data loaded through the real import path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction

from campaigns.choices import CONTROL_ARM, AssignmentKind, ImportSource, ImportStatus
from campaigns.imports.service import import_create_from_file, import_run
from campaigns.models import Assignment, CouponType, DataImport, Merchant, Strategy
from campaigns.services import coupon_type_create
from modeling.simulation import (
    GroundTruth,
    NextPeriod,
    SimulatedMerchant,
    load_ground_truth,
    play_next_period,
    simulate_merchant,
    write_csvs,
    write_outcomes_csv,
)


class SimulationImportError(Exception):
    pass


def simulation_dir(merchant: Merchant) -> Path:
    """Where a simulated merchant's CSV files and ground truth (ground_truth.npz) are kept."""
    return Path(settings.MEDIA_ROOT) / "simulations" / merchant.slug


def merchant_load_simulation(
    *, merchant: Merchant, customers: int, seed: int, report: Callable[[str], None] = print
) -> SimulatedMerchant:
    """Simulate ``customers`` and import them, their events and the experiment into ``merchant``."""
    simulation = simulate_merchant(customers, seed)
    paths = write_csvs(simulation, simulation_dir(merchant))
    _create_coupon_types(merchant, simulation)
    for kind in ("customers", "events", "treatments"):
        data_import = _import_file(merchant=merchant, kind=kind, path=paths[kind], actor=None)
        report(f"  {kind}: {data_import.message}")
    return simulation


@transaction.atomic
def _create_coupon_types(merchant: Merchant, simulation: SimulatedMerchant) -> None:
    existing = set(CouponType.objects.filter(merchant=merchant).values_list("code", flat=True))
    for spec in simulation.coupons:
        if spec.code in existing:
            continue
        value, min_spend = spec.value, spec.min_spend
        if spec.kind == "free_shipping":
            # The merchant absorbs the shipping fee on orders below the free-shipping level.
            value, min_spend = simulation.shipping_fee, simulation.free_shipping_level
        coupon_type_create(
            merchant=merchant,
            actor=None,
            code=spec.code,
            name=spec.name,
            kind=spec.kind,
            value=value,
            min_spend=min_spend,
            validity_days=spec.validity_days,
            per_customer_limit=spec.per_customer_limit,
        )


# --- the next period ----------------------------------------------------------------------------


@dataclass
class SimulatedOutcomes:
    """What the simulator drew for an applied strategy's period, and the truth to judge by."""

    path: Path  # the outcomes CSV (customer_id, order_id, ordered_at, revenue, code)
    period: NextPeriod  # per assignment, in ``kind``'s order
    kind: np.ndarray  # the assignment kind per customer (AssignmentKind values)

    @property
    def not_held_out(self) -> np.ndarray:
        return self.kind != AssignmentKind.HOLDOUT

    def true_totals(self) -> dict[str, float]:
        """The TRUE expected incremental profit (and conversions, revenue, cost) of what the
        customers who were not held out got, against no coupon: what the realized results
        measure against the holdout (campaigns/results.py)."""
        return self.period.true_totals(self.not_held_out)


def merchant_ground_truth(*, merchant: Merchant) -> GroundTruth:
    """A simulated merchant's ground truth, as ``merchant_load_simulation`` kept it."""
    path = simulation_dir(merchant) / "ground_truth.npz"
    if not path.is_file():
        raise SimulationImportError(
            f"{merchant.slug} has no ground truth at {path}: it was not loaded from the simulator."
        )
    return load_ground_truth(path)


def strategy_simulate_outcomes(
    *, strategy: Strategy, seed: int, truth: GroundTruth | None = None
) -> SimulatedOutcomes:
    """Play the period after an applied strategy from the merchant's ground truth
    (``modeling.simulation.play_next_period``) and write its orders as an outcomes CSV beside
    the merchant's simulation files, ready for the outcomes import.

    The period starts when the strategy's coupons could first be used (the later of the
    assignment and the campaign's start, as the attribution window does) and lasts the
    shorter of the truth's outcome window and the campaign's attribution window, so every
    order it draws counts for the campaign."""
    truth = truth or merchant_ground_truth(merchant=strategy.merchant)
    campaign = strategy.campaign
    rows = list(
        Assignment.objects.filter(strategy=strategy)
        .order_by("customer_id")
        .values_list("customer__external_id", "coupon_type__code", "code", "kind", "assigned_at")
        .iterator(chunk_size=50_000)
    )
    if not rows:
        raise SimulationImportError(f"Strategy #{strategy.pk} has no assignments to play.")
    external, arms, codes, kinds, assigned = zip(*rows, strict=True)
    opens = max(max(assigned), campaign.starts_at)
    start = np.datetime64(pd.Timestamp(opens).tz_convert("UTC").tz_localize(None), "s")
    if pd.Timestamp(opens).microsecond:
        start += np.timedelta64(1, "s")  # whole seconds, never before the window opens
    period = play_next_period(
        truth,
        np.asarray(external, dtype=object),
        np.asarray([arm or CONTROL_ARM for arm in arms], dtype=object),
        np.asarray([code or "" for code in codes], dtype=object),
        start=start,
        margin_rate=float(strategy.margin_rate),
        seed=seed,
        days=min(truth.outcome_window_days, int(campaign.attribution_window_days)),
        order_prefix=f"S{strategy.pk}-{seed}-",
    )
    path = simulation_dir(strategy.merchant) / f"outcomes-strategy-{strategy.pk}-seed-{seed}.csv"
    write_outcomes_csv(period, path)
    return SimulatedOutcomes(path=path, period=period, kind=np.asarray(kinds, dtype=object))


def merchant_import_outcomes(*, merchant: Merchant, path: Path, actor=None):
    """Import an outcomes CSV through the import service (all or nothing; the realized results
    of the strategies it touches are recomputed by the import)."""
    return _import_file(merchant=merchant, kind="outcomes", path=Path(path), actor=actor)


def _import_file(*, merchant: Merchant, kind: str, path: Path, actor) -> DataImport:
    """Run one simulated CSV through the import service; SimulationImportError on failure."""
    data_import = import_create_from_file(
        merchant=merchant,
        kind=kind,
        path=path,
        filename=path.name,
        actor=actor,
        source=ImportSource.COMMAND,
    )
    data_import = import_run(data_import=data_import)
    if data_import.status != ImportStatus.SUCCEEDED:
        shown = "; ".join(
            f"line {e.get('line')}, {e.get('column')} {e.get('value')!r}: {e.get('reason')}"
            for e in data_import.errors[:5]
        )
        raise SimulationImportError(
            f"Importing {kind} failed: {data_import.message} {shown}".strip()
        )
    return data_import
