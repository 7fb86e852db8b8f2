"""Simulated merchants: the ground-truth simulator's data loaded through the real import path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from campaigns.choices import ImportSource, ImportStatus
from campaigns.imports.service import import_create_from_file, import_run
from campaigns.models import CouponType, Merchant
from campaigns.services import coupon_type_create
from modeling.simulation import SimulatedMerchant, simulate_merchant, write_csvs


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
        data_import = import_create_from_file(
            merchant=merchant,
            kind=kind,
            path=paths[kind],
            filename=paths[kind].name,
            actor=None,
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
