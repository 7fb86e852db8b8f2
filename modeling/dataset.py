"""A merchant's stored customers, events and treatments as arrays for the ML core.

The Django side of the model pipeline: it reads the database (COPY on PostgreSQL; events in the
order of their primary key, so no sort is needed) and hands plain numpy arrays to the core
modules, which import nothing from Django.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from django.db import connection
from django.db.models import Max

from campaigns.choices import CONTROL_ARM
from campaigns.models import CouponType, Customer, Merchant
from modeling.sequences import EventArrays

_EVENT_TYPES = {
    "customer_id": pa.int64(),
    "ts": pa.int64(),
    "event_type": pa.string(),
    "category": pa.string(),
    "price": pa.float64(),
}
_TREATMENT_TYPES = {
    "customer_id": pa.int64(),
    "arm": pa.string(),
    "assigned_at": pa.int64(),
    "propensity": pa.float64(),
    "converted": pa.bool_(),
    "revenue": pa.float64(),
    "source": pa.string(),
}


@dataclass
class MerchantData:
    """Customers (by position), their events in time order, and the treatment logs."""

    customer_ids: np.ndarray  # int64 database ids, ascending; a customer's index is its position
    external_ids: np.ndarray  # the shop's ids, in the same order
    attributes: pd.DataFrame  # one row per customer, one column per attribute
    events: dict[str, np.ndarray]  # customer_index, timestamp (s), event_type, category, price
    treatments: dict[str, np.ndarray]  # customer_index, arm, assigned_at (s), propensity, ...
    arms: list[str] = field(default_factory=list)  # "control" first, then the coupon codes

    @property
    def n_customers(self) -> int:
        return int(self.customer_ids.size)

    def event_arrays(self, *, as_of: int) -> EventArrays:
        """The ML core's view of these customers' events before ``as_of`` (seconds)."""
        return EventArrays(
            customer_index=self.events["customer_index"],
            timestamp=self.events["timestamp"],
            event_type=self.events["event_type"],
            category=self.events["category"],
            price=self.events["price"],
            n_customers=self.n_customers,
            as_of=as_of,
            attributes={str(c): self.attributes[c].to_numpy() for c in self.attributes.columns},
        )


def merchant_data_load(
    *,
    merchant: Merchant,
    customer_range: tuple[int, int] | None = None,
    with_treatments: bool = True,
) -> MerchantData:
    """Everything the model trains and scores on, for one merchant; with ``customer_range``
    (first and last customer id, inclusive) only those customers, for scoring in chunks;
    ``with_treatments=False`` leaves the treatment log out (scoring does not read it)."""
    first, last = customer_range or (0, 2**62)
    rows = list(
        Customer.objects.filter(merchant=merchant, id__gte=first, id__lte=last)
        .order_by("id")
        .values_list("id", "external_id", "attributes")
        .iterator(chunk_size=50_000)
    )
    customer_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    events = _read(
        f"""SELECT customer_id, {_epoch("timestamp")} AS ts, event_type, category, price
        FROM campaigns_event WHERE merchant_id = %s AND customer_id BETWEEN %s AND %s
        ORDER BY merchant_id, customer_id, timestamp, fingerprint""",
        [merchant.pk, first, last],
        _EVENT_TYPES,
    )
    treatments = _read(
        f"""SELECT t.customer_id, COALESCE(ct.code, %s) AS arm,
            {_epoch("t.assigned_at")} AS assigned_at, t.propensity, t.converted, t.revenue,
            t.source
        FROM campaigns_treatmentlog t
        LEFT JOIN campaigns_coupontype ct ON ct.id = t.coupon_type_id
        WHERE t.merchant_id = %s AND t.customer_id BETWEEN %s AND %s AND %s
        ORDER BY t.customer_id, t.assigned_at""",
        [CONTROL_ARM, merchant.pk, first, last, with_treatments],  # False: no rows, same shape
        _TREATMENT_TYPES,
    )
    codes = CouponType.objects.filter(merchant=merchant).order_by("code")
    return MerchantData(
        customer_ids=customer_ids,
        external_ids=np.array([r[1] for r in rows], dtype=object),
        attributes=pd.DataFrame.from_records([r[2] or {} for r in rows], index=customer_ids),
        events={
            "customer_index": np.searchsorted(customer_ids, _np(events, "customer_id")),
            "timestamp": _np(events, "ts"),
            "event_type": _np(events, "event_type"),
            "category": _np(events, "category", fill=""),
            "price": _np(events, "price").astype(np.float64),
        },
        treatments={
            "customer_index": np.searchsorted(customer_ids, _np(treatments, "customer_id")),
            **{name: _np(treatments, name) for name in list(_TREATMENT_TYPES)[1:]},
        },
        arms=[CONTROL_ARM, *codes.values_list("code", flat=True)],
    )


def _epoch(column: str) -> str:
    """SQL for a timestamp column as whole seconds since the epoch (UTC)."""
    if connection.vendor == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS bigint)"
    return f"CAST(strftime('%%s', {column}) AS integer)"


def _read(sql: str, params: list, types: dict[str, pa.DataType]) -> pa.Table:
    names = list(types)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            buffer = io.BytesIO()
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy:
                for block in copy:
                    buffer.write(block)
            if buffer.tell() == 0:
                return pa.table({name: pa.array([], kind) for name, kind in types.items()})
            buffer.seek(0)
            return pacsv.read_csv(
                buffer,
                read_options=pacsv.ReadOptions(column_names=names),
                convert_options=pacsv.ConvertOptions(
                    column_types=types, true_values=["t"], false_values=["f"]
                ),
            )
        cursor.execute(sql, params)
        columns = list(zip(*cursor.fetchall(), strict=True)) or [[] for _ in names]
    return pa.table(
        {
            name: pa.array([bool(v) if kind == pa.bool_() else v for v in values], kind)
            for (name, kind), values in zip(types.items(), columns, strict=True)
        }
    )


def _np(table: pa.Table, name: str, fill=None) -> np.ndarray:
    column = table.column(name)
    if fill is not None:
        column = column.fill_null(fill)
    return column.to_numpy(zero_copy_only=False)


def merchant_latest_event_time(*, merchant: Merchant) -> int | None:
    """Seconds since the epoch of the merchant's newest event: "now" for its data.

    Read from the customers' last-seen times, which every event import widens: one row per
    customer instead of a scan of every event (30M at 1M customers). Events written around the
    import service (fixtures) leave them empty: then the events are scanned."""
    latest = Customer.objects.filter(merchant=merchant).aggregate(latest=Max("last_seen_at"))
    if latest["latest"] is not None:
        return int(latest["latest"].timestamp())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MAX({_epoch('timestamp')}) FROM campaigns_event WHERE merchant_id = %s",
            [merchant.pk],
        )
        value = cursor.fetchone()[0]
    return int(value) if value is not None else None
