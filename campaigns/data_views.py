"""Data pages: the data health overview, the upload flow (file, preview, column mapping, start),
live import results, and the problems of an import as CSV. Mounted under /m/<merchant>/data/.

The views are thin: the import service (campaigns.imports.service) does the work, the summary
(campaigns.summary) is read as one stored row.
"""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import FormView, TemplateView

from . import charts
from .choices import EventType, ImportKind, ImportStatus, Role
from .exports import csv_response
from .imports.reading import InputError
from .imports.schema import LEAVE_OUT, SCHEMAS, attribute_name
from .imports.service import (
    import_configure,
    import_create_from_upload,
    import_preview,
    import_start,
)
from .models import DataImport, MerchantDataSummary
from .summary import merchant_data_summary, merchant_recent_imports
from .tenancy import MerchantViewMixin

PREVIEW_ROWS = 10
SAMPLE_VALUES = 3  # values shown beside each column in the mapping form
PROBLEMS_SHOWN = 200
# Imports whose column mapping may still be changed and which may be started (again).
STARTABLE = (ImportStatus.UPLOADED, ImportStatus.FAILED)
ACTIVE = (ImportStatus.QUEUED, ImportStatus.RUNNING)

# One colour per event type, the same on every merchant's chart (palette: campaigns/charts.py).
OKABE_ITO = {
    EventType.VIEW: charts.SKY_BLUE,
    EventType.SEARCH: charts.ORANGE,
    EventType.CART: charts.GREEN,
    EventType.FAVORITE: charts.PURPLE,
    EventType.PURCHASE: charts.BLUE,
    EventType.REFUND: charts.VERMILION,
    EventType.REVIEW: charts.YELLOW,
}
OTHER_COLOUR = charts.BLACK


# --- forms -------------------------------------------------------------------------------------


class DataUploadForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("What the file holds"),
        choices=ImportKind.choices,
        initial=ImportKind.CUSTOMERS,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "UTF-8, UTF-8 with BOM or GB18030/GBK; the first row names the columns."
        ),
        widget=forms.FileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )


AS_ATTRIBUTE = "__attribute__"


class ColumnMappingForm(forms.Form):
    """One choice per source column: a target column of the kind's schema, or left out.

    Customers keep columns that are not the customer id as attributes (or leave them out).
    """

    def __init__(
        self, *args: Any, kind: str, header: list[str], mapping: dict[str, str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.header = header
        self.schema = SCHEMAS[kind]
        names = self.schema.names
        targets = [(name, name) for name in names]
        if self.schema.extra_columns_are_attributes:
            choices = [*targets, (AS_ATTRIBUTE, _("attribute")), (LEAVE_OUT, _("(leave out)"))]
        else:
            choices = [(LEAVE_OUT, _("(leave out)")), *targets]
        for index, source in enumerate(header):
            current = mapping.get(source) or LEAVE_OUT
            if current not in names and current != LEAVE_OUT:
                current = AS_ATTRIBUTE if self.schema.extra_columns_are_attributes else LEAVE_OUT
            self.fields[self.field_name(index)] = forms.ChoiceField(
                label=source,
                choices=choices,
                initial=current,
                required=False,
                widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
            )
        if kind != ImportKind.CUSTOMERS:
            self.fields["create_missing_customers"] = forms.BooleanField(
                label=_("Create unknown customers"),
                required=False,
                help_text=_(
                    "Rows of customers you have not imported yet create those customers. "
                    "Without this, such rows are reported as problems."
                ),
            )

    @staticmethod
    def field_name(index: int) -> str:
        return f"column_{index}"

    def column_fields(self) -> list[forms.BoundField]:
        return [self[self.field_name(index)] for index in range(len(self.header))]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        mapping = self._mapping(cleaned)
        sources_by_target: dict[str, list[str]] = {}
        for source, target in mapping.items():
            if target:
                sources_by_target.setdefault(target, []).append(source)
        for target, sources in sources_by_target.items():
            if len(sources) > 1:
                raise forms.ValidationError(
                    _("The columns %(sources)s are all imported as '%(target)s'; choose one.")
                    % {"sources": ", ".join(sources), "target": target}
                )
        missing = [
            column.name
            for column in self.schema.columns
            if column.required and column.name not in sources_by_target
        ]
        if missing:
            raise forms.ValidationError(
                _("Choose a column of your file for: %(columns)s.")
                % {"columns": ", ".join(missing)}
            )
        cleaned["mapping"] = mapping
        return cleaned

    def _mapping(self, cleaned: dict[str, Any]) -> dict[str, str]:
        mapping = {}
        for index, source in enumerate(self.header):
            choice = cleaned.get(self.field_name(index)) or LEAVE_OUT
            mapping[source] = attribute_name(source) if choice == AS_ATTRIBUTE else choice
        return mapping


# --- pages -------------------------------------------------------------------------------------


class DataOverviewView(MerchantViewMixin, TemplateView):
    """Data health (from the stored summary), the events chart, arms, and recent imports."""

    template_name = "campaigns/data/overview.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        summary = merchant_data_summary(merchant=self.merchant)
        context["summary"] = summary
        context["events_chart"] = events_per_day_figure(
            summary=summary, timezone_name=self.merchant.timezone
        )
        context["event_types"] = event_type_rows(summary=summary)
        context["arms"] = arm_rows(summary=summary)
        context["recent_imports"] = merchant_recent_imports(merchant=self.merchant, limit=10)
        return context


def event_type_rows(*, summary: MerchantDataSummary) -> list[dict[str, Any]]:
    labels = dict(EventType.choices)
    total = summary.events or 1
    return [
        {
            "label": labels.get(row["event_type"], row["event_type"]),
            "count": row["count"],
            "share": 100 * row["count"] / total,
            "colour": OKABE_ITO.get(row["event_type"], OTHER_COLOUR),
        }
        for row in summary.events_by_type
    ]


def arm_rows(*, summary: MerchantDataSummary) -> list[dict[str, Any]]:
    """The stored arms with their conversion rates in percent and Wilson 95% intervals."""
    rows = []
    for arm in summary.arms:
        low, high = wilson_interval(arm["conversions"], arm["assigned"])
        rows.append(
            {
                **arm,
                "rate_pct": 100 * (arm["conversion_rate"] or 0),
                "low_pct": 100 * low,
                "high_pct": 100 * high,
            }
        )
    return rows


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sensible for small counts and rates near 0)."""
    if trials <= 0:
        return 0.0, 0.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    spread = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - spread / denominator), min(1.0, centre + spread / denominator)


def events_per_day_figure(*, summary: MerchantDataSummary, timezone_name: str) -> dict | None:
    """A Plotly figure (data and layout) of events per day, stacked by event type."""
    by_day = summary.events_by_day
    if not by_day.get("days"):
        return None
    labels = dict(EventType.choices)
    events = _("events")
    traces = [
        {
            "type": "bar",
            "name": str(labels.get(event_type, event_type)),  # not a lazy string, for JSON
            "x": by_day["days"],
            "y": counts,
            "marker": {"color": OKABE_ITO.get(event_type, OTHER_COLOUR)},
            "hovertemplate": f"%{{x|%Y-%m-%d}}: %{{y:,}} {events}<extra>%{{fullData.name}}</extra>",
        }
        for event_type, counts in by_day["counts"].items()
    ]
    layout = {
        "title": {"text": _("Events per day, by type")},
        "barmode": "stack",
        "xaxis": {
            "title": {"text": _("Day (%(zone)s)") % {"zone": timezone_name}},
            "type": "date",
        },
        "yaxis": {"title": {"text": _("Events (count)")}, "rangemode": "tozero"},
        "legend": {"title": {"text": _("Event type")}},
        "margin": {"t": 60, "r": 20, "b": 60, "l": 70},
        "height": 380,
    }
    return {"data": traces, "layout": layout}


class DataUploadView(MerchantViewMixin, FormView):
    """Choose the kind and the file; the upload is stored and its columns detected."""

    template_name = "campaigns/data/upload.html"
    form_class = DataUploadForm
    write_role = Role.MANAGER

    def get_initial(self) -> dict[str, Any]:
        kind = self.request.GET.get("kind")
        return {"kind": kind} if kind in ImportKind.values else {}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["schemas"] = [(ImportKind(kind).label, schema) for kind, schema in SCHEMAS.items()]
        context["max_upload_bytes"] = settings.IMPORT_MAX_UPLOAD_BYTES
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Refuse an oversized upload from its declared length, before Django reads the body.
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        if declared > limit + 64 * 1024:  # room for the form's other fields
            form = self.form_class(data={"kind": request.GET.get("kind", "")})
            form.errors.clear()
            form.add_error(
                None,
                _("The file is larger than the limit of %(limit)s MB; split it into parts.")
                % {"limit": f"{limit / 2**20:,.0f}"},
            )
            return self.render_to_response(self.get_context_data(form=form), status=413)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: DataUploadForm) -> HttpResponse:
        try:
            data_import = import_create_from_upload(
                merchant=self.merchant,
                kind=form.cleaned_data["kind"],
                upload=form.cleaned_data["file"],
                actor=self.request.user,
            )
        except InputError as error:
            form.add_error("file", str(error))
            return self.form_invalid(form)
        return redirect("data:import", merchant=self.merchant.slug, import_id=data_import.pk)


class _ImportMixin(MerchantViewMixin):
    """Loads the merchant's import named by the URL (404 for any other merchant's)."""

    kwargs: dict[str, Any]

    def get_import(self) -> DataImport:
        queryset = self.scoped(DataImport).select_related("job", "job__merchant", "created_by")
        return get_object_or_404(queryset, pk=self.kwargs["import_id"])


class DataImportView(_ImportMixin, TemplateView):
    """One import: file facts, preview, column mapping (until started), progress and results."""

    template_name = "campaigns/data/import.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        mapping_form = kwargs.pop("mapping_form", None)
        data_import = kwargs.pop("data_import", None) or self.get_import()
        context = super().get_context_data(**kwargs)
        context.update(import_result_context(data_import))
        header, rows, preview_error = _preview(data_import)
        # Rows may be ragged: pad short ones (None marks a missing cell) and give extra cells a
        # blank heading, so the table stays aligned and shows what is wrong.
        width = max([len(header or []), *(len(row) for row in rows)])
        context.update(
            preview_header=header,
            preview_extra_columns=range(width - len(header or [])),
            preview_rows=[row + [None] * (width - len(row)) for row in rows],
            preview_error=preview_error,
        )
        context["startable"] = startable = data_import.status in STARTABLE and header is not None
        if startable and self.can(Role.MANAGER):
            form = mapping_form or ColumnMappingForm(
                kind=data_import.kind,
                header=header,
                mapping=data_import.column_mapping,
                initial={"create_missing_customers": data_import.create_missing_customers},
            )
            context["mapping_form"] = form
            context["mapping_rows"] = [
                (field, [row[index] for row in rows[:SAMPLE_VALUES] if index < len(row)])
                for index, field in enumerate(form.column_fields())
            ]
        return context


def _preview(data_import: DataImport) -> tuple[list[str] | None, list[list[str]], str]:
    """The header and first rows, or (None, [], why) when the file cannot be read."""
    if not data_import.stored_path or not data_import.encoding:
        return None, [], ""
    try:
        header, rows = import_preview(data_import=data_import, rows=PREVIEW_ROWS)
    except FileNotFoundError:
        return None, [], _("The uploaded file is no longer available; upload it again.")
    except (InputError, OSError, LookupError, UnicodeError) as error:
        return None, [], str(error)
    return header, rows, ""


def import_result_context(data_import: DataImport) -> dict[str, Any]:
    """What the results section shows: progress while running, then counts or problems."""
    job = data_import.job
    active = data_import.status in ACTIVE
    # A job that ended without finishing its import (cancelled while queued, a worker that
    # died): stop polling and say so.
    stalled = active and job is not None and not job.is_active
    problems = [] if active else data_import.errors[:PROBLEMS_SHOWN]
    return {
        "data_import": data_import,
        "job": job,
        "polling": active and not stalled,
        "stalled": stalled,
        "problems": problems,
        "problems_stored": len(data_import.errors),
    }


class DataImportResultView(_ImportMixin, TemplateView):
    """The results fragment the import page polls while the import is queued or running."""

    template_name = "campaigns/data/_import_result.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(import_result_context(self.get_import()), oob=True)
        return context


class DataImportStartView(DataImportView):
    """Save the column mapping and start the import as a job; a second click starts nothing."""

    http_method_names = ["post"]
    write_role = Role.MANAGER

    def post(self, request: HttpRequest, merchant: str, import_id: int) -> HttpResponse:
        data_import = self.get_import()
        here = redirect("data:import", merchant=self.merchant.slug, import_id=data_import.pk)
        if data_import.status not in STARTABLE:
            messages.info(request, _("This import has already been started."))
            return here
        header, _rows, problem = _preview(data_import)
        if header is None:
            messages.error(request, problem or _("This file cannot be imported."))
            return here
        form = ColumnMappingForm(
            request.POST, kind=data_import.kind, header=header, mapping=data_import.column_mapping
        )
        if not form.is_valid():
            context = self.get_context_data(data_import=data_import, mapping_form=form)
            return self.render_to_response(context, status=400)
        import_configure(
            data_import=data_import,
            mapping=form.cleaned_data["mapping"],
            create_missing_customers=form.cleaned_data.get("create_missing_customers", False),
        )
        import_start(data_import=data_import, actor=request.user)
        return here


class DataImportErrorsView(_ImportMixin, View):
    """Every stored problem of an import as a CSV download (line, column, value, reason)."""

    def get(self, request: HttpRequest, merchant: str, import_id: int) -> HttpResponse:
        data_import = self.get_import()
        rows = (
            [problem.get(key, "") for key in ("line", "column", "value", "reason")]
            for problem in data_import.errors
        )
        return csv_response(
            filename=f"import-{data_import.pk}-problems.csv",
            header=[_("line"), _("column"), _("value"), _("reason")],
            rows=rows,
        )
