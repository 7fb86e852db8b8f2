"""Shared pieces of the campaign commands (create_campaign, propose_strategy, apply_strategy,
rollback_strategy, export_assignments): finding the merchant and the acting user, waiting for
a job, printing a strategy's numbers."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.choices import Role
from campaigns.management import SiteLanguageMixin
from campaigns.models import Membership, Merchant, Strategy
from modeling.choices import JobStatus
from modeling.models import Job


class CampaignCommand(SiteLanguageMixin, BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="The merchant's slug.")
        parser.add_argument(
            "--user",
            help="Act as this user (a manager or owner of the merchant); recorded in the audit "
            "log. Default: no user (the system).",
        )

    def merchant(self, slug: str) -> Merchant:
        merchant = Merchant.objects.filter(slug=slug).first()
        if merchant is None:
            raise CommandError(f"No merchant with the slug {slug!r}.")
        return merchant

    def actor(self, merchant: Merchant, username: str | None):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        membership = Membership.objects.filter(user=user, merchant=merchant).first()
        if membership is None or not membership.has_role(Role.MANAGER):
            raise CommandError(f"{username} is not a manager or owner of {merchant.slug}.")
        return user

    def wait(self, job: Job, timeout: float) -> Job:
        """Wait for the job (it has run already where tasks run eagerly); fail on failure."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            job.refresh_from_db()
            if job.message != last and job.status in JobStatus.active():
                last = job.message
                self.stderr.write(f"  [{job.progress:3d}%] {job.message}")
            if job.status not in JobStatus.active():
                break
            if time.monotonic() > deadline:
                raise CommandError(f"Job #{job.pk} is still {job.status} after {timeout:.0f} s.")
            time.sleep(0.5)
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Job #{job.pk} {job.status}: {job.error or job.message}")
        return job

    def print_strategy(self, strategy: Strategy, currency: str) -> None:
        write = self.stdout.write
        roi = "n/a" if strategy.expected_roi is None else f"{strategy.expected_roi:.2f}"
        write(
            f"Strategy #{strategy.pk} for campaign #{strategy.campaign_id} "
            f"({strategy.campaign.name}), model v{strategy.model_version.number}, "
            f"goal {strategy.goal}, status {strategy.status}"
        )
        write(f"  budget                     {currency} {strategy.budget:>14,.2f}")
        write(f"  expected coupon cost       {currency} {strategy.expected_cost:>14,.2f}")
        write(f"  expected incr. revenue     {currency} {strategy.expected_revenue:>14,.2f}")
        write(f"  expected incr. profit      {currency} {strategy.expected_profit:>14,.2f}")
        write(f"  expected incr. conversions     {strategy.expected_conversions:>14,.1f}")
        write(f"  ROI (profit / cost)            {roi:>14}")
        write(
            f"  customers: {strategy.eligible_customers:,} eligible, "
            f"{strategy.treated_customers:,} get a coupon, {strategy.holdout_customers:,} held "
            f"out, {strategy.exploration_customers:,} explore"
        )
        for kind, arms in strategy.counts.items():
            listed = ", ".join(f"{arm} {count:,}" for arm, count in arms.items())
            write(f"    {kind:<12} {listed}")
        write("  per lifecycle segment (customers / coupons / expected profit):")
        for row in strategy.segments.get("lifecycle", []):
            if row["customers"]:
                write(
                    f"    {row['segment']:<10} {row['customers']:>9,} {row['treated']:>9,} "
                    f"{row['expected_profit']:>14,.2f}"
                )
        curves = strategy.frontier.get("curves", {})
        model = curves.get("model")
        if model:
            write("  efficient frontier (spend -> profit: model / best single coupon / random):")
            points = len(model["spend"])
            for i in sorted({0, points // 4, points // 2, 3 * points // 4, points - 1}):
                others = " / ".join(
                    f"{curves[name]['profit'][i]:,.2f}"
                    for name in ("best_single_coupon", "random")
                    if name in curves
                )
                write(f"    {model['spend'][i]:>12,.2f} -> {model['profit'][i]:,.2f} / {others}")
