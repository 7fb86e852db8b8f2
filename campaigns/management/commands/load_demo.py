"""Create (or refresh) the demo merchant and its users. Safe to run again."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from campaigns.choices import Role, StrategyStatus
from campaigns.loop import LoopError, describe, loop_campaign, loop_train
from campaigns.models import Customer, Membership, Merchant, Strategy
from campaigns.simulated import (
    SimulationImportError,
    merchant_ground_truth,
    merchant_load_simulation,
)
from modeling.models import ModelVersion
from modeling.scoring_service import model_version_score
from modeling.selectors import merchant_champion
from modeling.training_service import model_version_train

DEMO_SLUG = "demo"
DEMO_CUSTOMERS = 20_000
DEMO_SEED = 2026
DEMO_EPOCHS = 8
# The demo campaign's budget (expected coupon spend) per customer; see demo_loop.
DEMO_BUDGET_PER_CUSTOMER = Decimal("0.40")
# Printed at start-up; the demo runs locally on the embedded database only.
DEMO_PASSWORD = "promo-demo"  # noqa: S105
DEMO_USERS = [
    ("demo-owner", "owner@demo.promo-portal.test", Role.OWNER, False),
    ("demo-manager", "manager@demo.promo-portal.test", Role.MANAGER, False),
    ("demo-viewer", "viewer@demo.promo-portal.test", Role.VIEWER, False),
    ("admin", "admin@demo.promo-portal.test", None, True),
]


class Command(BaseCommand):
    help = "Load the demo merchant and its users (owner, manager, viewer) and an admin."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password", default=DEMO_PASSWORD, help="Password for every demo user."
        )
        parser.add_argument("--host", default="127.0.0.1:8000", help="Where the portal is served.")
        parser.add_argument(
            "--no-model",
            dest="model",
            action="store_false",
            help="Do not train the first model (it takes about a minute on a CPU).",
        )
        parser.add_argument(
            "--no-loop",
            dest="loop",
            action="store_false",
            help=(
                "Do not take the demo merchant round the loop once (a past campaign applied, "
                "its outcomes imported and measured, a second model trained): about a minute."
            ),
        )
        parser.add_argument(
            "--customers",
            type=int,
            default=DEMO_CUSTOMERS,
            help="Simulated customers to load when the demo merchant has no data yet (0: none).",
        )

    def handle(self, *args, password: str, host: str, customers: int, **options):
        merchant = self._merchant_and_users(password)
        if customers and not Customer.objects.filter(merchant=merchant).exists():
            self.stdout.write(
                f"Loading {customers:,} simulated customers through the import path ..."
            )
            merchant_load_simulation(
                merchant=merchant, customers=customers, seed=DEMO_SEED, report=self.stdout.write
            )
        if customers and options["model"] and not merchant_champion(merchant=merchant):
            self.stdout.write("Training the demo merchant's first uplift model ...")
            version = model_version_train(merchant=merchant, actor=None, epochs=DEMO_EPOCHS)
            version.refresh_from_db()
            self.stdout.write(f"  model v{version.number}: {version.get_status_display()}")
            if version.status == "ready":
                model_version_score(version=version, actor=None)
                version.refresh_from_db()
                self.stdout.write(f"  customers scored: {version.scored_at is not None}")
        if customers and options["model"] and options["loop"]:
            self._round_the_loop(merchant, customers)
        self.stdout.write(self.style.SUCCESS(f"Demo merchant '{merchant.name}' is ready."))
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  Open http://{host}/ and sign in as:",
                    f"    demo-owner   / {password}   (owner: members, settings, everything)",
                    f"    demo-manager / {password}   (manager: campaigns, models, apply)",
                    f"    demo-viewer  / {password}   (viewer: read only)",
                    f"    admin        / {password}   (Django admin at http://{host}/admin/)",
                    "",
                ]
            )
        )

    def _round_the_loop(self, merchant: Merchant, customers: int) -> None:
        """Once: a past campaign proposed from the champion, applied, its period played from
        the simulator's truth, its outcomes imported and measured; then a second model version
        trained on the experiment plus that campaign's holdout and exploration."""
        applied = Strategy.objects.filter(merchant=merchant, status=StrategyStatus.APPLIED)
        if applied.exists() or merchant_champion(merchant=merchant) is None:
            return
        say = self.stdout.write
        say("Taking the demo merchant round the loop once (a campaign that ran last week) ...")
        try:
            truth = merchant_ground_truth(merchant=merchant)
            loop = loop_campaign(
                merchant=merchant,
                truth=truth,
                budget=(DEMO_BUDGET_PER_CUSTOMER * customers).quantize(Decimal("1")),
                seed=DEMO_SEED,
                report=say,
                name="Spring tea week",
            )
            for line in describe(loop, merchant.currency):
                say(line)
            if ModelVersion.objects.filter(merchant=merchant).count() < 2:
                say("Training the second model version on the new randomized rows ...")
                loop_train(merchant=merchant, epochs=DEMO_EPOCHS, report=say)
        except (LoopError, SimulationImportError) as error:
            say(self.style.WARNING(f"  the loop stopped: {error}"))

    @transaction.atomic
    def _merchant_and_users(self, password: str) -> Merchant:
        User = get_user_model()
        merchant, _ = Merchant.objects.update_or_create(
            slug=DEMO_SLUG,
            defaults={"name": "Lotus Tea House", "currency": "CNY", "timezone": "Asia/Shanghai"},
        )
        for username, email, role, is_staff in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
            user.email = email
            user.is_staff = user.is_superuser = is_staff
            user.set_password(password)
            user.save()
            if role is not None:
                Membership.objects.update_or_create(
                    user=user, merchant=merchant, defaults={"role": role}
                )
        return merchant
