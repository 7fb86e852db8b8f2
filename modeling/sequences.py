"""From plain event arrays to model inputs: token sequences, time gaps and static features.

Everything here is numpy and vectorized over events (no per-customer Python loop), and imports
nothing from Django: the Django side loads customers and events from the database into an
``EventArrays`` and calls ``fit_preprocessing`` (training split only) and ``transform``.

Tokens are event type x category x price bucket. The vocabulary (categories kept, price bucket
edges) and the static features' normalization are fitted on the training customers only and
saved with the model (``Preprocessing.to_dict``), so a scoring worker serves exactly what was
trained.

Sequences hold the *last* ``max_len`` events before ``as_of`` in time order, left-aligned and
RIGHT-padded with 0: a right-padded mask is what the fused cuDNN LSTM kernel accepts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "GAP_SCALE",
    "NO_CATEGORY",
    "OTHER_CATEGORY",
    "PAD_ID",
    "UNKNOWN_ID",
    "EventArrays",
    "ModelInputs",
    "Normalizer",
    "Preprocessing",
    "SequenceBatch",
    "StaticFeatureSpec",
    "Vocabulary",
    "build_sequences",
    "fit_preprocessing",
    "static_features",
    "transform",
]

PAD_ID = 0
UNKNOWN_ID = 1
_FIRST_TOKEN_ID = 2
NO_CATEGORY = ""
OTHER_CATEGORY = "<other>"
# Time gaps enter the network as log1p(hours) / GAP_SCALE: events of one session give ~0, half a
# day 0.32, three days 0.54, 90 days 0.96 — unit scale without a fitted statistic, and the days
# that matter for intent (an abandoned cart, a lapse) spread over most of the range.
GAP_SCALE = 8.0
_DAY = 86_400
_WINDOWS_DAYS = (7, 30)
_NO_EVENT_RECENCY_DAYS = 365.0


# ---------------------------------------------------------------------------------------------
# Input arrays
# ---------------------------------------------------------------------------------------------
def _seconds(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return values.astype("datetime64[s]").astype(np.int64)
    return values.astype(np.int64, copy=False)


@dataclass
class EventArrays:
    """Events of ``n_customers`` customers as flat arrays, one entry per event.

    ``customer_index`` is sorted ascending and each customer's events are in time order (the
    order a database query ``ORDER BY customer, timestamp`` returns). ``timestamp`` in int64
    seconds UTC (datetime64 is converted). ``event_type`` and ``category`` are strings, or
    integer codes into ``event_type_names`` / ``category_names`` (a negative category code = no
    category). ``price`` is NaN where the event has none; ``quantity`` (optional) NaN or 1 where
    none. Events at or after ``as_of`` (the assignment time) are ignored. ``attributes`` are
    per-customer arrays of length ``n_customers``: numbers, booleans, datetimes (turned into days
    before ``as_of``) or strings (one-hot of the frequent values).
    """

    customer_index: np.ndarray
    timestamp: np.ndarray
    event_type: np.ndarray
    category: np.ndarray
    price: np.ndarray
    n_customers: int
    as_of: int
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    quantity: np.ndarray | None = None
    event_type_names: tuple[str, ...] | None = None
    category_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.customer_index = np.asarray(self.customer_index, dtype=np.int64)
        self.timestamp = _seconds(self.timestamp)
        self.event_type = np.asarray(self.event_type)
        self.category = np.asarray(self.category)
        self.price = np.asarray(self.price, dtype=np.float64)
        self.n_customers = int(self.n_customers)
        self.as_of = int(_seconds(np.asarray(self.as_of)))
        if self.quantity is not None:
            self.quantity = np.asarray(self.quantity, dtype=np.float64)
        n_events = len(self.customer_index)
        columns = {
            "timestamp": self.timestamp,
            "event_type": self.event_type,
            "category": self.category,
            "price": self.price,
        }
        if self.quantity is not None:
            columns["quantity"] = self.quantity
        for name, values in columns.items():
            if len(values) != n_events:
                raise ValueError(f"{name} has {len(values)} entries for {n_events} events")
        for name, values in self.attributes.items():
            if len(values) != self.n_customers:
                raise ValueError(
                    f"attribute {name!r} has {len(values)} entries for {self.n_customers} customers"
                )
        if n_events and (self.customer_index[0] < 0 or self.customer_index[-1] >= self.n_customers):
            raise ValueError("customer_index out of range [0, n_customers)")
        if self.event_type.dtype.kind in "iu" and self.event_type_names is None:
            raise ValueError("integer event_type codes need event_type_names")
        if self.category.dtype.kind in "iu" and self.category_names is None:
            raise ValueError("integer category codes need category_names")
        same = self.customer_index[1:] == self.customer_index[:-1]
        if np.any(self.customer_index[1:] < self.customer_index[:-1]) or np.any(
            same & (self.timestamp[1:] < self.timestamp[:-1])
        ):
            raise ValueError("events must be sorted by customer_index, then timestamp")

    @property
    def n_events(self) -> int:
        return len(self.customer_index)

    def subset(self, customers: np.ndarray) -> EventArrays:
        """The given customers (ascending indices) renumbered 0..len-1, with their events: the
        chunk a scoring worker or a split works on."""
        customers = np.asarray(customers, dtype=np.int64)
        if np.any(np.diff(customers) <= 0):
            raise ValueError("customers must be unique and ascending")
        new_index = np.full(self.n_customers, -1, dtype=np.int64)
        new_index[customers] = np.arange(len(customers))
        mapped = new_index[self.customer_index]
        keep = mapped >= 0
        return EventArrays(
            customer_index=mapped[keep],
            timestamp=self.timestamp[keep],
            event_type=self.event_type[keep],
            category=self.category[keep],
            price=self.price[keep],
            n_customers=len(customers),
            as_of=self.as_of,
            attributes={k: np.asarray(v)[customers] for k, v in self.attributes.items()},
            quantity=None if self.quantity is None else self.quantity[keep],
            event_type_names=self.event_type_names,
            category_names=self.category_names,
        )


def _factorize(values: np.ndarray, names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """(codes into uniques, uniques as str); code -1 = missing. Integer input uses ``names``."""
    if values.dtype.kind in "iu":
        assert names is not None
        return values.astype(np.int64, copy=False), [str(n) for n in names]
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64, copy=False), [str(u) for u in uniques]


def _lookup(codes: np.ndarray, uniques: Sequence[str], table: Mapping[str, int], missing: int):
    """Map factorized codes through ``table`` (str -> id), vectorized over the events."""
    ids = np.array([table.get(u, missing) for u in uniques] + [missing], dtype=np.int64)
    return ids[np.where(codes < 0, len(uniques), codes)]


def _visible(events: EventArrays) -> np.ndarray:
    """Boolean mask of the events before ``as_of``."""
    return events.timestamp < events.as_of


def _customer_mask(n: int, customers: np.ndarray | None) -> np.ndarray:
    """Boolean mask over customers from indices or a mask (None: everyone)."""
    if customers is None:
        return np.ones(n, dtype=bool)
    customers = np.asarray(customers)
    if customers.dtype == bool:
        if len(customers) != n:
            raise ValueError(f"customer mask has {len(customers)} entries for {n} customers")
        return customers
    mask = np.zeros(n, dtype=bool)
    mask[customers.astype(np.int64)] = True
    return mask


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------
@dataclass
class Vocabulary:
    """Token ids for (event type, category, price bucket).

    id 0 is padding, 1 an event type never seen in training; then one id per combination
    ``2 + (type * n_categories + category) * n_price_buckets + bucket``. Categories: index 0 =
    none (""), 1 = "<other>" (seen fewer than ``min_count`` times in training, or never), then the
    kept ones. Price bucket 0 = no price, 1.. = between consecutive ``price_edges`` (quantiles of
    the training prices).
    """

    event_types: tuple[str, ...]
    categories: tuple[str, ...]
    price_edges: tuple[float, ...]
    min_count: int = 5

    @property
    def n_price_buckets(self) -> int:
        return len(self.price_edges) + 2

    @property
    def size(self) -> int:
        return _FIRST_TOKEN_ID + len(self.event_types) * len(self.categories) * self.n_price_buckets

    @classmethod
    def fit(
        cls,
        events: EventArrays,
        customers: np.ndarray | None = None,
        *,
        n_price_buckets: int = 8,
        min_count: int = 5,
    ) -> Vocabulary:
        """Fit on the events (before ``as_of``) of ``customers`` (indices or a mask; all when
        None) — the training customers only."""
        keep = (
            _visible(events) & _customer_mask(events.n_customers, customers)[events.customer_index]
        )
        type_codes, type_uniques = _factorize(events.event_type[keep], events.event_type_names)
        type_counts = np.bincount(type_codes[type_codes >= 0], minlength=len(type_uniques))
        event_types = tuple(sorted(u for u, c in zip(type_uniques, type_counts, strict=True) if c))
        cat_codes, cat_uniques = _factorize(events.category[keep], events.category_names)
        cat_counts = np.bincount(cat_codes[cat_codes >= 0], minlength=len(cat_uniques))
        kept = sorted(
            u
            for u, c in zip(cat_uniques, cat_counts, strict=True)
            if c >= min_count and u not in (NO_CATEGORY, OTHER_CATEGORY)
        )
        prices = events.price[keep]
        prices = prices[np.isfinite(prices)]
        if prices.size and n_price_buckets > 1:
            quantiles = np.quantile(prices, np.arange(1, n_price_buckets) / n_price_buckets)
            edges = tuple(float(e) for e in np.unique(quantiles))
        else:
            edges = ()
        return cls(
            event_types=event_types,
            categories=(NO_CATEGORY, OTHER_CATEGORY, *kept),
            price_edges=edges,
            min_count=min_count,
        )

    def event_type_ids(self, events: EventArrays, keep: np.ndarray | None = None) -> np.ndarray:
        """Index into ``event_types`` per event (-1 = unknown type)."""
        values = events.event_type if keep is None else events.event_type[keep]
        codes, uniques = _factorize(values, events.event_type_names)
        return _lookup(codes, uniques, {t: i for i, t in enumerate(self.event_types)}, -1)

    def token_ids(self, events: EventArrays, keep: np.ndarray | None = None) -> np.ndarray:
        """Token id (int64) per event, or per event where ``keep``."""
        type_id = self.event_type_ids(events, keep)
        values = events.category if keep is None else events.category[keep]
        codes, uniques = _factorize(values, events.category_names)
        table = {c: i for i, c in enumerate(self.categories)}
        table[NO_CATEGORY] = 0
        category_id = _lookup(codes, uniques, table, 1)
        # Categories that are missing (NaN / None / negative code) count as "no category".
        category_id = np.where(codes < 0, 0, category_id)
        price = events.price if keep is None else events.price[keep]
        bucket = np.where(
            np.isfinite(price),
            1 + np.searchsorted(np.asarray(self.price_edges), price, side="right"),
            0,
        )
        token = (
            _FIRST_TOKEN_ID
            + (type_id * len(self.categories) + category_id) * self.n_price_buckets
            + bucket
        )
        return np.where(type_id < 0, UNKNOWN_ID, token)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_types": list(self.event_types),
            "categories": list(self.categories),
            "price_edges": list(self.price_edges),
            "min_count": self.min_count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        return cls(
            event_types=tuple(data["event_types"]),
            categories=tuple(data["categories"]),
            price_edges=tuple(float(e) for e in data["price_edges"]),
            min_count=int(data["min_count"]),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls.from_dict(json.loads(text))


# ---------------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------------
@dataclass
class SequenceBatch:
    tokens: np.ndarray  # int32 [n, L], right-padded with PAD_ID
    gaps: np.ndarray  # float32 [n, L, 2]: log1p(hours since previous event, until as_of) / scale
    lengths: np.ndarray  # int32 [n]


def _gap_feature(seconds: np.ndarray) -> np.ndarray:
    return (np.log1p(np.maximum(seconds, 0) / 3600.0) / GAP_SCALE).astype(np.float32)


def build_sequences(events: EventArrays, vocab: Vocabulary, max_len: int = 50) -> SequenceBatch:
    """The last ``max_len`` events before ``as_of`` of every customer, in time order.

    Row i holds customer i's tokens left-aligned and right-padded with 0; ``gaps[..., 0]`` is the
    time since the customer's previous event (0 for their first event ever; the previous event may
    lie before the truncated window), ``gaps[..., 1]`` the time from the event to ``as_of``.
    Customers without events get an all-padding row and length 0.
    """
    n = events.n_customers
    keep = _visible(events)
    customer = events.customer_index[keep]
    ts = events.timestamp[keep]
    token = vocab.token_ids(events, keep)

    counts = np.bincount(customer, minlength=n)
    ends = np.cumsum(counts)
    rank_from_end = ends[customer] - 1 - np.arange(len(customer))
    lengths = np.minimum(counts, max_len)

    first_of_customer = np.ones(len(customer), dtype=bool)
    first_of_customer[1:] = customer[1:] != customer[:-1]
    previous_gap = np.zeros(len(customer), dtype=np.int64)
    previous_gap[1:] = ts[1:] - ts[:-1]
    previous_gap[first_of_customer] = 0

    inside = rank_from_end < max_len
    row = customer[inside]
    column = lengths[row] - 1 - rank_from_end[inside]

    tokens = np.zeros((n, max_len), dtype=np.int32)
    gaps = np.zeros((n, max_len, 2), dtype=np.float32)
    tokens[row, column] = token[inside]
    gaps[row, column, 0] = _gap_feature(previous_gap[inside])
    gaps[row, column, 1] = _gap_feature(events.as_of - ts[inside])
    return SequenceBatch(tokens=tokens, gaps=gaps, lengths=lengths.astype(np.int32))


# ---------------------------------------------------------------------------------------------
# Static features
# ---------------------------------------------------------------------------------------------
@dataclass
class StaticFeatureSpec:
    """Which static features exist: fitted on the training customers, saved with the model.

    RFM-style features from the events (recency, frequency, monetary, tenure, counts per event
    type in the last 7 and 30 days), numeric attributes as they are (booleans as 0/1, datetimes
    as days before ``as_of``), and one-hot columns for the frequent values of string attributes.
    """

    event_types: tuple[str, ...]
    numeric_attributes: tuple[str, ...]
    categorical_attributes: dict[str, tuple[str, ...]]
    purchase_event: str = "purchase"

    @classmethod
    def fit(
        cls,
        events: EventArrays,
        vocab: Vocabulary,
        customers: np.ndarray | None = None,
        *,
        max_levels: int = 20,
        min_count: int = 5,
        purchase_event: str = "purchase",
    ) -> StaticFeatureSpec:
        mask = _customer_mask(events.n_customers, customers)
        numeric: list[str] = []
        categorical: dict[str, tuple[str, ...]] = {}
        for name in sorted(events.attributes):
            values = np.asarray(events.attributes[name])
            if values.dtype.kind in "biufcmM":
                numeric.append(name)
                continue
            counts = pd.Series(values[mask]).astype("string").value_counts(dropna=True)
            levels = [str(v) for v, c in counts.items() if c >= min_count][:max_levels]
            if levels:
                categorical[name] = tuple(sorted(levels))
        return cls(
            event_types=vocab.event_types,
            numeric_attributes=tuple(numeric),
            categorical_attributes=categorical,
            purchase_event=purchase_event,
        )

    @property
    def feature_names(self) -> list[str]:
        names = [
            "has_events",
            "log_recency_days",
            "log_n_events",
            "log_n_purchases",
            "log_monetary",
            "log_tenure_days",
        ]
        for days in _WINDOWS_DAYS:
            names += [f"log_n_{t}_{days}d" for t in self.event_types]
        names += [f"attr_{a}" for a in self.numeric_attributes]
        for attribute, levels in self.categorical_attributes.items():
            names += [f"attr_{attribute}={level}" for level in levels]
        return names

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_types": list(self.event_types),
            "numeric_attributes": list(self.numeric_attributes),
            "categorical_attributes": {k: list(v) for k, v in self.categorical_attributes.items()},
            "purchase_event": self.purchase_event,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StaticFeatureSpec:
        return cls(
            event_types=tuple(data["event_types"]),
            numeric_attributes=tuple(data["numeric_attributes"]),
            categorical_attributes={k: tuple(v) for k, v in data["categorical_attributes"].items()},
            purchase_event=data.get("purchase_event", "purchase"),
        )


def _attribute_numbers(values: np.ndarray, as_of: int) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "M":
        seconds = values.astype("datetime64[s]")
        days = (as_of - seconds.astype(np.int64)) / _DAY
        return np.where(np.isnat(seconds), np.nan, days)
    if values.dtype.kind in "biufc":
        return values.astype(np.float64)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(np.float64)


def static_features(events: EventArrays, spec: StaticFeatureSpec) -> np.ndarray:
    """Raw (not normalized) static features, float32 [n_customers, len(spec.feature_names)];
    NaN where an attribute is missing (the ``Normalizer`` fills it with the training mean)."""
    n = events.n_customers
    keep = _visible(events)
    customer = events.customer_index[keep]
    ts = events.timestamp[keep]
    type_id = _lookup(
        *_factorize(events.event_type[keep], events.event_type_names),
        {t: i for i, t in enumerate(spec.event_types)},
        -1,
    )
    counts = np.bincount(customer, minlength=n)
    has_events = counts > 0
    last = np.full(n, np.nan)
    first = np.full(n, np.nan)
    if len(customer):
        boundary = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
        first[customer[boundary]] = ts[boundary]
        ends = np.r_[boundary[1:], len(customer)] - 1
        last[customer[ends]] = ts[ends]
    recency = np.where(has_events, (events.as_of - last) / _DAY, _NO_EVENT_RECENCY_DAYS)
    tenure = np.where(has_events, (events.as_of - first) / _DAY, 0.0)

    purchase_type = (
        spec.event_types.index(spec.purchase_event)
        if spec.purchase_event in spec.event_types
        else -2
    )
    is_purchase = type_id == purchase_type
    quantity = np.ones(len(customer)) if events.quantity is None else events.quantity[keep]
    value = np.nan_to_num(events.price[keep]) * np.nan_to_num(quantity, nan=1.0)
    n_purchases = np.bincount(customer[is_purchase], minlength=n)
    monetary = np.bincount(customer[is_purchase], weights=value[is_purchase], minlength=n)

    columns = [
        has_events.astype(np.float64),
        np.log1p(recency),
        np.log1p(counts),
        np.log1p(n_purchases),
        np.log1p(np.maximum(monetary, 0.0)),
        np.log1p(tenure),
    ]
    age_days = (events.as_of - ts) / _DAY
    n_types = len(spec.event_types)
    for days in _WINDOWS_DAYS:
        recent = (age_days <= days) & (type_id >= 0)
        by_type = np.bincount(
            customer[recent] * n_types + type_id[recent], minlength=n * n_types
        ).reshape(n, n_types)
        columns += list(np.log1p(by_type).T)
    for name in spec.numeric_attributes:
        values = events.attributes.get(name)
        columns.append(
            np.full(n, np.nan) if values is None else _attribute_numbers(values, events.as_of)
        )
    for name, levels in spec.categorical_attributes.items():
        values = events.attributes.get(name)
        if values is None:
            columns += [np.zeros(n)] * len(levels)
            continue
        codes = pd.Categorical(pd.Series(values).astype("string"), categories=list(levels)).codes
        columns += [(codes == i).astype(np.float64) for i in range(len(levels))]
    if not columns:
        return np.zeros((n, 0), dtype=np.float32)
    return np.stack(columns, axis=1).astype(np.float32)


@dataclass
class Normalizer:
    """Standardization with statistics from the training rows; NaN becomes the training mean."""

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str]) -> Normalizer:
        x = np.asarray(x, dtype=np.float64)
        finite = np.isfinite(x)
        count = finite.sum(axis=0)
        total = np.where(finite, x, 0.0).sum(axis=0)
        mean = np.divide(total, count, out=np.zeros(x.shape[1]), where=count > 0)
        centered = np.where(finite, x - mean, 0.0)
        var = np.divide((centered**2).sum(axis=0), count, out=np.zeros(x.shape[1]), where=count > 0)
        std = np.sqrt(var)
        std = np.where(std > 1e-9, std, 1.0)
        return cls(names=tuple(names), mean=mean, std=std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] != len(self.names):
            raise ValueError(f"expected {len(self.names)} features, got {x.shape[1]}")
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        # Missing values land on the mean (0); far outliers are clipped so one odd customer
        # cannot saturate the network.
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=10.0, neginf=-10.0), -10, 10).astype(
            np.float32
        )

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalizer:
        return cls(
            names=tuple(data["names"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            std=np.asarray(data["std"], dtype=np.float64),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Normalizer:
        return cls.from_dict(json.loads(text))


# ---------------------------------------------------------------------------------------------
# Everything together
# ---------------------------------------------------------------------------------------------
@dataclass
class ModelInputs:
    """What the network eats, one row per customer."""

    tokens: np.ndarray  # int32 [n, L]
    gaps: np.ndarray  # float32 [n, L, 2]
    lengths: np.ndarray  # int32 [n]
    static: np.ndarray  # float32 [n, F], normalized

    def __len__(self) -> int:
        return len(self.tokens)

    def as_keras(self) -> dict[str, np.ndarray]:
        return {"tokens": self.tokens, "gaps": self.gaps, "static": self.static}

    def take(self, rows: np.ndarray) -> ModelInputs:
        return ModelInputs(
            tokens=self.tokens[rows],
            gaps=self.gaps[rows],
            lengths=self.lengths[rows],
            static=self.static[rows],
        )


@dataclass
class Preprocessing:
    """Everything fitted on the training split that scoring must reuse."""

    vocabulary: Vocabulary
    static_spec: StaticFeatureSpec
    normalizer: Normalizer
    max_len: int

    @property
    def feature_names(self) -> list[str]:
        return list(self.normalizer.names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "vocabulary": self.vocabulary.to_dict(),
            "static_spec": self.static_spec.to_dict(),
            "normalizer": self.normalizer.to_dict(),
            "max_len": self.max_len,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        return cls(
            vocabulary=Vocabulary.from_dict(data["vocabulary"]),
            static_spec=StaticFeatureSpec.from_dict(data["static_spec"]),
            normalizer=Normalizer.from_dict(data["normalizer"]),
            max_len=int(data["max_len"]),
        )


def fit_preprocessing(
    events: EventArrays,
    train_customers: np.ndarray | Iterable[int] | None = None,
    *,
    max_len: int = 50,
    n_price_buckets: int = 8,
    min_count: int = 5,
    max_levels: int = 20,
) -> Preprocessing:
    """Fit vocabulary, static feature spec and normalizer on the training customers only."""
    customers = None
    if train_customers is not None:
        customers = np.asarray(
            train_customers if isinstance(train_customers, np.ndarray) else list(train_customers)
        )
    vocab = Vocabulary.fit(events, customers, n_price_buckets=n_price_buckets, min_count=min_count)
    spec = StaticFeatureSpec.fit(
        events, vocab, customers, max_levels=max_levels, min_count=min_count
    )
    raw = static_features(events, spec)
    rows = _customer_mask(events.n_customers, customers)
    normalizer = Normalizer.fit(raw[rows], spec.feature_names)
    return Preprocessing(vocabulary=vocab, static_spec=spec, normalizer=normalizer, max_len=max_len)


def transform(events: EventArrays, preprocessing: Preprocessing) -> ModelInputs:
    """Model inputs for every customer of ``events`` with the fitted preprocessing."""
    batch = build_sequences(events, preprocessing.vocabulary, preprocessing.max_len)
    static = preprocessing.normalizer.transform(static_features(events, preprocessing.static_spec))
    return ModelInputs(tokens=batch.tokens, gaps=batch.gaps, lengths=batch.lengths, static=static)
