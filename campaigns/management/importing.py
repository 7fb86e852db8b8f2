"""The management-command door of the import service (import_customers, _events, _treatments,
_outcomes)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from campaigns.choices import ImportSource, ImportStatus
from campaigns.imports.service import import_copy_file, import_create_from_file, import_run
from campaigns.management import SiteLanguageMixin
from campaigns.models import DataImport, Merchant


class ImportCommand(SiteLanguageMixin, BaseCommand):
    kind: str

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", type=Path, help="CSV file (UTF-8, UTF-8 with BOM, GB18030/GBK)."
        )
        parser.add_argument("--merchant", required=True, help="The merchant's slug.")
        parser.add_argument(
            "--encoding",
            choices=["utf-8", "utf-8-sig", "gb18030"],
            help="Skip detection and read the file in this encoding.",
        )
        if self.kind != "customers":
            parser.add_argument(
                "--create-customers",
                action="store_true",
                help="Create customers the file names but the merchant does not have yet.",
            )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, path: Path, merchant: str, encoding: str | None, **options) -> None:
        shop = Merchant.objects.filter(slug=merchant).first()
        if shop is None:
            raise CommandError(f"No merchant with the slug {merchant!r}.")
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        data_import = import_create_from_file(
            merchant=shop,
            kind=self.kind,
            path=import_copy_file(merchant=shop, path=path),
            filename=path.name,
            actor=None,
            source=ImportSource.COMMAND,
        )
        if data_import.status == ImportStatus.REJECTED:
            raise CommandError(data_import.message)
        if encoding:
            data_import.encoding = encoding
        data_import.create_missing_customers = bool(options.get("create_customers"))
        data_import.save()
        with tqdm(total=100, unit="%", disable=options["no_progress"], file=self.stderr) as bar:

            def progress(percent: int, message: str) -> None:
                bar.set_description(message[:60])
                bar.update(max(0, percent - bar.n))

            data_import = import_run(data_import=data_import, progress=progress)
        self._report(data_import)

    def _report(self, data_import: DataImport) -> None:
        if data_import.status == ImportStatus.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(data_import.message))
            return
        for error in data_import.errors[:50]:
            where = f"line {error['line']}" if error["line"] else "file"
            column = f", column {error['column']}" if error["column"] else ""
            value = f" ({error['value']!r})" if error["value"] else ""
            self.stderr.write(f"{where}{column}{value}: {error['reason']}")
        if data_import.error_count > 50:
            self.stderr.write(f"... and {data_import.error_count - 50:,} more problems.")
        raise CommandError(data_import.message)
