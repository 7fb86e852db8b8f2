"""The model registry: champion rules, promotion by a manager (audited), pages and API."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from campaigns.models import AuditEvent
from modeling import services
from modeling.models import ModelVersion
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def test_the_first_ready_model_becomes_champion_and_later_ones_do_not(merchant_a):
    first = ModelVersionFactory(merchant=merchant_a, status="training")
    first = services.model_version_finish(version=first, evaluation={"ok": True})
    assert first.is_champion and first.status == "ready"
    second = services.model_version_finish(
        version=ModelVersionFactory(merchant=merchant_a, status="training")
    )
    assert not second.is_champion
    assert ModelVersion.objects.get(merchant=merchant_a, is_champion=True) == first


def test_a_manager_promotes_a_ready_version_and_it_is_audited(merchant_a, mona, client_for):
    old = services.model_version_finish(
        version=ModelVersionFactory(merchant=merchant_a, status="training")
    )
    new = ModelVersionFactory(merchant=merchant_a)
    client_for(mona).post(
        reverse("modeling:model-promote", kwargs={"merchant": "shop-a", "version_id": new.pk})
    )
    old.refresh_from_db()
    new.refresh_from_db()
    assert new.is_champion and not old.is_champion
    event = AuditEvent.objects.get(verb="model.promoted", actor=mona)
    assert event.data["previous"] == old.number


def test_a_model_that_is_not_ready_cannot_be_champion(merchant_a, mona):
    failed = ModelVersionFactory(merchant=merchant_a, status="failed")
    with pytest.raises(ValidationError):
        services.model_version_promote(version=failed, actor=mona)


def test_the_database_allows_one_champion_per_merchant(merchant_a, merchant_b):
    ModelVersionFactory(merchant=merchant_a, is_champion=True)
    ModelVersionFactory(merchant=merchant_b, is_champion=True)  # another merchant: fine
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersionFactory(merchant=merchant_a, is_champion=True)


def test_pages_and_api_list_versions(merchant_a, vera, client_for, api_for):
    version = ModelVersionFactory(merchant=merchant_a, data_counts={"customers": 1234})
    page = client_for(vera).get(reverse("modeling:models", kwargs={"merchant": "shop-a"}))
    assert f"v{version.number}" in page.content.decode()
    assert "1234" in page.content.decode()
    detail = client_for(vera).get(
        reverse("modeling:model", kwargs={"merchant": "shop-a", "version_id": version.pk})
    )
    assert 'data-testid="promote-model"' not in detail.content.decode()  # viewers: no control
    data = api_for(vera).get(reverse("api:model-list", kwargs={"merchant": "shop-a"})).json()
    assert data["results"][0]["number"] == version.number
