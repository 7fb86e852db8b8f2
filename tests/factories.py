"""factory_boy factories for the project's models."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from campaigns.choices import Role
from campaigns.models import Membership, Merchant
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
