"""factory_boy factories for the project's models."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.choices import Role
from campaigns.models import Campaign, CouponType, Membership, Merchant, Strategy
from modeling.choices import JobKind, JobStatus
from modeling.models import Job, ModelVersion

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # persist the hashed password
        if create:
            obj.save()


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Shop {n}")
    slug = factory.Sequence(lambda n: f"shop-{n}")
    currency = "CNY"
    timezone = "Asia/Shanghai"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    merchant = factory.SubFactory(MerchantFactory)
    role = Role.VIEWER


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    merchant = factory.SubFactory(MerchantFactory)
    kind = JobKind.WORKER_CHECK
    status = JobStatus.PENDING
    celery_task_id = factory.Faker("uuid4")


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    merchant = factory.SubFactory(MerchantFactory)
    number = factory.Sequence(lambda n: n + 1)
    status = "ready"
    arms = ["control", "PCT10"]


class CouponTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CouponType
        django_get_or_create = ("merchant", "code")

    merchant = factory.SubFactory(MerchantFactory)
    code = factory.Sequence(lambda n: f"PCT{n + 5}")
    name = factory.LazyAttribute(lambda c: f"{c.code} coupon")
    kind = "percent_off"
    value = 10


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        skip_postgeneration_save = True

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    budget = 1000
    starts_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))
    ends_at = factory.LazyAttribute(lambda c: c.starts_at + timedelta(days=14))

    @factory.post_generation
    def coupon_types(obj, create, extracted, **kwargs):
        if create:
            obj.coupon_types.set(extracted or [CouponTypeFactory(merchant=obj.merchant)])


class StrategyFactory(factory.django.DjangoModelFactory):
    """A proposed strategy row without a decisions file (for tenancy and role walks)."""

    class Meta:
        model = Strategy

    campaign = factory.SubFactory(CampaignFactory)
    merchant = factory.SelfAttribute("campaign.merchant")
    model_version = factory.SubFactory(
        ModelVersionFactory, merchant=factory.SelfAttribute("..campaign.merchant")
    )
    goal = "profit"
    budget = 1000
    margin_rate = 0.3
    holdout_share = 0.1
    exploration_share = 0.05
    campaign_revision = factory.SelfAttribute("campaign.revision")
    arms = ["control", "PCT10"]
    seed = 1
