"""The row checks' quick path (one strict Arrow cast per column when every value is plain) gives
exactly what the full checks give, and leaves everything else to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from campaigns.choices import EventType
from campaigns.imports import validation
from campaigns.imports.reading import LINE_COLUMN
from campaigns.imports.validation import Context, Problems, validate_chunk

HEADER = ["customer_id", "timestamp", "event_type", "item_id", "category", "price", "quantity"]
QUICK = ("_plain_timestamps", "_plain_numbers", "_plain_whole_numbers")


def check(rows: list[list[str]], zone: str) -> tuple[pa.Table, Problems]:
    columns = {name: pa.array([row[i] for row in rows]) for i, name in enumerate(HEADER)}
    columns[LINE_COLUMN] = pa.array(range(2, len(rows) + 2), pa.int64())
    context = Context(timezone=zone, event_types=frozenset(EventType.values))
    problems = Problems()
    return validate_chunk("events", pa.table(columns), context, problems), problems


def quick_calls(monkeypatch) -> list[str]:
    """Names of the quick parsers that returned a column (not None)."""
    calls: list[str] = []
    for name in QUICK:
        original = getattr(validation, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            result = _original(*args, **kwargs)
            if result is not None:
                calls.append(_name)
            return result

        monkeypatch.setattr(validation, name, spy)
    return calls


moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1))
stamp_format = st.sampled_from(
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
)
zone_suffix = st.sampled_from(["", "Z", "+08:00", "-05:00"])
price = st.one_of(st.just(""), st.decimals(min_value=0, max_value=10**9, places=2).map(str))
quantity = st.one_of(st.just(""), st.integers(0, 999_999_999).map(str))


@example(  # Arrow has no daylight saving time past 2037: such times take the full checks
    values=[(datetime(2038, 4, 1), "", "")],
    fmt="%Y-%m-%d %H:%M:%S",
    suffix="",
    zone="America/New_York",
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.tuples(moments, price, quantity), min_size=1, max_size=20),
    fmt=stamp_format,
    suffix=zone_suffix,
    zone=st.sampled_from(["Asia/Shanghai", "America/New_York", "UTC"]),
)
def test_the_quick_path_reads_plain_values_as_the_full_checks_do(
    monkeypatch, values, fmt, suffix, zone
):
    rows = [
        [f"C{i}", moment.strftime(fmt) + suffix, "cart", "I1", "tea", money, count]
        for i, (moment, money, count) in enumerate(values)
    ]
    with monkeypatch.context() as patched:
        calls = quick_calls(patched)
        quick, quick_problems = check(rows, zone)
    with monkeypatch.context() as patched:
        for name in QUICK:
            patched.setattr(validation, name, lambda *args, **kwargs: None)
        full, full_problems = check(rows, zone)
    # New York has times that are missing or twice there: only the full checks report them.
    if quick_problems.count or full_problems.count:
        assert "_plain_timestamps" not in calls
        assert quick_problems.as_records() == full_problems.as_records()
        return
    local_known = all(
        datetime(1970, 1, 1) <= moment < datetime(2037, 1, 1) for moment, *_ in values
    )
    assert ("_plain_timestamps" in calls) == (bool(suffix) or local_known)
    assert {"_plain_numbers", "_plain_whole_numbers"} <= set(calls)
    for name in ("ts", "price", "quantity", "fingerprint"):
        assert quick.column(name).to_pylist() == full.column(name).to_pylist(), name


def test_local_times_missing_or_twice_in_the_zone_are_reported_not_guessed(monkeypatch):
    rows = [
        ["C1", "2026-03-08 02:30:00", "view", "", "", "", ""],  # clocks jump from 2:00 to 3:00
        ["C1", "2026-11-01 01:30:00", "view", "", "", "", ""],  # 1:00-2:00 happens twice
        ["C1", "2026-11-02 01:30:00", "view", "", "", "", ""],
    ]
    calls = quick_calls(monkeypatch)
    typed, problems = check(rows, "America/New_York")
    assert "_plain_timestamps" not in calls
    assert [p["line"] for p in problems.as_records()] == [2, 3]
    assert typed.column("ts").to_pylist() == [datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("price_text", "reason"),
    [
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("-0.5", "must not be negative"),
        ("1000000000000", "too large"),
    ],
)
def test_numbers_the_quick_cast_would_take_are_still_refused(price_text, reason):
    typed, problems = check([["C1", "2026-01-05 10:00:00", "view", "", "", price_text, ""]], "UTC")
    assert typed.num_rows == 0
    assert [(p["column"], reason in p["reason"]) for p in problems.as_records()] == [
        ("price", True)
    ]


@pytest.mark.parametrize(
    ("quantity_text", "reason"),
    [("-0", "must not be negative"), ("0000000001", "too large"), ("1.5", "not a whole number")],
)
def test_whole_numbers_the_quick_cast_would_take_are_still_refused(quantity_text, reason):
    typed, problems = check(
        [["C1", "2026-01-05 10:00:00", "cart", "", "", "", quantity_text]], "UTC"
    )
    assert typed.num_rows == 0
    assert [p["column"] for p in problems.as_records()] == ["quantity"]
    assert reason in problems.as_records()[0]["reason"]


def test_zoned_times_go_the_quick_way_and_mean_the_same_instant(monkeypatch):
    calls = quick_calls(monkeypatch)
    typed, problems = check(
        [
            ["C1", "2026-01-05T10:00:00+08:00", "view", "", "", "", ""],
            ["C1", "2026-01-05 02:00:01Z", "view", "", "", "", ""],
        ],
        "America/New_York",
    )
    assert not problems.count
    assert "_plain_timestamps" in calls
    start = datetime(2026, 1, 5, 2, tzinfo=UTC)
    assert typed.column("ts").to_pylist() == [start, start + timedelta(seconds=1)]
