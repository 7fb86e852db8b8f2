"""Applying a strategy (one assignment per eligible customer, unique coupon codes), rolling it
back, and exporting assignments.

Apply is all or nothing and happens once. It locks the campaign row, checks that no strategy of
the campaign is applied, and writes every assignment in one transaction: rows are staged in a
temporary table (COPY on PostgreSQL, executemany on SQLite, as imports do) and inserted in one
statement; a code that happens to exist already (the database's unique index says so) is
skipped by ``ON CONFLICT (code) DO NOTHING`` and drawn again. A second apply of the same
strategy, or two at the same moment, waits for the lock, finds the strategy applied and creates
nothing. Held-out customers are remembered per campaign (``CampaignHoldout``), so proposing and
applying again after a rollback keeps them held out.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from modeling.choices import JobKind, JobStatus
from modeling.models import Job
from modeling.services import job_enqueue

from .choices import AssignmentKind, AuditVerb, CampaignStatus, StrategyStatus
from .codes import generate_codes
from .models import (
    Assignment,
    Campaign,
    CampaignHoldout,
    CouponType,
    Customer,
    Outcome,
    RealizedResult,
    Strategy,
)
from .services import audit_record
from .strategies import KIND_NAMES, StrategyError, read_choices

Report = Callable[[int, str], None]
# Rows per COPY/executemany batch into the staging table; a million rows stage in about two
# seconds on PostgreSQL (COPY) and ten on SQLite.
STAGE_BATCH = 200_000
CODE_ATTEMPTS = 8
_STAGE_COLUMNS = (
    ("customer_id", "bigint"),
    ("coupon_type_id", "bigint"),
    ("kind", "varchar(12)"),
    ("code", "varchar(40)"),
    ("propensity", "double precision"),
)


@dataclass
class ApplyResult:
    strategy: Strategy
    created: int  # assignments this call created (0: the strategy was applied already)
    already_applied: bool = False


def _check_applicable(*, strategy: Strategy, campaign: Campaign, now: datetime) -> None:
    if strategy.status not in (StrategyStatus.PROPOSED, StrategyStatus.ROLLED_BACK):
        raise ValidationError(
            _("This strategy cannot be applied: %(status)s.")
            % {"status": strategy.get_status_display()}
        )
    if strategy.campaign_revision != campaign.revision:
        raise ValidationError(
            _("The campaign changed after this strategy was proposed: propose again.")
        )
    if campaign.status == CampaignStatus.COMPLETED or now >= campaign.ends_at:
        raise ValidationError(_("The campaign has ended."))
    applied = (
        Strategy.objects.filter(campaign=campaign, status=StrategyStatus.APPLIED)
        .exclude(pk=strategy.pk)
        .first()
    )
    if applied is not None:
        raise ValidationError(
            _("Strategy #%(id)d of this campaign is applied: roll it back first.")
            % {"id": applied.pk}
        )


@transaction.atomic
def strategy_apply_enqueue(*, strategy: Strategy, actor) -> Job | None:
    """Queue the apply job (None when the strategy is applied already). A job already queued
    or running for this strategy is returned rather than a second one."""
    from .tasks import apply_strategy

    campaign = Campaign.objects.select_for_update().get(pk=strategy.campaign_id)
    strategy = Strategy.objects.get(pk=strategy.pk)
    if strategy.status == StrategyStatus.APPLIED:
        return None
    _check_applicable(strategy=strategy, campaign=campaign, now=timezone.now())
    running = (
        Job.objects.filter(
            merchant=campaign.merchant,
            kind=JobKind.APPLY,
            status__in=JobStatus.active(),
            params__strategy_id=strategy.pk,
        )
        .order_by("-id")
        .first()
    )
    if running is not None:
        return running
    return job_enqueue(
        merchant=campaign.merchant,
        kind=JobKind.APPLY,
        task=apply_strategy,
        created_by=actor,
        params={"strategy_id": strategy.pk},
    )


def strategy_apply(
    *, strategy: Strategy, actor, report: Report | None = None, now: datetime | None = None
) -> ApplyResult:
    """Create one assignment per eligible customer of the strategy, once (see module doc)."""
    report = report or (lambda progress, message: None)
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=strategy.campaign_id)
        strategy = Strategy.objects.select_related("campaign", "model_version").get(pk=strategy.pk)
        if strategy.status == StrategyStatus.APPLIED:
            return ApplyResult(strategy=strategy, created=0, already_applied=True)
        _check_applicable(strategy=strategy, campaign=campaign, now=now)
        try:
            table = read_choices(strategy)
        except StrategyError as error:
            raise ValidationError(str(error)) from None
        customer_ids = table.column("customer_id").to_numpy()
        kind = table.column("kind").to_numpy()
        arm = table.column("arm").to_numpy().astype(np.int64)
        propensity = table.column("propensity").to_numpy().astype(np.float64)

        sticky = np.fromiter(
            CampaignHoldout.objects.filter(campaign=campaign)
            .values_list("customer_id", flat=True)
            .iterator(chunk_size=100_000),
            dtype=np.int64,
        )
        holdout_code = _kind_code(AssignmentKind.HOLDOUT)
        if np.any(np.isin(customer_ids, sticky) & (kind != holdout_code)):
            raise ValidationError(
                _("Customers held out of this campaign before would get coupons: propose again.")
            )
        existing = np.fromiter(
            Customer.objects.filter(merchant=campaign.merchant)
            .values_list("id", flat=True)
            .iterator(chunk_size=100_000),
            dtype=np.int64,
        )
        keep = np.isin(customer_ids, existing)
        customer_ids, kind, arm, propensity = (
            customer_ids[keep],
            kind[keep],
            arm[keep],
            propensity[keep],
        )
        coupon_ids = dict(
            CouponType.objects.filter(
                merchant=campaign.merchant, code__in=strategy.arms[1:]
            ).values_list("code", "id")
        )
        arm_coupon = np.array(
            [-1] + [coupon_ids[code] for code in strategy.arms[1:]], dtype=np.int64
        )
        coupon_type_id = arm_coupon[arm]
        kinds = np.array([KIND_NAMES[k] for k in range(len(KIND_NAMES))], dtype=object)[kind]
        report(20, _("Creating %(n)s assignments") % {"n": f"{customer_ids.size:,}"})
        created = _insert_assignments(
            campaign=campaign,
            strategy=strategy,
            customer_ids=customer_ids,
            coupon_type_id=coupon_type_id,
            kinds=kinds,
            propensity=propensity,
            now=now,
            report=report,
        )
        report(90, _("Remembering the holdout"))
        _remember_holdout(campaign=campaign, customer_ids=customer_ids[kind == holdout_code])
        Strategy.objects.filter(pk=strategy.pk).update(
            status=StrategyStatus.APPLIED,
            applied_at=now,
            applied_by=actor if actor is not None and actor.is_authenticated else None,
            rolled_back_at=None,
            rolled_back_by=None,
        )
        Campaign.objects.filter(pk=campaign.pk).update(
            status=CampaignStatus.APPLIED, updated_at=now
        )
        audit_record(
            merchant=campaign.merchant,
            actor=actor,
            verb=AuditVerb.STRATEGY_APPLIED,
            target=f"{campaign.name} #{strategy.pk}",
            data={
                "campaign": campaign.pk,
                "strategy": strategy.pk,
                "assignments": created,
                "coupons": int((coupon_type_id > 0).sum()),
                "holdout": int((kind == holdout_code).sum()),
                "exploration": int((kind == _kind_code(AssignmentKind.EXPLORATION)).sum()),
            },
        )
    strategy.refresh_from_db()
    return ApplyResult(strategy=strategy, created=created)


def _kind_code(kind: str) -> int:
    return next(code for code, name in KIND_NAMES.items() if name == kind)


class _Stage:
    """A temporary table of assignment rows, living until the transaction ends."""

    def __init__(self) -> None:
        self.name = f"assignment_stage_{uuid.uuid4().hex[:12]}"
        self.postgres = connection.vendor == "postgresql"
        definitions = ", ".join(f"{name} {kind}" for name, kind in _STAGE_COLUMNS)
        suffix = " ON COMMIT DROP" if self.postgres else ""
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {self.name} ({definitions}){suffix}")

    def load(self, table: pa.Table) -> None:
        names = ", ".join(name for name, _ in _STAGE_COLUMNS)
        for start in range(0, table.num_rows, STAGE_BATCH):
            batch = table.slice(start, STAGE_BATCH)
            with connection.cursor() as cursor:
                if self.postgres:
                    buffer = io.BytesIO()
                    pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                    with cursor.cursor.copy(
                        f"COPY {self.name} ({names}) FROM STDIN (FORMAT csv)"
                    ) as copy:
                        copy.write(buffer.getvalue())
                else:
                    cursor.executemany(
                        f"INSERT INTO {self.name} ({names}) VALUES (%s, %s, %s, %s, %s)",
                        zip(*[batch.column(i).to_pylist() for i in range(5)], strict=True),
                    )

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")


def _insert_assignments(
    *,
    campaign: Campaign,
    strategy: Strategy,
    customer_ids: np.ndarray,
    coupon_type_id: np.ndarray,
    kinds: np.ndarray,
    propensity: np.ndarray,
    now: datetime,
    report: Report,
) -> int:
    """Insert the rows; draw again the codes the database already holds. Returns the count."""
    assigned_at = connection.ops.adapt_datetimefield_value(now)
    pending = np.arange(customer_ids.size)
    created = 0
    for attempt in range(CODE_ATTEMPTS):
        has_coupon = coupon_type_id[pending] > 0
        codes = np.full(pending.size, None, dtype=object)
        codes[has_coupon] = generate_codes(int(has_coupon.sum()), prefix=campaign.code_prefix)
        table = pa.table(
            {
                "customer_id": pa.array(customer_ids[pending], pa.int64()),
                "coupon_type_id": pa.array(coupon_type_id[pending], pa.int64(), mask=~has_coupon),
                "kind": pa.array(kinds[pending], pa.string()),
                "code": pa.array(codes, pa.string()),
                "propensity": pa.array(propensity[pending], pa.float64()),
            }
        )
        stage = _Stage()
        try:
            stage.load(table)
            with connection.cursor() as cursor:
                if stage.postgres:
                    cursor.execute(f"ANALYZE {stage.name}")
                cursor.execute(
                    f"""INSERT INTO {Assignment._meta.db_table}
                        (merchant_id, campaign_id, strategy_id, customer_id, coupon_type_id,
                         kind, code, propensity, assigned_at)
                    SELECT %s, %s, %s, customer_id, coupon_type_id, kind, code, propensity, %s
                    FROM {stage.name} WHERE true
                    ON CONFLICT (code) DO NOTHING""",
                    [campaign.merchant_id, campaign.pk, strategy.pk, assigned_at],
                )
                created += cursor.rowcount
                if created == customer_ids.size:
                    return created
                # The rows whose code someone else holds: draw theirs again.
                cursor.execute(
                    f"""SELECT s.customer_id FROM {stage.name} s WHERE NOT EXISTS (
                        SELECT 1 FROM {Assignment._meta.db_table} a
                        WHERE a.campaign_id = %s AND a.customer_id = s.customer_id)""",
                    [campaign.pk],
                )
                left = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
        finally:
            stage.drop()
        pending = pending[np.isin(customer_ids[pending], left)]
        report(
            20 + 10 * (attempt + 1),
            _("Drawing %(n)s colliding codes again") % {"n": pending.size},
        )
    raise RuntimeError("Could not draw unique coupon codes; is the code space exhausted?")


def _remember_holdout(*, campaign: Campaign, customer_ids: np.ndarray) -> None:
    if customer_ids.size == 0:
        return
    table = CampaignHoldout._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, customer_ids.size, STAGE_BATCH):
            batch = customer_ids[start : start + STAGE_BATCH]
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"""INSERT INTO {table} (campaign_id, customer_id)
                    SELECT %s, unnest(%s::bigint[])
                    ON CONFLICT (campaign_id, customer_id) DO NOTHING""",
                    [campaign.pk, batch.tolist()],
                )
            else:
                cursor.executemany(
                    f"""INSERT INTO {table} (campaign_id, customer_id) VALUES (%s, %s)
                    ON CONFLICT (campaign_id, customer_id) DO NOTHING""",
                    [(campaign.pk, int(c)) for c in batch],
                )


@transaction.atomic
def strategy_rollback(*, strategy: Strategy, actor, now: datetime | None = None) -> Strategy:
    """Undo an applied strategy before its campaign starts: its assignments go, the campaign is
    ready again (the held-out customers stay remembered)."""
    now = now or timezone.now()
    campaign = Campaign.objects.select_for_update().get(pk=strategy.campaign_id)
    strategy = Strategy.objects.get(pk=strategy.pk)
    if strategy.status != StrategyStatus.APPLIED:
        raise ValidationError(_("Only an applied strategy can be rolled back."))
    if now >= campaign.starts_at:
        raise ValidationError(
            _(
                "The campaign started at %(start)s: its coupons may be in use, so the strategy "
                "can no longer be rolled back."
            )
            % {"start": timezone.localtime(campaign.starts_at).strftime("%Y-%m-%d %H:%M")}
        )
    # Orders attributed to these assignments (only ones dated after the campaign's start can
    # be, so normally none) go back to unattributed; their foreign key is not enforced, so the
    # assignments then go in one DELETE statement.
    Outcome.objects.filter(assignment__strategy=strategy).update(assignment=None)
    RealizedResult.objects.filter(strategy=strategy).delete()
    deleted, _by_model = Assignment.objects.filter(strategy=strategy).delete()
    Strategy.objects.filter(pk=strategy.pk).update(
        status=StrategyStatus.ROLLED_BACK,
        rolled_back_at=now,
        rolled_back_by=actor if actor is not None and actor.is_authenticated else None,
    )
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.READY, updated_at=now)
    audit_record(
        merchant=campaign.merchant,
        actor=actor,
        verb=AuditVerb.STRATEGY_ROLLED_BACK,
        target=f"{campaign.name} #{strategy.pk}",
        data={"campaign": campaign.pk, "strategy": strategy.pk, "assignments_deleted": deleted},
    )
    strategy.refresh_from_db()
    return strategy


def campaigns_complete_ended(*, now: datetime | None = None) -> int:
    """Mark applied campaigns whose end has passed completed; returns how many."""
    now = now or timezone.now()
    return Campaign.objects.filter(status=CampaignStatus.APPLIED, ends_at__lte=now).update(
        status=CampaignStatus.COMPLETED, updated_at=now
    )


# --- export --------------------------------------------------------------------------------------

EXPORT_HEADER = [
    "campaign_id",
    "campaign",
    "strategy_id",
    "customer_id",
    "kind",
    "arm",
    "code",
    "propensity",
    "assigned_at",
]
EXPORT_CHUNK = 5_000


def assignment_export_rows(queryset: QuerySet[Assignment]) -> Iterator[list]:
    """CSV rows of these assignments in (campaign, customer) order, fetched in chunks."""
    rows = (
        queryset.order_by("campaign_id", "customer_id")
        .values_list(
            "campaign_id",
            "campaign__name",
            "strategy_id",
            "customer__external_id",
            "kind",
            "coupon_type__code",
            "code",
            "propensity",
            "assigned_at",
        )
        .iterator(chunk_size=EXPORT_CHUNK)
    )
    for campaign_id, name, strategy_id, customer, kind, coupon, code, p, at in rows:
        yield [
            campaign_id,
            name,
            strategy_id,
            customer,
            kind,
            coupon or "control",
            code or "",
            f"{p:.6g}",
            at.isoformat(),
        ]
