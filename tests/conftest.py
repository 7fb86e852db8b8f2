"""Shared fixtures: named personas for tenancy tests, clients, and the integration switch.

Personas (healthchecks-style): ``alice`` owns merchant A, ``mona`` manages it, ``vera`` views it;
``bob`` owns merchant B; ``staff`` is a Django admin with no merchant; ``nobody`` belongs nowhere.
"""

from __future__ import annotations

import os

import pytest
from django.test import Client
from django.utils import translation
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns.choices import Role
from tests.factories import JobFactory, MembershipFactory, MerchantFactory, UserFactory


def _integration_available() -> bool:
    url = os.environ.get("DATABASE_URL", "")
    return url.startswith(("postgres://", "postgresql://")) and bool(
        os.environ.get("CELERY_BROKER_URL")
    )


def pytest_addoption(parser):
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use the database (CI's second pass on SQLite: the rest "
        "ran already and would run the same)",
    )


def _uses_database(item) -> bool:
    names = getattr(item, "fixturenames", ())
    return (
        "db" in names or "transactional_db" in names or bool(item.get_closest_marker("django_db"))
    )


def pytest_collection_modifyitems(config, items):
    """Integration tests need PostgreSQL and Redis; without them they are deselected. With
    ``--database-tests-only`` the tests that never touch the database are deselected too."""
    integration = _integration_available()
    database_only = config.getoption("--database-tests-only")
    if integration and not database_only:
        return
    selected, deselected = [], []
    for item in items:
        drop = (not integration and item.get_closest_marker("integration")) or (
            database_only and not _uses_database(item)
        )
        (deselected if drop else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_report_header(config):
    if _integration_available():
        return "integration: PostgreSQL and Redis configured; integration tests run"
    return "integration: DATABASE_URL/CELERY_BROKER_URL not set; integration tests deselected"


@pytest.fixture(autouse=True)
def _site_language():
    """Each test starts and ends in the site's language: a request activates its user's language
    in this thread and nothing deactivates it, and background jobs and imports write in the
    active language, so one test's Chinese page must not make the next test's imports Chinese."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def merchant_a(db):
    return MerchantFactory(name="Shop A", slug="shop-a")


@pytest.fixture
def merchant_b(db):
    return MerchantFactory(name="Shop B", slug="shop-b", currency="USD", timezone="UTC")


def _member(merchant, username: str, role: Role):
    return MembershipFactory(merchant=merchant, user=UserFactory(username=username), role=role).user


@pytest.fixture
def alice(merchant_a):
    return _member(merchant_a, "alice", Role.OWNER)


@pytest.fixture
def mona(merchant_a):
    return _member(merchant_a, "mona", Role.MANAGER)


@pytest.fixture
def vera(merchant_a):
    return _member(merchant_a, "vera", Role.VIEWER)


@pytest.fixture
def bob(merchant_b):
    return _member(merchant_b, "bob", Role.OWNER)


@pytest.fixture
def staff(db):
    user = UserFactory(username="staff", is_staff=True, is_superuser=True)
    return user


@pytest.fixture
def nobody(db):
    return UserFactory(username="nobody")


@pytest.fixture
def client_for():
    """A logged-in Django test client for a user: ``client_for(alice).get(...)``."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def api_for():
    """A DRF client authenticated by the user's API token, as integrators call the API."""

    def make(user) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def job_factory():
    return JobFactory
