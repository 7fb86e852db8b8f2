"""Propose a strategy for a campaign (a job; waited for) and print the numbers to review."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from campaigns.management.campaigning import CampaignCommand
from campaigns.models import Campaign, Strategy
from campaigns.strategies import strategy_propose
from modeling.models import ModelVersion


class Command(CampaignCommand):
    help = "Propose a strategy from the champion model's scores and print its expected numbers."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--campaign", type=int, required=True, help="The campaign's id.")
        parser.add_argument("--budget", help="Override the campaign's budget for this proposal.")
        parser.add_argument(
            "--model-version", type=int, help="The model version's number (default: champion)."
        )
        parser.add_argument("--timeout", type=float, default=1800, help="Seconds to wait.")

    def handle(self, *args, **options):
        merchant = self.merchant(options["merchant"])
        actor = self.actor(merchant, options["user"])
        campaign = Campaign.objects.filter(merchant=merchant, pk=options["campaign"]).first()
        if campaign is None:
            raise CommandError(f"{merchant.slug} has no campaign #{options['campaign']}.")
        version = None
        if options["model_version"] is not None:
            version = ModelVersion.objects.filter(
                merchant=merchant, number=options["model_version"]
            ).first()
            if version is None:
                raise CommandError(f"{merchant.slug} has no model v{options['model_version']}.")
        try:
            budget = Decimal(options["budget"]) if options["budget"] else None
        except InvalidOperation:
            raise CommandError(f"--budget {options['budget']!r} is not a number.") from None
        try:
            job = strategy_propose(campaign=campaign, actor=actor, budget=budget, version=version)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stderr.write(f"Proposal job #{job.pk} queued")
        job = self.wait(job, options["timeout"])
        strategy = Strategy.objects.select_related("campaign", "model_version").get(
            pk=job.result["strategy_id"]
        )
        self.print_strategy(strategy, merchant.currency)
        self.stdout.write(
            self.style.SUCCESS(
                f"Review it, then: manage.py apply_strategy --merchant {merchant.slug} "
                f"--strategy {strategy.pk}"
            )
        )
