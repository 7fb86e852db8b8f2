"""Run the whole loop on a fresh simulated merchant and compare what was measured with the truth."""

from __future__ import annotations

import time
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from campaigns.loop import LoopError, describe, loop_campaign, loop_train
from campaigns.models import Merchant
from campaigns.simulated import SimulationImportError, merchant_load_simulation

DEFAULT_CUSTOMERS = 50_000
DEFAULT_EPOCHS = 6
# The campaign's budget (expected coupon spend) per customer when none is given: on the
# simulator's merchants the oracle's unconstrained spend is about 0.57 per customer, so this
# leaves the optimizer a real choice without starving it.
BUDGET_PER_CUSTOMER = Decimal("0.40")


class Command(BaseCommand):
    help = (
        "Run the whole loop on a simulated merchant: simulate and import it, train a model, "
        "propose and apply a strategy, play the next period from the simulator's ground truth, "
        "import its outcomes, measure them against the holdout and retrain; then print the "
        "realized incremental profit beside the simulator's true one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--epochs", type=int, default=DEFAULT_EPOCHS, help="Training epochs per version."
        )
        parser.add_argument(
            "--budget",
            type=Decimal,
            help=f"The campaign's budget (default {BUDGET_PER_CUSTOMER} per customer).",
        )
        parser.add_argument("--slug", help="Defaults to loop-<customers>-<seed>[-n].")

    def handle(self, *args, customers: int, seed: int, epochs: int, **options):
        if customers < 1000:
            raise CommandError("Simulate at least 1,000 customers: the holdout needs them.")
        started = time.perf_counter()
        merchant = self._new_merchant(options["slug"] or f"loop-{customers}-{seed}", seed)
        say = self.stdout.write
        budget = options["budget"] or (BUDGET_PER_CUSTOMER * customers).quantize(Decimal("1"))
        try:
            say(f"1. Simulating {customers:,} customers (seed {seed}) into {merchant.slug}")
            simulation = merchant_load_simulation(
                merchant=merchant, customers=customers, seed=seed, report=say
            )
            say("2. Training the first model and scoring every customer")
            first = loop_train(merchant=merchant, epochs=epochs, report=say)
            say(f"3. Campaign: propose (budget {budget:,}), apply, play the period, measure")
            loop = loop_campaign(
                merchant=merchant,
                truth=simulation.truth,
                budget=budget,
                seed=seed,
                report=say,
            )
            say("4. Retraining on the experiment plus the campaign's holdout and exploration")
            second = loop_train(merchant=merchant, epochs=epochs, report=say)
        except (LoopError, SimulationImportError) as error:
            raise CommandError(str(error)) from None
        second.refresh_from_db()
        first.refresh_from_db()
        say("")
        for line in describe(loop, merchant.currency):
            say(line)
        champion = second if second.is_champion else first
        say(f"  model versions: v{first.number} and v{second.number}; champion v{champion.number}")
        inside = loop.truth_inside
        style = self.style.SUCCESS if inside else self.style.WARNING
        say(
            style(
                f"Loop done in {time.perf_counter() - started:,.0f} s: the truth is "
                + ("inside" if inside else "OUTSIDE")
                + " the realized interval."
            )
        )

    def _new_merchant(self, slug: str, seed: int) -> Merchant:
        base, n = slugify(slug), 1
        candidate = base
        while Merchant.objects.filter(slug=candidate).exists():
            n += 1
            candidate = f"{base}-{n}"
        return Merchant.objects.create(
            slug=candidate, name=f"Loop shop {seed}", currency="CNY", timezone="Asia/Shanghai"
        )
