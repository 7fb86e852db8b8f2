"""Create a merchant from the ground-truth simulator, loaded through the real import path."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from campaigns.models import Merchant
from campaigns.simulated import SimulationImportError, merchant_load_simulation, simulation_dir


class Command(BaseCommand):
    help = (
        "Simulate a merchant (customers, ~90 days of events, a randomized coupon experiment) "
        "and import it through the import service; the ground truth is kept beside the CSVs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, required=True)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--slug", help="Defaults to sim-<customers>-<seed>.")
        parser.add_argument("--name", help="Defaults to 'Simulated shop <seed>'.")
        parser.add_argument("--currency", default="CNY")
        parser.add_argument("--timezone", default="Asia/Shanghai")

    def handle(self, *args, customers: int, seed: int, **options):
        if customers < 100:
            raise CommandError("Simulate at least 100 customers.")
        merchant, _ = Merchant.objects.get_or_create(
            slug=options["slug"] or slugify(f"sim-{customers}-{seed}"),
            defaults={
                "name": options["name"] or f"Simulated shop {seed}",
                "currency": options["currency"],
                "timezone": options["timezone"],
            },
        )
        self.stdout.write(f"Simulating {customers:,} customers (seed {seed}) for {merchant.slug}")
        try:
            merchant_load_simulation(
                merchant=merchant, customers=customers, seed=seed, report=self.stdout.write
            )
        except SimulationImportError as error:
            raise CommandError(str(error)) from None
        folder = simulation_dir(merchant)
        self.stdout.write(self.style.SUCCESS(f"{merchant.slug} is ready; ground truth in {folder}"))
