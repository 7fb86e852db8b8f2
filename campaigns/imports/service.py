"""The import service: every door (upload page, REST API, management commands) comes here.

``import_run`` reads, validates and stages the whole input inside one transaction, then merges
it only when no row has a problem; otherwise the transaction is rolled back and the DataImport
row records every problem (line, column, value, reason). Nothing is ever half-imported, and
importing the same rows again adds nothing.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.choices import (
    CONTROL_ARM,
    AuditVerb,
    EventType,
    ImportKind,
    ImportSource,
    ImportStatus,
    TreatmentSource,
)
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
from campaigns.imports.storage import Stage
from campaigns.imports.validation import Context, Problems, check_columns, validate_chunk
from campaigns.models import CouponType, DataImport, Merchant
from campaigns.services import audit_record
from campaigns.summary import data_summary_refresh
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
            f"The file is {upload.size / 2**20:,.1f} MB; the limit is {limit / 2**20:,.0f} MB."
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
            counts, total = _stage_and_merge(data_import, source, problems, progress)
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
            message=f"{problems.count:,} problems found; nothing was imported.",
        )
    except InputError as error:
        problems.add_one(0, "", "", str(error))
        return _finish(data_import, ImportStatus.REJECTED, problems, message=str(error))
    except JobCancelled:
        _finish(
            data_import, ImportStatus.FAILED, problems, message="Cancelled; nothing was imported."
        )
        raise
    except Exception as error:
        logger.exception("Import %s failed", data_import.pk)
        _finish(data_import, ImportStatus.FAILED, problems, message=f"The import failed: {error}")
        raise
    data_import.rows_total = total
    data_import.rows_inserted = counts.inserted
    data_import.rows_updated = counts.updated
    data_import.rows_unchanged = counts.unchanged
    data_import.customers_created = counts.customers_created
    message = f"{total:,} rows: {counts.inserted:,} added"
    if counts.updated:
        message += f", {counts.updated:,} updated"
    if counts.unchanged:
        message += f", {counts.unchanged:,} already present"
    if counts.customers_created:
        message += f", {counts.customers_created:,} new customers created"
    progress(100, message)
    data_import = _finish(data_import, ImportStatus.SUCCEEDED, problems, message=message + ".")
    data_summary_refresh(merchant=merchant)
    return data_import


def _open(data_import: DataImport, records: list[dict[str, Any]] | None) -> Source:
    if records is not None:
        return records_source(records, kind=data_import.kind, mapping=data_import.column_mapping)
    if not data_import.stored_path or not Path(data_import.stored_path).exists():
        raise InputError("The uploaded file is no longer available; upload it again.")
    return open_csv(
        Path(data_import.stored_path),
        encoding=data_import.encoding or None,
        kind=data_import.kind,
        mapping=data_import.column_mapping,
    )


def _stage_and_merge(
    data_import: DataImport, source: Source, problems: Problems, progress: Progress
):
    kind = data_import.kind
    merchant = data_import.merchant
    context = import_context(merchant=merchant)
    stage = Stage(kind)
    stage.create()
    check_columns(kind, [column_label(h, source.targets[h]) for h in source.header], problems)
    if problems.count:  # the header is wrong: the rows cannot be read meaningfully
        raise ImportRejected
    keys: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    total = 0
    for chunk in source.chunks:
        total += chunk.table.num_rows
        typed = validate_chunk(kind, chunk.table, context, problems)
        stage.append(typed)
        keys.append(typed.column("fingerprint").to_numpy())
        lines.append(typed.column("line").to_numpy())
        share = chunk.bytes_read / max(source.size_bytes, 1)
        progress(int(80 * min(share, 1.0)), f"Checked {total:,} rows")
    for problem in source.problems:
        problems.add_one(problem.line, problem.column, problem.value, problem.reason)
    total += len(source.problems)
    if total == 0:
        raise InputError("The file has a header but no rows.")
    _report_duplicates(kind, keys, lines, problems)
    stage.analyze()
    customers_created = 0
    if kind != ImportKind.CUSTOMERS:
        if data_import.create_missing_customers:
            if not problems.count:
                customers_created = stage.create_missing_customers(merchant.pk)
        else:
            count, rows = stage.unknown_customers(merchant.pk, limit=problems.keep)
            for line, customer in rows:
                problems.add_one(
                    line,
                    "customer_id",
                    customer,
                    "unknown customer; import customers first, or choose to create unknown "
                    "customers",
                )
            problems.count += count - len(rows)
    if problems.count:
        raise ImportRejected
    progress(85, f"Merging {total:,} rows")
    source_label = (
        TreatmentSource.API if data_import.source == ImportSource.API else TreatmentSource.IMPORT
    )
    counts = stage.merge(merchant.pk, source=source_label)
    counts.customers_created = customers_created
    stage.drop()
    return counts, total


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
    column, what = ("customer_id", "customer") if kind == ImportKind.CUSTOMERS else ("", "row")
    problems.add(
        repeated,
        frame["line"].to_numpy(),
        column,
        ("same as line " + first).to_numpy(),
        f"duplicate {what} in this file",
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
