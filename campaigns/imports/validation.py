"""Check and type one chunk of text columns, vectorized (pyarrow compute, numpy, pandas).

No Django here but its translations: a chunk goes in with its source lines, a typed table for
staging and a list of problems (line, column, value, reason) come out, the reasons in the active
language. Nothing is written anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from django.utils.translation import gettext as _

from .attribution import AttributionIndex, attribute
from .reading import LINE_COLUMN, UNMAPPED_PREFIX
from .schema import ATTRIBUTE_MAX_LENGTH, ID_MAX_LENGTH, SCHEMAS, TEXT_MAX_LENGTH, Schema

CONTROL = "control"
TRUE_WORDS = ["1", "true", "t", "yes", "y", "是", "真"]
FALSE_WORDS = ["0", "false", "f", "no", "n", "否", "假"]
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_CANONICAL_NUMBER = r"^-?(0|[1-9]\d*)(\.\d+)?$"  # no leading zeros: "01234" stays text
_WHOLE = r"^\+?\d+(\.0*)?$"
_ZONE_SUFFIX = r"(Z|z|[+-]\d{2}:?\d{2})$"
MONEY_MAX = 999_999_999_999.99  # the most a money column (14 digits, 2 decimals) holds


@dataclass
class Context:
    timezone: str  # naive timestamps are in the merchant's time zone
    event_types: frozenset[str] = frozenset()
    arms: frozenset[str] = frozenset()  # coupon codes (upper case) and "control"
    # outcomes: the assignments the orders may be attributed to (attribution.py)
    attribution: AttributionIndex | None = None


@dataclass
class Problems:
    """Row-level problems. All are counted; the first ``keep`` are kept for the report."""

    keep: int = 10_000
    lines: list[np.ndarray] = field(default_factory=list)
    columns: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    reasons: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    kept: int = 0

    def add(self, mask: np.ndarray, lines: np.ndarray, column: str, values, reason: str) -> None:
        picked = np.flatnonzero(mask)
        if picked.size == 0:
            return
        self.count += picked.size
        if self.kept >= self.keep:
            return
        self.kept += picked.size
        self.lines.append(lines[picked])
        self.columns.append(np.full(picked.size, column, dtype=object))
        self.values.append(np.asarray(values, dtype=object)[picked])
        self.reasons.append(np.full(picked.size, reason, dtype=object))

    def extend(self, other: Problems) -> None:
        """Take over another collection's problems (keeping as many as ``add`` would)."""
        self.count += other.count
        for lines, columns, values, reasons in zip(
            other.lines, other.columns, other.values, other.reasons, strict=True
        ):
            if self.kept >= self.keep:
                return
            self.kept += len(lines)
            self.lines.append(lines)
            self.columns.append(columns)
            self.values.append(values)
            self.reasons.append(reasons)

    def add_one(self, line: int | None, column: str, value: str, reason: str) -> None:
        self.add(np.array([True]), np.array([line or 0]), column, [value], reason)

    def as_records(self, limit: int | None = None) -> list[dict]:
        """The kept problems in line order, as dicts with line, column, value and reason."""
        if not self.lines:
            return []
        frame = pd.DataFrame(
            {
                "line": np.concatenate(self.lines),
                "column": np.concatenate(self.columns),
                "value": np.concatenate(self.values),
                "reason": np.concatenate(self.reasons),
            }
        ).sort_values(["line", "column"], kind="stable")
        frame = frame.head(limit or self.keep)
        frame["value"] = frame["value"].map(_short)
        frame["line"] = frame["line"].astype(int)
        return frame.to_dict("records")


def _short(value) -> str:
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def check_columns(kind: str, targets: list[str], problems: Problems) -> None:
    """Whole-file checks on the mapped header: required columns present, no unknown ones."""
    schema = SCHEMAS[kind]
    present = set(targets)
    for column in schema.columns:
        if column.required and column.name not in present:
            problems.add_one(
                1,
                column.name,
                "",
                _("the required column '%(column)s' is missing") % {"column": column.name},
            )
    if not schema.extra_columns_are_attributes:
        for name in targets:
            if name.startswith(UNMAPPED_PREFIX):
                source = name.removeprefix(UNMAPPED_PREFIX)
                problems.add_one(
                    1,
                    source,
                    source,
                    _(
                        "unexpected column '%(column)s'; expected %(expected)s "
                        "(map it to one of them, or leave it out on the upload page)"
                    )
                    % {"column": source, "expected": ", ".join(schema.names)},
                )


def validate_chunk(kind: str, table: pa.Table, context: Context, problems: Problems) -> pa.Table:
    """The chunk's valid rows, typed for staging; problems with the others go to ``problems``."""
    schema = SCHEMAS[kind]
    lines = table.column(LINE_COLUMN).to_numpy()
    checker = _Checker(table, lines, problems, context)
    if kind == "customers":
        typed = _customers(schema, checker)
    elif kind == "events":
        typed = _events(checker)
    elif kind == "outcomes":
        typed = _outcomes(checker)
    else:
        typed = _treatments(checker)
    return typed.filter(pa.array(~checker.bad)) if checker.bad.any() else typed


class _Checker:
    def __init__(self, table: pa.Table, lines: np.ndarray, problems: Problems, context: Context):
        self.table = table
        self.lines = lines
        self.problems = problems
        self.context = context
        self.n = table.num_rows
        self.bad = np.zeros(self.n, dtype=bool)  # rows with at least one problem

    def text(self, name: str) -> pa.ChunkedArray:
        if name not in self.table.column_names:
            return pa.chunked_array([pa.nulls(self.n, pa.string())])
        return pc.utf8_trim_whitespace(self.table.column(name))

    def _report(self, mask, name: str, values: pa.ChunkedArray, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.bad |= mask
            self.problems.add(mask, self.lines, name, values.to_numpy(zero_copy_only=False), reason)

    def missing(self, values: pa.ChunkedArray) -> np.ndarray:
        return pc.fill_null(pc.equal(values, ""), True).to_numpy(zero_copy_only=False)

    def required_text(self, name: str, max_length: int) -> pa.ChunkedArray:
        values = self.text(name)
        self._report(self.missing(values), name, values, _("a value is required"))
        self.max_length(name, values, max_length)
        return pc.if_else(pc.equal(values, ""), None, values)

    def optional_text(self, name: str, max_length: int) -> pa.ChunkedArray:
        values = pc.fill_null(self.text(name), "")
        self.max_length(name, values, max_length)
        return values

    def max_length(self, name: str, values: pa.ChunkedArray, limit: int) -> None:
        too_long = pc.fill_null(pc.greater(pc.utf8_length(values), limit), False)
        self._report(too_long, name, values, _("longer than %(n)s characters") % {"n": limit})

    def number(self, name: str, *, nullable: bool, minimum: float | None = 0.0) -> pa.ChunkedArray:
        """Money and other numbers; money (a minimum of 0) must also fit its column (14 digits,
        2 of them decimals)."""
        raw = self.text(name)
        if (quick := _plain_numbers(raw, nullable=nullable, minimum=minimum)) is not None:
            return quick
        blank = self.missing(raw)
        well_formed = pc.fill_null(pc.match_substring_regex(raw, _NUMBER), False).to_numpy(
            zero_copy_only=False
        )
        self._report(~blank & ~well_formed, name, raw, _("not a number"))
        if not nullable:
            self._report(blank, name, raw, _("a value is required"))
        numbers = pc.cast(pc.if_else(pa.array(well_formed), raw, None), pa.float64())
        if minimum is not None:
            negative = pc.fill_null(pc.less(numbers, minimum), False)
            self._report(negative, name, raw, _("must not be negative"))
            too_big = pc.fill_null(pc.greater(numbers, MONEY_MAX), False)
            self._report(too_big, name, raw, _("too large") + f" (> {MONEY_MAX:,.2f})")
        return numbers

    def whole_number(self, name: str) -> pa.ChunkedArray:
        raw = self.text(name)
        if (quick := _plain_whole_numbers(raw)) is not None:
            return quick
        blank = self.missing(raw)
        whole = pc.fill_null(pc.match_substring_regex(raw, _WHOLE), False).to_numpy(
            zero_copy_only=False
        )
        negative = pc.fill_null(pc.match_substring_regex(raw, r"^-\d"), False).to_numpy(
            zero_copy_only=False
        )
        self._report(negative, name, raw, _("must not be negative"))
        self._report(~blank & ~whole & ~negative, name, raw, _("not a whole number"))
        cleaned = pc.if_else(pa.array(whole), pc.replace_substring_regex(raw, r"\.0*$", ""), None)
        too_big = pc.fill_null(pc.greater(pc.utf8_length(cleaned), 9), False)
        self._report(too_big, name, raw, _("too large"))
        return pc.cast(pc.if_else(too_big, None, cleaned), pa.int32())

    def timestamp(self, name: str) -> pa.Array:
        raw = self.text(name)
        if (quick := _plain_timestamps(raw, self.context.timezone)) is not None:
            return quick
        blank = self.missing(raw)
        self._report(blank, name, raw, _("a value is required"))
        text = pc.replace_substring_regex(raw, r"^(\d{4})/(\d{1,2})/(\d{1,2})", r"\1-\2-\3")
        strings = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
        zoned = pc.fill_null(pc.match_substring_regex(text, _ZONE_SUFFIX), False).to_numpy(
            zero_copy_only=False
        )
        parsed = pd.Series(pd.NaT, index=strings.index, dtype="datetime64[us, UTC]")
        if zoned.any():
            parsed[zoned] = pd.to_datetime(
                strings[zoned], format="ISO8601", utc=True, errors="coerce"
            ).dt.as_unit("us")
        if (~zoned).any():
            local = pd.to_datetime(strings[~zoned], format="ISO8601", errors="coerce")
            if getattr(local.dt, "tz", None) is None:
                local = local.dt.tz_localize(
                    self.context.timezone, ambiguous="NaT", nonexistent="NaT"
                )
            parsed[~zoned] = local.dt.tz_convert("UTC").dt.as_unit("us")
        bad = parsed.isna().to_numpy() & ~blank
        self._report(
            bad,
            name,
            raw,
            _(
                "not a date and time; use ISO 8601, e.g. 2026-01-05 10:00:00 "
                "or 2026-01-05T10:00:00+08:00"
            ),
        )
        return pa.array(parsed, pa.timestamp("us", tz="UTC"))

    def one_of(
        self, name: str, allowed: list[str], *, lower: bool, describe: str
    ) -> pa.ChunkedArray:
        raw = self.text(name)
        values = pc.utf8_lower(raw) if lower else raw
        blank = self.missing(raw)
        known = pc.fill_null(pc.is_in(values, value_set=pa.array(allowed)), False).to_numpy(
            zero_copy_only=False
        )
        self._report(blank, name, raw, _("a value is required"))
        self._report(~blank & ~known, name, raw, describe)
        return values

    def boolean(self, name: str) -> pa.ChunkedArray:
        raw = pc.utf8_lower(self.text(name))
        blank = self.missing(raw)
        truthy = pc.fill_null(pc.is_in(raw, value_set=pa.array(TRUE_WORDS)), False)
        falsy = pc.fill_null(pc.is_in(raw, value_set=pa.array(FALSE_WORDS)), False)
        unknown = ~blank & ~(
            truthy.to_numpy(zero_copy_only=False) | falsy.to_numpy(zero_copy_only=False)
        )
        self._report(blank, name, raw, _("a value is required (1/0, true/false, yes/no)"))
        self._report(unknown, name, raw, _("not a yes/no value; use 1/0, true/false or yes/no"))
        return truthy

    def column_names(self) -> list[str]:
        return self.table.column_names


# --- the common case, quickly ---------------------------------------------------------------
# Most chunks hold only plain values. Each of these parses a whole column in one strict Arrow
# cast (a subset of what the full checks accept, giving the same values) and returns None as soon
# as any value is not plain; the full check then runs, finding and reporting every problem.


# Local times are converted quickly only within these years: past 2037 the time zone database
# gives a rule rather than a list of changes, and Arrow does not apply it (found by hypothesis:
# 2038-04-01 in New York came out in winter time).
_ZONE_RULES_KNOWN = (datetime(1970, 1, 1), datetime(2037, 1, 1))


def _plain_timestamps(raw: pa.ChunkedArray, zone: str) -> pa.Array | None:
    """Every value an ISO 8601 time, all local (each existing once in ``zone``) or all with a
    zone: as UTC."""
    if len(raw) == 0 or raw.null_count:
        return None
    try:  # the first value tells which kind to try (a failed cast costs more than a good one)
        if re.search(_ZONE_SUFFIX, raw[0].as_py()):
            parsed = pc.cast(raw, pa.timestamp("us", tz="UTC"))
        else:
            local = pc.cast(raw, pa.timestamp("us"))
            span = pc.min_max(local).as_py()
            if not _ZONE_RULES_KNOWN[0] <= span["min"] <= span["max"] < _ZONE_RULES_KNOWN[1]:
                return None
            parsed = pc.assume_timezone(local, zone, ambiguous="raise", nonexistent="raise")
    except pa.ArrowInvalid:
        return None
    return parsed.cast(pa.timestamp("us", tz="UTC")).combine_chunks()


def _plain_numbers(
    raw: pa.ChunkedArray, *, nullable: bool, minimum: float | None
) -> pa.ChunkedArray | None:
    """Every value a finite decimal number (at least ``minimum``), or blank where allowed."""
    blank = pc.equal(raw, "")
    if not nullable and (raw.null_count or pc.any(blank).as_py()):
        return None
    try:
        numbers = pc.cast(pc.if_else(blank, None, raw), pa.float64())
    except pa.ArrowInvalid:
        return None
    finite = pc.all(pc.is_finite(numbers)).as_py()  # Arrow reads "nan" and "inf": not numbers
    extremes = pc.min_max(numbers).as_py()
    low, high = extremes["min"], extremes["max"]
    if finite is False or (
        minimum is not None and low is not None and (low < minimum or high > MONEY_MAX)
    ):
        return None
    return numbers


def _plain_whole_numbers(raw: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Every value blank or digits only, at most nine of them."""
    if pc.any(pc.starts_with(raw, "-")).as_py() or (pc.max(pc.utf8_length(raw)).as_py() or 0) > 9:
        return None
    try:
        return pc.cast(pc.if_else(pc.equal(raw, ""), None, raw), pa.int32())
    except pa.ArrowInvalid:
        return None


def _customers(schema: Schema, check: _Checker) -> pa.Table:
    customer = check.required_text("customer_id", ID_MAX_LENGTH)
    known = {c.name for c in schema.columns} | {LINE_COLUMN}
    attributes = [
        name for name in check.column_names() if name not in known and not name.startswith("__")
    ]
    fragments = []
    for name in attributes:
        values = check.text(name)
        check.max_length(name, values, ATTRIBUTE_MAX_LENGTH)
        fragments.append(_json_member(name, values))
    if fragments:
        body = pc.binary_join_element_wise(*fragments, ",", null_handling="skip")
    else:
        body = pa.array([""] * check.n, pa.string())
    attributes_json = pc.binary_join_element_wise(
        "{", body, "}", "", null_handling="replace", null_replacement=""
    )
    return pa.table(
        {
            "line": check.table.column(LINE_COLUMN),
            "customer_ext": customer,
            "attributes": attributes_json,
            "fingerprint": fingerprint([customer]),
        }
    )


def _json_member(name: str, values: pa.ChunkedArray) -> pa.ChunkedArray:
    """'"name": value' per row (null where the value is empty); numbers and booleans typed."""
    import json

    key = json.dumps(name, ensure_ascii=False) + ":"
    lowered = pc.utf8_lower(values)
    is_number = pc.fill_null(pc.match_substring_regex(values, _CANONICAL_NUMBER), False)
    is_bool = pc.fill_null(pc.is_in(lowered, value_set=pa.array(["true", "false"])), False)
    escaped = pc.replace_substring(values, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    escaped = pc.replace_substring(escaped, "\n", "\\n")
    escaped = pc.replace_substring(escaped, "\r", "\\r")
    escaped = pc.replace_substring(escaped, "\t", "\\t")
    escaped = pc.replace_substring_regex(escaped, r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "")
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    rendered = pc.if_else(is_number, values, pc.if_else(is_bool, lowered, quoted))
    member = pc.binary_join_element_wise(key, rendered, "")
    return pc.if_else(pc.fill_null(pc.equal(values, ""), True), None, member)


def _events(check: _Checker) -> pa.Table:
    customer = check.required_text("customer_id", ID_MAX_LENGTH)
    timestamp = check.timestamp("timestamp")
    allowed = sorted(check.context.event_types)
    event_type = check.one_of(
        "event_type",
        allowed,
        lower=True,
        describe=_("unknown event type; expected one of %(types)s") % {"types": ", ".join(allowed)},
    )
    item = check.optional_text("item_id", TEXT_MAX_LENGTH)
    category = check.optional_text("category", TEXT_MAX_LENGTH)
    price = pc.round(check.number("price", nullable=True), 2)
    quantity = check.whole_number("quantity")
    return pa.table(
        {
            "line": check.table.column(LINE_COLUMN),
            "customer_ext": customer,
            "ts": timestamp,
            "event_type": event_type,
            "item_id": item,
            "category": category,
            "price": price,
            "quantity": quantity,
            "fingerprint": fingerprint(
                [customer, timestamp, event_type, item, category, price, quantity]
            ),
        }
    )


def _treatments(check: _Checker) -> pa.Table:
    customer = check.required_text("customer_id", ID_MAX_LENGTH)
    arms = sorted(check.context.arms)
    raw_arm = check.text("arm")
    arm = pc.if_else(pc.equal(pc.utf8_lower(raw_arm), CONTROL), CONTROL, pc.utf8_upper(raw_arm))
    blank = check.missing(raw_arm)
    known = pc.fill_null(pc.is_in(arm, value_set=pa.array(arms)), False).to_numpy(
        zero_copy_only=False
    )
    check._report(blank, "arm", raw_arm, _("a value is required (a coupon code or 'control')"))
    codes = ", ".join(a for a in arms if a != CONTROL) or _("none yet")
    check._report(
        ~blank & ~known,
        "arm",
        raw_arm,
        _("not one of this merchant's coupon types (%(codes)s) or 'control'") % {"codes": codes},
    )
    assigned = check.timestamp("assigned_at")
    propensity = check.number("propensity", nullable=False, minimum=None)
    outside = pc.fill_null(pc.or_(pc.less_equal(propensity, 0), pc.greater(propensity, 1)), False)
    check._report(
        outside, "propensity", check.text("propensity"), _("must be greater than 0 and at most 1")
    )
    converted = check.boolean("converted")
    revenue = pc.round(pc.fill_null(check.number("revenue", nullable=True), 0.0), 2)
    return pa.table(
        {
            "line": check.table.column(LINE_COLUMN),
            "customer_ext": customer,
            "arm": arm,
            "assigned_at": assigned,
            "propensity": propensity,
            "converted": converted,
            "revenue": revenue,
            "fingerprint": fingerprint([customer, arm, assigned]),
        }
    )


CODE_MAX_LENGTH = 40  # as Assignment.code


def _outcomes(check: _Checker) -> pa.Table:
    customer = check.required_text("customer_id", ID_MAX_LENGTH)
    order = check.required_text("order_id", ID_MAX_LENGTH)
    ordered_at = check.timestamp("ordered_at")
    revenue = pc.round(check.number("revenue", nullable=False), 2)
    raw_code = check.optional_text("code", CODE_MAX_LENGTH)
    code = pc.utf8_upper(raw_code)
    index = check.context.attribution or AttributionIndex.empty(check.context.timezone)
    attribution = attribute(index, customer_ext=customer, ordered_at=ordered_at, code=code)
    for problem in attribution.problems:
        check._report(problem.mask, problem.column, check.text(problem.column), problem.reason)
    return pa.table(
        {
            "line": check.table.column(LINE_COLUMN),
            "customer_ext": customer,
            "order_id": order,
            "ordered_at": ordered_at,
            "revenue": revenue,
            "code": code,
            "assignment_id": attribution.assignment_id,
            "fingerprint": fingerprint([order]),
        }
    )


# --- fingerprints ---------------------------------------------------------------------------


def fingerprint(columns: list) -> pa.Array:
    """A stable 64-bit hash per row of the given columns (same rows, same hash, any version).

    Strings are hashed once per distinct value (pandas' SipHash with its fixed key, which is
    stable across versions); numbers are mixed with splitmix64; columns are combined in order.
    """
    combined = np.zeros(len(columns[0]), dtype=np.uint64)
    for position, column in enumerate(columns):
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        salt = np.uint64((0x9E3779B97F4A7C15 * (position + 1)) & 0xFFFFFFFFFFFFFFFF)
        with np.errstate(over="ignore"):
            combined = _mix(combined ^ (_hash_column(column) + salt))
    return pa.array(combined.view(np.int64))


def _hash_column(column: pa.Array) -> np.ndarray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        encoded = pc.dictionary_encode(pc.fill_null(column, "\x00null"))
        uniques = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
        hashed = pd.util.hash_array(uniques, categorize=False)
        return hashed[encoded.indices.to_numpy(zero_copy_only=False)]
    if pa.types.is_timestamp(column.type):
        values = pc.cast(column, pa.int64())
    elif pa.types.is_floating(column.type):
        values = pc.cast(pc.round(pc.multiply(column, 100.0), 0), pa.int64())  # money in cents
    else:
        values = pc.cast(column, pa.int64())
    raw = pc.fill_null(values, -(2**62)).to_numpy(zero_copy_only=False).astype(np.int64)
    return _mix(raw.view(np.uint64))


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64 finalizer; numpy's uint64 arithmetic wraps, as the algorithm expects.
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
