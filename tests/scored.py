"""A merchant with customers, coupon types and a champion model whose scores are known.

Strategy and assignment tests need a scored model, but not its training: this writes the score
chunk files a scoring job writes (the layout of ``modeling.scoring_service.score_chunk``:
``customer_id``, ``lifecycle``, ``p_<arm>``, ``ov_<arm>``) from chosen numbers, so the tests can
check the allocation against them. The end-to-end test trains and scores a real model instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.utils import timezone

from campaigns.models import CouponType, Customer, Merchant
from modeling.models import ModelVersion, ScoreChunk
from modeling.segments import LIFECYCLE_SEGMENTS

COUPONS = (
    ("PCT10", "percent_off", 10, 0),
    ("AMT20", "amount_off", 20, 0),
    ("SPEND199_30", "threshold_off", 30, 199),
)


@dataclass
class Scored:
    merchant: Merchant
    version: ModelVersion
    customer_ids: np.ndarray
    arms: list[str]
    p_convert: np.ndarray
    order_value: np.ndarray
    lifecycle: np.ndarray


def scored_merchant(
    merchant: Merchant,
    *,
    customers: int = 300,
    seed: int = 0,
    coupons=COUPONS,
    chunk_size: int = 128,
    attributes=None,
) -> Scored:
    """Create ``customers`` customers, the coupon types and a scored champion model."""
    rng = np.random.default_rng(seed)
    for code, kind, value, min_spend in coupons:
        CouponType.objects.get_or_create(
            merchant=merchant,
            code=code,
            defaults={"name": code, "kind": kind, "value": value, "min_spend": min_spend},
        )
    Customer.objects.bulk_create(
        Customer(
            merchant=merchant,
            external_id=f"C{i:05d}",
            attributes=attributes(i) if attributes else {"member": bool(i % 2)},
        )
        for i in range(customers)
    )
    ids = np.array(
        sorted(Customer.objects.filter(merchant=merchant).values_list("id", flat=True)),
        dtype=np.int64,
    )
    arms = ["control", *(c[0] for c in coupons)]
    base = rng.uniform(0.02, 0.3, size=ids.size)
    lift = rng.normal(0.03, 0.05, size=(ids.size, len(arms) - 1))
    p = np.clip(np.column_stack([base, base[:, None] + lift]), 0.001, 0.95).astype(np.float32)
    value = rng.lognormal(np.log(150), 0.4, size=(ids.size, 1)) * rng.uniform(
        0.95, 1.15, size=(ids.size, len(arms))
    )
    value = value.astype(np.float32)
    lifecycle = rng.integers(0, len(LIFECYCLE_SEGMENTS), size=ids.size).astype(np.int8)
    folder = Path(settings.MODEL_ARTIFACT_ROOT) / f"scored-{merchant.slug}-{seed}"
    version = ModelVersion.objects.create(
        merchant=merchant,
        number=(ModelVersion.objects.filter(merchant=merchant).count() + 1),
        status="ready",
        arms=arms,
        artifact_path=str(folder),
        scored_at=timezone.now(),
    )
    if not ModelVersion.objects.filter(merchant=merchant, is_champion=True).exists():
        ModelVersion.objects.filter(pk=version.pk).update(is_champion=True)
    (folder / "scores").mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, ids.size, chunk_size)):
        rows = slice(start, start + chunk_size)
        columns = {
            "customer_id": pa.array(ids[rows], pa.int64()),
            "lifecycle": pa.array(lifecycle[rows], pa.int8()),
        }
        for a, arm in enumerate(arms):
            columns[f"p_{arm}"] = pa.array(p[rows, a], pa.float32())
            columns[f"ov_{arm}"] = pa.array(value[rows, a], pa.float32())
        path = folder / "scores" / f"chunk-{index:05d}.parquet"
        pq.write_table(pa.table(columns), path)
        ScoreChunk.objects.create(
            version=version,
            index=index,
            first_customer_id=int(ids[rows][0]),
            last_customer_id=int(ids[rows][-1]),
            rows=int(ids[rows].size),
            path=str(path),
        )
    version.refresh_from_db()
    return Scored(merchant, version, ids, arms, p, value, lifecycle)
