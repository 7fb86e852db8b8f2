"""Apply a proposed strategy: create its assignments with unique coupon codes (a job)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db.models import Count

from campaigns.assignments import strategy_apply_enqueue
from campaigns.management.campaigning import CampaignCommand
from campaigns.models import Assignment, Strategy


class Command(CampaignCommand):
    help = "Apply a strategy: one assignment per eligible customer. Applying twice does nothing."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--strategy", type=int, required=True, help="The strategy's id.")
        parser.add_argument("--timeout", type=float, default=1800, help="Seconds to wait.")

    def handle(self, *args, **options):
        merchant = self.merchant(options["merchant"])
        actor = self.actor(merchant, options["user"])
        strategy = Strategy.objects.filter(merchant=merchant, pk=options["strategy"]).first()
        if strategy is None:
            raise CommandError(f"{merchant.slug} has no strategy #{options['strategy']}.")
        try:
            job = strategy_apply_enqueue(strategy=strategy, actor=actor)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if job is None:
            self.stdout.write(f"Strategy #{strategy.pk} is applied already; nothing to do.")
        else:
            self.stderr.write(f"Apply job #{job.pk} queued")
            job = self.wait(job, options["timeout"])
            self.stdout.write(self.style.SUCCESS(job.message))
        counts = (
            Assignment.objects.filter(strategy=strategy)
            .values("kind", "coupon_type__code")
            .annotate(n=Count("id"))
            .order_by("kind", "coupon_type__code")
        )
        for row in counts:
            self.stdout.write(
                f"  {row['kind']:<12} {row['coupon_type__code'] or 'control':<14} {row['n']:>10,}"
            )
        self.stdout.write(
            f"Export: manage.py export_assignments --merchant {merchant.slug} "
            f"--campaign {strategy.campaign_id} --output assignments.csv"
        )
