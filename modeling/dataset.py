"""A merchant's stored customers, events and treatments as arrays for the ML core.

The Django side of the model pipeline: it reads the database (COPY on PostgreSQL; events in the
order of their primary key, so no sort is needed) and hands plain numpy arrays to the core
modules, which import nothing from Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
from django.db import connection
from django.db.models import Max

from campaigns.choices import CONTROL_ARM, AssignmentKind, StrategyStatus, TreatmentSource
from campaigns.models import CouponType, Customer, Merchant
from modeling.sequences import EventArrays
from promo_portal.arrow_sql import epoch_seconds, read_arrow

# Event types and categories are read dictionary-encoded: integer codes and the few names they
# stand for, never a Python string per event (30M of them at 1M customers).
_CODES = pa.dictionary(pa.int32(), pa.string())
_EVENT_TYPES = {
    "customer_id": pa.int64(),
    "ts": pa.int64(),
    "event_type": _CODES,
    "category": _CODES,
    "price": pa.float64(),
    "quantity": pa.float64(),  # NaN where the shop did not say (counts as 1)
}
_CUSTOMER_TYPES = {"id": pa.int64(), "external_id": pa.string(), "attributes": pa.string()}
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
    # customer_index, timestamp (s), event_type and category (int codes into the names below),
    # price, quantity
    events: dict[str, np.ndarray]
    treatments: dict[str, np.ndarray]  # customer_index, arm, assigned_at (s), propensity, ...
    arms: list[str] = field(default_factory=list)  # "control" first, then the coupon codes
    event_type_names: tuple[str, ...] = ()
    category_names: tuple[str, ...] = ()

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
            quantity=self.events["quantity"],
            n_customers=self.n_customers,
            as_of=as_of,
            attributes={str(c): self.attributes[c].to_numpy() for c in self.attributes.columns},
            event_type_names=self.event_type_names,
            category_names=self.category_names,
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
    customers = read_arrow(
        f"""SELECT id, external_id, attributes FROM {Customer._meta.db_table}
        WHERE merchant_id = %s AND id BETWEEN %s AND %s ORDER BY id""",
        [merchant.pk, first, last],
        _CUSTOMER_TYPES,
    )
    customer_ids = _np(customers, "id")
    events = read_arrow(
        f"""SELECT customer_id, {epoch_seconds("timestamp")} AS ts, event_type, category, price,
            quantity FROM campaigns_event WHERE merchant_id = %s AND customer_id BETWEEN %s AND %s
        ORDER BY merchant_id, customer_id, timestamp, fingerprint""",
        [merchant.pk, first, last],
        _EVENT_TYPES,
    )
    treatments = merchant_treatment_rows(
        merchant=merchant, customer_range=(first, last), with_treatments=with_treatments
    )
    codes = CouponType.objects.filter(merchant=merchant).order_by("code")
    event_types, event_type_names = _dictionary_codes(events, "event_type")
    categories, category_names = _dictionary_codes(events, "category")
    return MerchantData(
        customer_ids=customer_ids,
        external_ids=_np(customers, "external_id"),
        attributes=_attribute_frame(customers.column("attributes"), index=customer_ids),
        events={
            "customer_index": np.searchsorted(customer_ids, _np(events, "customer_id")),
            "timestamp": _np(events, "ts"),
            "event_type": event_types,
            "category": categories,
            "price": _np(events, "price"),  # float64 as read (NaN where none)
            "quantity": _np(events, "quantity"),
        },
        treatments={
            "customer_index": np.searchsorted(customer_ids, treatments["customer_id"]),
            **{name: values for name, values in treatments.items() if name != "customer_id"},
        },
        arms=[CONTROL_ARM, *codes.values_list("code", flat=True)],
        event_type_names=event_type_names,
        category_names=category_names,
    )


def merchant_treatment_rows(
    *,
    merchant: Merchant,
    customer_range: tuple[int, int] | None = None,
    with_treatments: bool = True,
) -> dict[str, np.ndarray]:
    """Every randomized row the merchant holds, sorted by customer and time: the treatment log
    (imported history, API pushes) and the holdout and exploration rows of applied strategies
    whose outcomes are in (``campaign_randomized_rows``).

    Columns: ``customer_id`` (database id), ``arm`` (a coupon code or control),
    ``assigned_at`` (s), ``propensity``, ``converted``, ``revenue`` (net, 0 without an order),
    ``source`` (``TreatmentSource``) and ``redeemed`` (int8: 1 / 0, -1 where the log does not
    say)."""
    first, last = customer_range or (0, 2**62)
    logged = read_arrow(
        f"""SELECT t.customer_id, COALESCE(ct.code, %s) AS arm,
            {epoch_seconds("t.assigned_at")} AS assigned_at, t.propensity, t.converted, t.revenue,
            t.source
        FROM campaigns_treatmentlog t
        LEFT JOIN campaigns_coupontype ct ON ct.id = t.coupon_type_id
        WHERE t.merchant_id = %s AND t.customer_id BETWEEN %s AND %s AND %s
        ORDER BY t.customer_id, t.assigned_at""",
        [CONTROL_ARM, merchant.pk, first, last, with_treatments],  # False: no rows, same shape
        _TREATMENT_TYPES,
    )
    rows = {name: _np(logged, name) for name in _TREATMENT_TYPES}
    rows["redeemed"] = np.full(len(rows["customer_id"]), -1, dtype=np.int8)
    if with_treatments:
        extra = campaign_randomized_rows(merchant=merchant, customer_range=(first, last))
        if len(extra["customer_id"]):
            rows = {name: np.concatenate([rows[name], extra[name]]) for name in rows}
            order = np.lexsort((rows["assigned_at"], rows["customer_id"]))
            rows = {name: values[order] for name, values in rows.items()}
    return rows


def campaign_randomized_rows(
    *, merchant: Merchant, customer_range: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """The holdout and exploration rows of the merchant's applied strategies whose outcomes
    came in (a ``RealizedResult`` exists), in the columns of ``merchant_treatment_rows``.

    What happened is counted as the realized results count it (campaigns/results.py): every
    order the customer placed inside the assignment's attribution window (from the later of the
    assignment and the campaign's start, for the campaign's ``attribution_window_days``) makes
    them converted, their net revenues add up, and the code is redeemed when an order carrying
    it was attributed to this assignment. A window still open counts the orders in so far.

    The propensity is that of the row's arm given that the customer was held out or explored:
    both are random draws among the eligible customers, so within them no coupon has
    ``(h + x / (k + 1)) / (h + x)`` and each of the k coupons ``x / (k + 1) / (h + x)``, with h
    and x the strategy's holdout and exploration counts. The rows the model chose for are left
    out: their arm followed the model's scores, not a logged random draw."""
    from campaigns.models import RealizedResult, Strategy
    from campaigns.selectors import strategy_assignments, strategy_orders

    first, last = customer_range or (0, 2**62)
    strategies = list(
        Strategy.objects.filter(
            merchant=merchant,
            status=StrategyStatus.APPLIED,
            pk__in=RealizedResult.objects.values("strategy_id"),
        ).select_related("campaign")
    )
    parts = []
    randomized = [AssignmentKind.HOLDOUT, AssignmentKind.EXPLORATION]
    for strategy in strategies:
        logged = strategy_assignments(
            strategy=strategy, kinds=randomized, customer_range=(first, last)
        )
        if not logged.num_rows:
            continue
        ids = _np(logged, "id")
        customers = _np(logged, "customer_id")
        assigned_s = _np(logged, "assigned_at") // 1_000_000
        opens = np.maximum(assigned_s, int(strategy.campaign.starts_at.timestamp()))
        closes = opens + int(strategy.campaign.attribution_window_days) * 86_400
        orders = strategy_orders(
            strategy=strategy,
            start=_utc(int(opens.min())),
            end=_utc(int(closes.max())),
            kinds=randomized,
        )
        converted = np.zeros(ids.size, dtype=bool)
        revenue = np.zeros(ids.size)
        redeemed = np.zeros(ids.size, dtype=np.int8)
        if orders.num_rows:
            o_customer = _np(orders, "customer_id")
            row = np.searchsorted(customers, o_customer)
            row = np.minimum(row, customers.size - 1)
            ts = _np(orders, "ordered_at") // 1_000_000
            inside = (customers[row] == o_customer) & (opens[row] <= ts)
            inside &= ts < closes[row]
            net = _np(orders, "revenue")
            attributed = _np(orders, "assignment_id", fill=-1)
            coded = _np(orders, "code") != ""
            # Its own code, attributed to this very assignment (the import checked it).
            own = coded & (attributed == ids[row])
            converted[row[inside]] = True
            np.add.at(revenue, row[inside], net[inside])
            np.maximum.at(redeemed, row[inside], own[inside].astype(np.int8))
        n_holdout, n_explore = strategy.holdout_customers, strategy.exploration_customers
        k = max(len(strategy.arms or []) - 1, 1)
        randomized_count = max(n_holdout + n_explore, 1)
        per_arm = n_explore / (k + 1) / randomized_count
        codes = _np(logged, "code")
        arm = np.where(codes == "", CONTROL_ARM, codes).astype(object)
        kinds = _np(logged, "kind").astype(object)
        propensity = np.where(arm == CONTROL_ARM, n_holdout / randomized_count + per_arm, per_arm)
        parts.append(
            {
                "customer_id": customers,
                "arm": arm,
                "assigned_at": assigned_s,
                "propensity": np.clip(propensity, 1e-9, 1.0),
                "converted": converted,
                "revenue": revenue,
                "source": np.where(
                    kinds == AssignmentKind.HOLDOUT,
                    TreatmentSource.HOLDOUT.value,
                    TreatmentSource.EXPLORATION.value,
                ).astype(object),
                "redeemed": redeemed,
            }
        )
    if not parts:
        return _empty_rows()
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _empty_rows() -> dict[str, np.ndarray]:
    return {
        "customer_id": np.zeros(0, dtype=np.int64),
        "arm": np.zeros(0, dtype=object),
        "assigned_at": np.zeros(0, dtype=np.int64),
        "propensity": np.zeros(0, dtype=np.float64),
        "converted": np.zeros(0, dtype=bool),
        "revenue": np.zeros(0, dtype=np.float64),
        "source": np.zeros(0, dtype=object),
        "redeemed": np.zeros(0, dtype=np.int8),
    }


def _attribute_frame(texts: pa.ChunkedArray, *, index: np.ndarray) -> pd.DataFrame:
    """One row per customer, one column per attribute, from the attributes' stored JSON texts:
    decoded in one ``json.loads`` of all of them (a JSON array), not one call per customer."""
    joined = ",".join(text or "null" for text in texts.to_pylist())
    records = json.loads(f"[{joined}]")
    return pd.DataFrame.from_records([r or {} for r in records], index=index)


def _dictionary_codes(table: pa.Table, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """A dictionary-encoded text column (NOT NULL in the database) as (int32 codes, the names
    they index)."""
    column = table.column(name).combine_chunks()  # one dictionary for all the CSV's blocks
    names = tuple(str(n) for n in column.dictionary.to_pylist())
    return column.indices.to_numpy(), names  # int32, as _CODES reads them


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
            f"SELECT MAX({epoch_seconds('timestamp')}) FROM campaigns_event WHERE merchant_id = %s",
            [merchant.pk],
        )
        value = cursor.fetchone()[0]
    return int(value) if value is not None else None
