"""Create a draft campaign for a merchant."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from campaigns.choices import CampaignGoal
from campaigns.management.campaigning import CampaignCommand
from campaigns.services import campaign_create


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CommandError(f"{text!r} is not a number.") from None


def _when(text: str):
    value = parse_datetime(text)
    if value is None:
        raise CommandError(f"{text!r} is not an ISO 8601 date and time.")
    return value if timezone.is_aware(value) else timezone.make_aware(value)


class Command(CampaignCommand):
    help = "Create a draft campaign (then: propose_strategy, apply_strategy, export_assignments)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--coupons", required=True, help="Coupon type codes, comma-separated: PCT10,AMT20."
        )
        parser.add_argument("--budget", required=True, help="Expected coupon spend.")
        parser.add_argument("--goal", choices=CampaignGoal.values, default=CampaignGoal.PROFIT)
        parser.add_argument(
            "--cap", action="append", default=[], help="CODE=N: at most N customers get CODE."
        )
        parser.add_argument("--starts", help="ISO 8601; default: in 24 hours.")
        parser.add_argument("--ends", help="ISO 8601; default: --days after the start.")
        parser.add_argument("--days", type=int, default=14)
        parser.add_argument("--holdout", type=float, help="Holdout share (default 0.10).")
        parser.add_argument("--exploration", type=float, help="Exploration share (default 0.05).")
        parser.add_argument("--margin", type=float, help="Margin rate (default 0.30).")
        parser.add_argument("--aov", help="Average order value (default: from the data).")
        parser.add_argument("--prefix", default="", help="Prefix of the coupon codes (SPRING-).")
        parser.add_argument("--audience", help='JSON, e.g. \'{"lifecycle": ["active"]}\'.')

    def handle(self, *args, **options):
        merchant = self.merchant(options["merchant"])
        actor = self.actor(merchant, options["user"])
        caps = {}
        for item in options["cap"]:
            code, _, count = item.partition("=")
            if not count.isdigit():
                raise CommandError(f"--cap {item!r}: use CODE=N.")
            caps[code.strip().upper()] = int(count)
        starts = _when(options["starts"]) if options["starts"] else timezone.now() + timedelta(1)
        ends = _when(options["ends"]) if options["ends"] else starts + timedelta(options["days"])
        fields = {
            "name": options["name"],
            "goal": options["goal"],
            "budget": _decimal(options["budget"]),
            "caps": caps,
            "starts_at": starts,
            "ends_at": ends,
            "code_prefix": options["prefix"],
            "margin_rate": options["margin"],
            "average_order_value": _decimal(options["aov"]) if options["aov"] else None,
        }
        for option, field in (("holdout", "holdout_share"), ("exploration", "exploration_share")):
            if options[option] is not None:
                fields[field] = options[option]
        if options["audience"]:
            try:
                fields["audience"] = json.loads(options["audience"])
            except json.JSONDecodeError as error:
                raise CommandError(f"--audience is not JSON: {error}") from None
        try:
            campaign = campaign_create(
                merchant=merchant,
                actor=actor,
                coupon_types=[c for c in options["coupons"].split(",") if c.strip()],
                **fields,
            )
        except ValidationError as error:
            problems = (
                [f"{k}: {' '.join(v)}" for k, v in error.message_dict.items()]
                if hasattr(error, "error_dict")
                else error.messages
            )
            raise CommandError("; ".join(problems)) from None
        aov = campaign.average_order_value
        self.stdout.write(
            self.style.SUCCESS(
                f"Campaign #{campaign.pk} '{campaign.name}' created ({campaign.status})"
            )
        )
        self.stdout.write(
            f"  coupons {', '.join(campaign.coupon_types.values_list('code', flat=True))}; "
            f"budget {merchant.currency} {campaign.budget:,.2f}; goal {campaign.goal}; "
            f"caps {campaign.caps or 'none'}"
        )
        self.stdout.write(
            f"  {timezone.localtime(campaign.starts_at):%Y-%m-%d %H:%M} to "
            f"{timezone.localtime(campaign.ends_at):%Y-%m-%d %H:%M}; holdout "
            f"{campaign.holdout_share:.0%}, exploration {campaign.exploration_share:.0%}; margin "
            f"{campaign.margin_rate:.0%}; average order value "
            f"{'unknown' if aov is None else f'{merchant.currency} {aov:,.2f}'}"
        )
