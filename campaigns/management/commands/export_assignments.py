"""Export a merchant's coupon assignments as CSV, to a file or standard output."""

from __future__ import annotations

from django.core.management.base import CommandError

from campaigns.assignments import EXPORT_HEADER, assignment_export_rows
from campaigns.choices import AssignmentKind
from campaigns.exports import csv_lines
from campaigns.management.campaigning import CampaignCommand
from campaigns.selectors import merchant_assignments


class Command(CampaignCommand):
    help = "Write assignments as CSV (UTF-8 with BOM; formula-safe), optionally filtered."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--campaign", type=int)
        parser.add_argument("--strategy", type=int)
        parser.add_argument("--kind", choices=AssignmentKind.values)
        parser.add_argument("--customer", help="One customer (the shop's id).")
        parser.add_argument("--output", default="-", help="A file path; '-' (default): stdout.")

    def handle(self, *args, **options):
        merchant = self.merchant(options["merchant"])
        queryset = merchant_assignments(
            merchant=merchant,
            campaign=options["campaign"],
            strategy=options["strategy"],
            kind=options["kind"],
            customer=options["customer"],
        )
        lines = csv_lines(EXPORT_HEADER, assignment_export_rows(queryset))
        rows = -1  # the header
        if options["output"] == "-":
            for line in lines:
                self.stdout.write(line, ending="")
                rows += 1
            self.stdout.flush()
        else:
            try:
                with open(options["output"], "w", encoding="utf-8", newline="") as out:
                    for line in lines:
                        out.write(line)
                        rows += 1
            except OSError as error:
                raise CommandError(f"Cannot write {options['output']}: {error}") from None
            self.stdout.write(
                self.style.SUCCESS(f"{rows:,} assignments written to {options['output']}")
            )
