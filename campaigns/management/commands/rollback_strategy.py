"""Roll back an applied strategy (its assignments go) before its campaign starts."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from campaigns.assignments import strategy_rollback
from campaigns.management.campaigning import CampaignCommand
from campaigns.models import Strategy


class Command(CampaignCommand):
    help = "Roll back an applied strategy; possible until the campaign starts."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--strategy", type=int, required=True, help="The strategy's id.")

    def handle(self, *args, **options):
        merchant = self.merchant(options["merchant"])
        actor = self.actor(merchant, options["user"])
        strategy = Strategy.objects.filter(merchant=merchant, pk=options["strategy"]).first()
        if strategy is None:
            raise CommandError(f"{merchant.slug} has no strategy #{options['strategy']}.")
        try:
            strategy = strategy_rollback(strategy=strategy, actor=actor)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"Strategy #{strategy.pk} rolled back."))
