"""The import service: every door (upload page, REST API, management commands) comes here.

``import_run`` reads, validates and stages the whole input inside one transaction, then merges
it only when no row has a problem; otherwise the transaction is rolled back and the DataImport
row records every problem (line, column, value, reason). Nothing is ever half-imported, and
importing the same rows again adds nothing.

What an import stores for people (its message, its problems' reasons) is written in the active
language: the request's for the REST bulk import, the job's for a stored import (its task runs in
the language of whoever started it), ``settings.LANGUAGE_CODE`` for the management commands.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from campaigns.choices import (
    CONTROL_ARM,
    AuditVerb,
    EventType,
    ImportKind,
    ImportSource,
    ImportStatus,
    StrategyStatus,
    TreatmentSource,
)
from campaigns.imports.attribution import AttributionIndex, touched_strategies
from campaigns.imports.reading import (
    InputError,
    Source,
    column_label,
    detect_encoding,
    open_csv,
    preview,
    read_header,
    records_source,
)
from campaigns.imports.schema import auto_mapping
from campaigns.imports.storage import CustomerIndex, EventStage, MergeCounts, Stage
from campaigns.imports.validation import Context, Problems, check_columns, validate_chunk
from campaigns.models import Assignment, CouponType, DataImport, Merchant, Strategy
from campaigns.services import audit_record
from campaigns.summary import (
    EventTally,
    data_summary_add_events,
    data_summary_refresh,
    events_tally,
)
from modeling.choices import JobKind, JobStatus
from modeling.services import JobCancelled

logger = logging.getLogger(__name__)
Progress = Callable[[int, str], None]


class ImportRejected(Exception):
    """The input has problems; nothing was written."""


def import_context(*, merchant: Merchant) -> Context:
    codes = CouponType.objects.filter(merchant=merchant).values_list("code", flat=True)
    return Context(
        timezone=merchant.timezone,
        event_types=frozenset(EventType.values),
        arms=frozenset([CONTROL_ARM, *codes]),
    )


# --- creating imports from the three doors ------------------------------------------------------


def import_create_from_upload(
    *,
    merchant: Merchant,
    kind: ImportKind | str,
    upload: UploadedFile,
    actor,
    source: str = ImportSource.UPLOAD,
) -> DataImport:
    """Store an uploaded file and detect its encoding and columns; the import starts later."""
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if upload.size > limit:
        raise InputError(
            _("The file is %(size)s MB; the limit is %(limit)s MB.")
            % {"size": f"{upload.size / 2**20:,.1f}", "limit": f"{limit / 2**20:,.0f}"}
        )
    path = _new_upload_path(merchant, upload.name or "upload.csv")
    with open(path, "wb") as handle:
        for block in upload.chunks():
            handle.write(block)
    return import_create_from_file(
        merchant=merchant,
        kind=kind,
        path=path,
        filename=upload.name or path.name,
        actor=actor,
        source=source,
    )


def import_create_from_file(
    *, merchant: Merchant, kind: ImportKind | str, path: Path, filename: str, actor, source: str
) -> DataImport:
    """A DataImport for a file already on disk (uploads, management commands, API CSV bodies)."""
    path = Path(path)
    data_import = DataImport(
        merchant=merchant,
        kind=ImportKind(kind),
        source=source,
        filename=filename[:255],
        stored_path=str(path),
        size_bytes=path.stat().st_size,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    try:
        with open(path, "rb") as handle:
            data_import.encoding = detect_encoding(handle.read(1 << 20))
        header = read_header(path, data_import.encoding)
        data_import.column_mapping = auto_mapping(kind, header)
    except InputError as error:
        data_import.status = ImportStatus.REJECTED
        data_import.message = str(error)
        data_import.error_count = 1
        data_import.errors = [{"line": 0, "column": "", "value": "", "reason": str(error)}]
        data_import.finished_at = timezone.now()
    data_import.save()
    return data_import


def import_preview(*, data_import: DataImport, rows: int = 10) -> tuple[list[str], list[list[str]]]:
    return preview(Path(data_import.stored_path), data_import.encoding, rows=rows)


def _new_upload_path(merchant: Merchant, name: str) -> Path:
    folder = Path(settings.UPLOAD_ROOT) / merchant.slug
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(name).suffix[:10] or ".csv"
    return folder / f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}{suffix}"


def import_save_body(*, merchant: Merchant, body: bytes, name: str) -> Path:
    path = _new_upload_path(merchant, name)
    path.write_bytes(body)
    return path


def import_copy_file(*, merchant: Merchant, path: Path) -> Path:
    """Copy a file given on the command line into the upload area, so imports are reproducible."""
    target = _new_upload_path(merchant, Path(path).name)
    shutil.copyfile(path, target)
    return target


# --- running ----------------------------------------------------------------------------------


def import_run(
    *,
    data_import: DataImport,
    records: list[dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> DataImport:
    """Validate and load the import all-or-nothing; the DataImport row records what happened."""
    progress = progress or (lambda percent, message: None)
    merchant = data_import.merchant
    DataImport.objects.filter(pk=data_import.pk).update(status=ImportStatus.RUNNING)
    problems = Problems(keep=DataImport.MAX_STORED_ERRORS)
    try:
        source = _open(data_import, records)
        with transaction.atomic():
            counts, total, touched, tally = _stage_and_merge(
                data_import, source, problems, progress, records
            )
            audit_record(
                merchant=merchant,
                actor=data_import.created_by,
                verb=AuditVerb.DATA_IMPORTED,
                target=str(data_import),
                data={"import": data_import.pk, "rows": total, "inserted": counts.inserted},
            )
    except ImportRejected:
        return _finish(
            data_import,
            ImportStatus.REJECTED,
            problems,
            message=_("%(n)s problems found; nothing was imported.") % {"n": f"{problems.count:,}"},
        )
    except InputError as error:
        problems.add_one(0, "", "", str(error))
        return _finish(data_import, ImportStatus.REJECTED, problems, message=str(error))
    except JobCancelled:
        _finish(
            data_import,
            ImportStatus.FAILED,
            problems,
            message=_("Cancelled; nothing was imported."),
        )
        raise
    except Exception as error:
        logger.exception("Import %s failed", data_import.pk)
        _finish(
            data_import,
            ImportStatus.FAILED,
            problems,
            message=_("The import failed: %(error)s") % {"error": error},
        )
        raise
    data_import.rows_total = total
    data_import.rows_inserted = counts.inserted
    data_import.rows_updated = counts.updated
    data_import.rows_unchanged = counts.unchanged
    data_import.customers_created = counts.customers_created
    message = _import_summary(total, counts)
    progress(100, message)
    data_import = _finish(
        data_import,
        ImportStatus.SUCCEEDED,
        problems,
        message=pgettext("end of a sentence", "%(sentence)s.") % {"sentence": message},
    )
    if tally is not None:  # new events only: add them to the stored summary
        data_summary_add_events(merchant=merchant, tally=tally)
    else:
        data_summary_refresh(merchant=merchant)
    if touched.size:
        _refresh_results(merchant=merchant, strategy_ids=touched, progress=progress)
    return data_import


def _import_summary(total: int, counts: MergeCounts) -> str:
    """The success message: N rows: N added, N updated, N already present, N new customers
    created (the parts that are not zero)."""
    parts = [_("%(n)s added") % {"n": f"{counts.inserted:,}"}]
    if counts.updated:
        parts.append(_("%(n)s updated") % {"n": f"{counts.updated:,}"})
    if counts.unchanged:
        parts.append(_("%(n)s already present") % {"n": f"{counts.unchanged:,}"})
    if counts.customers_created:
        parts.append(_("%(n)s new customers created") % {"n": f"{counts.customers_created:,}"})
    return _("%(total)s rows: %(counts)s") % {
        "total": f"{total:,}",
        "counts": pgettext("clause separator", ", ").join(parts),
    }


def _refresh_results(*, merchant: Merchant, strategy_ids: np.ndarray, progress: Progress) -> None:
    """Recompute the realized results of the strategies an outcomes import changed. The import
    has succeeded already: a failure here is logged, and the next import computes them again."""
    from campaigns.results import strategy_results_refresh

    strategies = Strategy.objects.filter(merchant=merchant, pk__in=strategy_ids.tolist())
    for strategy in strategies.select_related("campaign"):
        progress(100, _("Measuring strategy #%(id)s against its holdout") % {"id": strategy.pk})
        try:
            strategy_results_refresh(strategy=strategy)
        except Exception:
            logger.exception("Realized results of strategy %s failed", strategy.pk)


def _open(data_import: DataImport, records: list[dict[str, Any]] | None) -> Source:
    if records is not None:
        return records_source(records, kind=data_import.kind, mapping=data_import.column_mapping)
    if not data_import.stored_path or not Path(data_import.stored_path).exists():
        raise InputError(_("The uploaded file is no longer available; upload it again."))
    return open_csv(
        Path(data_import.stored_path),
        encoding=data_import.encoding or None,
        kind=data_import.kind,
        mapping=data_import.column_mapping,
    )


UNKNOWN_CUSTOMER = gettext_lazy(
    "unknown customer; import customers first, or choose to create unknown customers"
)


@dataclass
class _Prepared:
    """One chunk, checked, resolved and serialized for staging (by a worker thread)."""

    rows_read: int
    problems: Problems  # this chunk's
    payload: Any
    keys: np.ndarray
    lines: np.ndarray
    share: float
    seen: pa.Table | None  # events: first and last time per customer in this chunk
    tally: EventTally | None  # events: what they add to the data summary
    strategies: np.ndarray | None  # outcomes: strategies with a window holding an order


# Chunks checked at once, each in a thread of its own: pyarrow, numpy and pandas release the GIL,
# so two worker threads keep both cores of a small server busy while the database waits.
CHECK_THREADS = 2


def _prepared_chunks(
    kind: str,
    source: Source,
    context: Context,
    stage: Stage,
    customers: CustomerIndex | None,
    keep: int,
) -> Iterator[_Prepared]:
    """Read, check, resolve and serialize chunks in other threads, a few chunks ahead, in order.

    Parsing and checking then overlap with each other and with the database copying earlier
    chunks into the staging table. Memory stays bounded: at most ``CHECK_THREADS`` chunks are
    being checked and two wait for the caller. Each chunk's problems (at most ``keep``) come
    with it.
    """
    handoff: queue.Queue = queue.Queue(maxsize=2)
    done = object()
    stopping = threading.Event()
    # The reasons of the problems found there are written in the caller's language: a new
    # thread starts with none active.
    language = translation.get_language()

    def prepare(chunk) -> _Prepared:
        problems = Problems(keep=keep)
        with translation.override(language):
            typed = validate_chunk(kind, chunk.table, context, problems)
            if customers is not None:
                ids = customers.resolve(typed.column("customer_ext"))
                unknown = pc.is_null(ids).to_numpy(zero_copy_only=False)
                lines = typed.column("line").to_numpy()
                ext = typed.column("customer_ext").to_numpy(zero_copy_only=False)
                problems.add(unknown, lines, "customer_id", ext, str(UNKNOWN_CUSTOMER))
                typed = typed.append_column("customer_id", ids)
                if unknown.any():
                    typed = typed.filter(pa.array(~unknown))
        return _Prepared(
            rows_read=chunk.table.num_rows,
            problems=problems,
            payload=stage.serialize(typed),
            keys=typed.column("fingerprint").to_numpy(),
            lines=typed.column("line").to_numpy(),
            share=min(chunk.bytes_read / max(source.size_bytes, 1), 1.0),
            seen=_seen_spans(typed) if kind == ImportKind.EVENTS else None,
            tally=(
                events_tally(
                    typed.column("ts"),
                    typed.column("event_type"),
                    typed.column("price"),
                    typed.column("quantity"),
                    tz=context.timezone,
                )
                if kind == ImportKind.EVENTS and typed.num_rows
                else None
            ),
            strategies=(
                touched_strategies(
                    context.attribution,
                    customer_ext=typed.column("customer_ext"),
                    ordered_at=typed.column("ordered_at"),
                )
                if kind == ImportKind.OUTCOMES and context.attribution is not None
                else None
            ),
        )

    def produce() -> None:
        try:
            with ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="import-check") as pool:
                pending: deque[Future] = deque()
                for chunk in source.chunks:
                    if stopping.is_set():
                        return
                    pending.append(pool.submit(prepare, chunk))
                    if len(pending) >= CHECK_THREADS:
                        handoff.put(pending.popleft().result())
                while pending and not stopping.is_set():
                    handoff.put(pending.popleft().result())
            handoff.put(done)
        except BaseException as error:  # handed to the caller, raised there
            handoff.put(error)

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopping.set()
        while reader.is_alive():  # let a stopped reader finish its current put
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        reader.join()


def _stage_and_merge(
    data_import: DataImport,
    source: Source,
    problems: Problems,
    progress: Progress,
    records: list[dict[str, Any]] | None,
):
    """Stage every row, then merge them in one statement, all in the caller's transaction."""
    kind = data_import.kind
    merchant = data_import.merchant
    context = import_context(merchant=merchant)
    check_columns(kind, [column_label(h, source.targets[h]) for h in source.header], problems)
    if problems.count:  # the header is wrong: the rows cannot be read meaningfully
        raise ImportRejected
    counts = MergeCounts()
    customers = None
    if kind != ImportKind.CUSTOMERS:
        customers = CustomerIndex(merchant.pk)
        if data_import.create_missing_customers:
            missing = customers.missing(_customer_ids(data_import, records))
            counts.customers_created = customers.create(missing)
    if kind == ImportKind.OUTCOMES:
        progress(1, _("Finding the campaigns the orders may count for"))
        context.attribution = _attribution_index(data_import, records)
    if kind == ImportKind.EVENTS:  # spooled, then written sorted: see EventStage
        stage: Stage = EventStage(
            customer_ids=customers.ids, expected_rows=source.size_bytes // _MIN_EVENT_BYTES
        )
    else:
        stage = Stage(kind)
    stage.create()
    with contextlib.closing(stage):  # whatever happens, nothing spooled is left behind
        return _load(data_import, source, problems, progress, context, stage, customers, counts)


# The fewest bytes an event row takes in a file (for sizing the events spool's buckets).
_MIN_EVENT_BYTES = 40


def _load(
    data_import: DataImport,
    source: Source,
    problems: Problems,
    progress: Progress,
    context: Context,
    stage: Stage,
    customers: CustomerIndex | None,
    counts: MergeCounts,
):
    """Read, check and stage every row; then merge them, in one statement per table."""
    kind = data_import.kind
    merchant = data_import.merchant
    touched: list[np.ndarray] = []
    row_problems = Problems(keep=problems.keep)
    spans: list[pa.Table] = []  # first and last event time per customer, so far
    tally: EventTally | None = None  # events per day and type, so far
    keys: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    total = 0
    for prepared in _prepared_chunks(kind, source, context, stage, customers, problems.keep):
        total += prepared.rows_read
        row_problems.extend(prepared.problems)
        keys.append(prepared.keys)
        lines.append(prepared.lines)
        if prepared.seen is not None:
            spans.append(prepared.seen)
            if len(spans) >= _SPAN_FOLD:
                spans = [_merge_spans(spans)]
        if prepared.tally is not None:
            tally = prepared.tally if tally is None else tally.combine(prepared.tally)
        if prepared.strategies is not None:
            touched.append(prepared.strategies)
        stage.append(prepared.payload)
        progress(int(80 * prepared.share), _("Checked %(n)s rows") % {"n": f"{total:,}"})
    problems.extend(row_problems)
    for problem in source.problems:
        problems.add_one(problem.line, problem.column, problem.value, problem.reason)
    total += len(source.problems)
    if total == 0:
        raise InputError(_("The file has a header but no rows."))
    _report_duplicates(kind, keys, lines, problems)
    if problems.count:
        raise ImportRejected
    progress(85, _("Merging %(n)s rows") % {"n": f"{total:,}"})
    label = (
        TreatmentSource.API if data_import.source == ImportSource.API else TreatmentSource.IMPORT
    )
    seen = _stage_spans(_merge_spans(spans)) if spans else None
    counts.add(stage.merge(merchant.pk, source=label, seen=seen))
    if seen is not None:  # widen the customers' first and last seen times, once per import
        seen.update_customers_seen(merchant.pk)
        seen.drop()
    stage.drop()
    strategies = np.unique(np.concatenate(touched)) if touched else np.empty(0, np.int64)
    if counts.unchanged:  # some rows were there already: the tally overstates what was added
        tally = None
    return counts, total, strategies, tally


def _customer_ids(data_import: DataImport, records: list[dict[str, Any]] | None) -> pa.Array:
    """Every customer id the input names (a quick first pass, for creating unknown ones)."""
    ids = [
        pc.unique(pc.utf8_trim_whitespace(chunk.table.column("customer_id")).combine_chunks())
        for chunk in _open(data_import, records).chunks
        if "customer_id" in chunk.table.column_names
    ]
    if not ids:
        return pa.array([], pa.string())
    distinct = pc.unique(pa.chunked_array(ids).combine_chunks())
    return distinct.filter(pc.fill_null(pc.not_equal(distinct, ""), False))


# Ids per query when looking assignments up by customer or code (SQLite allows 32,766 query
# parameters; PostgreSQL plans a list of this size in well under a millisecond).
LOOKUP_BATCH = 5_000


def _attribution_index(
    data_import: DataImport, records: list[dict[str, Any]] | None
) -> AttributionIndex:
    """The assignments of the merchant's applied strategies that the input's orders may be
    attributed to: those of the customers it names, and those of the codes it names (a quick
    first pass over the input), with their windows (campaigns/imports/attribution.py)."""
    merchant = data_import.merchant
    customer_ids, codes = pa.array([], pa.string()), pa.array([], pa.string())
    for chunk in _open(data_import, records).chunks:
        table = chunk.table
        if "customer_id" in table.column_names:
            found = pc.utf8_trim_whitespace(table.column("customer_id")).combine_chunks()
            customer_ids = pc.unique(pa.concat_arrays([customer_ids, pc.unique(found)]))
        if "code" in table.column_names:
            found = pc.utf8_upper(pc.utf8_trim_whitespace(table.column("code"))).combine_chunks()
            codes = pc.unique(pa.concat_arrays([codes, pc.unique(found)]))
    applied = Assignment.objects.filter(
        merchant=merchant, strategy__status=StrategyStatus.APPLIED
    ).values_list(
        "id",
        "strategy_id",
        "campaign_id",
        "campaign__name",
        "customer__external_id",
        "code",
        "assigned_at",
        "campaign__starts_at",
        "campaign__attribution_window_days",
    )
    rows: dict[int, tuple] = {}
    for field, values in (("customer__external_id", customer_ids), ("code", codes)):
        wanted = [v for v in values.to_pylist() if v]
        for start in range(0, len(wanted), LOOKUP_BATCH):
            batch = wanted[start : start + LOOKUP_BATCH]
            for row in applied.filter(**{f"{field}__in": batch}).iterator(chunk_size=20_000):
                rows[row[0]] = row
    if not rows:
        return AttributionIndex.empty(merchant.timezone)
    (ids, strategies, campaigns, names, externals, row_codes, assigned, starts, days) = zip(
        *rows.values(), strict=True
    )
    opens = np.maximum(_microseconds(assigned), _microseconds(starts))
    return AttributionIndex.build(
        customer_ext=externals,
        assignment_id=ids,
        strategy_id=strategies,
        campaign_id=campaigns,
        campaign_names=dict(zip(campaigns, names, strict=True)),
        opens=opens,
        window_days=days,
        codes=row_codes,
        timezone=merchant.timezone,
    )


def _microseconds(moments) -> np.ndarray:
    """Aware datetimes as integer microseconds since the epoch."""
    return pd.DatetimeIndex(pd.to_datetime(list(moments), utc=True)).as_unit("us").asi8


def _seen_spans(typed: pa.Table) -> pa.Table:
    """The first and last event time per customer of one chunk."""
    spans = typed.group_by("customer_id").aggregate([("ts", "min"), ("ts", "max")])
    return spans.select(["customer_id", "ts_min", "ts_max"]).rename_columns(
        ["customer_id", "first_ts", "last_ts"]
    )


# Chunks' spans are folded together every this many chunks: memory stays bounded by the
# customers, and the fold (a group-by over every customer seen so far) is not redone per chunk.
_SPAN_FOLD = 16


def _merge_spans(spans: list[pa.Table]) -> pa.Table:
    """Spans of several chunks as one table: each customer's first and last time."""
    return (
        pa.concat_tables(spans)
        .group_by("customer_id")
        .aggregate([("first_ts", "min"), ("last_ts", "max")])
        .select(["customer_id", "first_ts_min", "last_ts_max"])
        .rename_columns(["customer_id", "first_ts", "last_ts"])
    )


def _stage_spans(spans: pa.Table) -> Stage:
    """The import's first and last event time per customer, staged for the merge."""
    seen = Stage("seen")
    seen.create()
    seen.append(seen.serialize(spans))
    seen.analyze()
    return seen


def _report_duplicates(
    kind: str, keys: list[np.ndarray], lines: list[np.ndarray], problems: Problems
) -> None:
    """Rows repeated within one input (the same customer twice, or the same event twice)."""
    if not keys:
        return
    frame = pd.DataFrame({"key": np.concatenate(keys), "line": np.concatenate(lines)})
    repeated = frame.duplicated("key", keep="first").to_numpy()
    if not repeated.any():
        return
    first = frame.groupby("key")["line"].transform("min").astype(str)
    column, reason = {
        ImportKind.CUSTOMERS: ("customer_id", _("duplicate customer in this file")),
        ImportKind.OUTCOMES: ("order_id", _("duplicate order in this file")),
    }.get(kind, ("", _("duplicate row in this file")))
    before, _line, after = (_("same as line %(line)s") % {"line": "\x00"}).partition("\x00")
    problems.add(
        repeated,
        frame["line"].to_numpy(),
        column,
        (before + first + after).to_numpy(),
        reason,
    )


def _finish(
    data_import: DataImport, status: str, problems: Problems, *, message: str
) -> DataImport:
    data_import.status = status
    data_import.message = message
    data_import.error_count = problems.count
    data_import.errors = problems.as_records(DataImport.MAX_STORED_ERRORS)
    data_import.finished_at = timezone.now()
    data_import.save()
    return data_import


# --- starting a stored import --------------------------------------------------------------------


def import_configure(
    *, data_import: DataImport, mapping: dict[str, str], create_missing_customers: bool
) -> DataImport:
    data_import.column_mapping = mapping
    data_import.create_missing_customers = create_missing_customers
    data_import.save(update_fields=["column_mapping", "create_missing_customers"])
    return data_import


def import_start(*, data_import: DataImport, actor) -> DataImport:
    """Run a stored import as a job on the `default` queue (eagerly in the embedded demo)."""
    from campaigns.tasks import run_import
    from modeling.services import job_enqueue

    with transaction.atomic():
        startable = Q(status__in=[ImportStatus.UPLOADED, ImportStatus.FAILED]) | Q(
            status=ImportStatus.QUEUED, job__status__in=JobStatus.finished()
        )  # queued, but its job was cancelled before it ran
        updated = DataImport.objects.filter(startable, pk=data_import.pk).update(
            status=ImportStatus.QUEUED
        )
        if not updated:  # already started (a double click) or finished: nothing to do
            data_import.refresh_from_db()
            return data_import
        job = job_enqueue(
            merchant=data_import.merchant,
            kind=JobKind.IMPORT,
            task=run_import,
            created_by=actor,
            params={"import_id": data_import.pk, "kind": data_import.kind},
        )
        DataImport.objects.filter(pk=data_import.pk).update(job=job)
    data_import.refresh_from_db()
    return data_import
