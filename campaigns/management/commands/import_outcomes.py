"""Import outcomes (orders after a campaign started) from a CSV file: all or nothing, with
row-level errors; each order is attributed to a campaign assignment on the way in."""

from __future__ import annotations

from campaigns.management.importing import ImportCommand


class Command(ImportCommand):
    help = (
        "Import outcomes (customer_id, order_id, ordered_at, revenue, code) from a CSV file into "
        "a merchant: orders are attributed to campaign assignments by code and attribution "
        "window, all or nothing; importing the same orders again adds nothing. The realized "
        "results of the strategies they count for are recomputed."
    )
    kind = "outcomes"
