"""Import customers from a CSV file: all or nothing, with row-level errors."""

from __future__ import annotations

from campaigns.management.importing import ImportCommand


class Command(ImportCommand):
    help = "Import customers from a CSV file into a merchant (all or nothing; safe to repeat)."
    kind = "customers"
