"""Tenancy and roles, checked on every URL the project has, found by walking the URLconf.

A new page or endpoint is covered automatically; one with a URL argument this file does not
know how to fill fails ``test_every_route_argument_is_known`` until it is added to ``OBJECTS``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.checks import Route, iter_routes
from campaigns.choices import Role
from campaigns.models import DataImport, Membership
from campaigns.tenancy import MERCHANT_KWARG, classify_view, guard_problem
from tests.factories import (
    CampaignFactory,
    CouponTypeFactory,
    JobFactory,
    ModelVersionFactory,
    StrategyFactory,
)

pytestmark = pytest.mark.django_db

# How to make an object of a merchant for each URL argument that names one.
OBJECTS: dict[str, Callable] = {
    "version_id": lambda merchant, owner: ModelVersionFactory(merchant=merchant).pk,
    "job_id": lambda merchant, owner: JobFactory(merchant=merchant).pk,
    "member_id": lambda merchant, owner: Membership.objects.get(merchant=merchant, user=owner).pk,
    "campaign_id": lambda merchant, owner: CampaignFactory(merchant=merchant).pk,
    "coupon_type_id": lambda merchant, owner: CouponTypeFactory(merchant=merchant).pk,
    "strategy_id": lambda merchant, owner: StrategyFactory(campaign__merchant=merchant).pk,
    "import_id": lambda merchant, owner: (
        DataImport.objects.create(
            merchant=merchant, kind="events", source="upload", filename="events.csv"
        ).pk
    ),
}
UNSAFE = ("post", "put", "patch", "delete")
OWNER_ONLY = {
    "campaigns:members",
    "campaigns:member-role",
    "campaigns:member-remove",
    "campaigns:settings",
    "api:merchant",
    "api:member-list",
    "api:member-detail",
}


def scoped_routes() -> list[Route]:
    return [r for r in iter_routes() if classify_view(r.callback) == "scoped"]


def methods_of(route: Route) -> list[str]:
    actions = getattr(route.callback, "actions", None)
    if actions is not None:  # a DRF viewset bound to {"get": "list", ...}
        return sorted(actions)
    view_class = route.callback.view_class
    return [
        m
        for m in view_class.http_method_names
        if m not in ("options", "head") and hasattr(view_class, m)
    ]


def url_for(route: Route, merchant, owner) -> str:
    kwargs = {MERCHANT_KWARG: merchant.slug}
    for name in route.kwarg_names - {MERCHANT_KWARG}:
        kwargs[name] = OBJECTS[name](merchant, owner)
    return reverse(route.name, kwargs=kwargs)


def call(client, method: str, url: str):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, data={}, content_type="application/json")


def is_api(route: Route) -> bool:
    return (route.name or "").startswith("api:")


def test_the_walk_finds_the_pages_and_endpoints():
    names = {r.name for r in scoped_routes()}
    assert {"campaigns:home", "campaigns:members", "modeling:job", "api:job-detail"} <= names


def test_every_route_argument_is_known():
    for route in scoped_routes():
        unknown = route.kwarg_names - {MERCHANT_KWARG} - set(OBJECTS)
        assert not unknown, f"{route.pattern}: add {unknown} to OBJECTS in this file"
        assert route.name, f"{route.pattern} needs a name to be reversed and tested"


def test_every_route_is_guarded():
    problems = [guard_problem(r.callback, r.kwarg_names) for r in iter_routes()]
    assert [p for p in problems if p] == []


def test_an_unscoped_view_under_a_merchant_url_is_refused():
    from django.views import View

    class Forgetful(View):
        def get(self, request, merchant):  # pragma: no cover - never runs
            raise AssertionError

    assert guard_problem(Forgetful.as_view(), {MERCHANT_KWARG}) is not None
    assert guard_problem(Forgetful.as_view(), set()) is not None


def test_other_merchants_objects_answer_404_everywhere(
    merchant_a, merchant_b, alice, bob, client_for, api_for
):
    # given alice, owner of A, and B's objects
    for route in scoped_routes():
        for method in methods_of(route):
            # when she asks for them under B's slug, or under her own slug with B's ids
            under_b = url_for(route, merchant_b, bob)
            client = api_for(alice) if is_api(route) else client_for(alice)
            assert call(client, method, under_b).status_code == 404, (method, under_b)
            if route.kwarg_names - {MERCHANT_KWARG}:
                mixed = under_b.replace(f"/{merchant_b.slug}/", f"/{merchant_a.slug}/", 1)
                assert call(client, method, mixed).status_code == 404, (method, mixed)


def test_anonymous_users_go_to_login_or_get_401(merchant_a, alice):
    for route in scoped_routes():
        url = url_for(route, merchant_a, alice)
        for method in methods_of(route):
            response = call(Client(), method, url)
            if is_api(route):
                assert response.status_code == 401, (method, url)
            elif method == "get":
                assert response.status_code == 302, (method, url)
                assert response["Location"].startswith(reverse("login")), url
            else:
                # An anonymous POST without a CSRF token is refused before it reaches the view.
                assert response.status_code in (302, 403), (method, url)


def test_viewers_change_nothing(merchant_a, alice, vera, client_for, api_for):
    for route in scoped_routes():
        url = url_for(route, merchant_a, alice)
        for method in [m for m in methods_of(route) if m in UNSAFE]:
            client = api_for(vera) if is_api(route) else client_for(vera)
            assert call(client, method, url).status_code == 403, (method, url)


def test_only_owners_manage_members_and_settings(merchant_a, alice, mona, client_for, api_for):
    # The role policy, stated here rather than read back from the views under test.
    for route in scoped_routes():
        url = url_for(route, merchant_a, alice)
        for method in [m for m in methods_of(route) if m in UNSAFE]:
            client = api_for(mona) if is_api(route) else client_for(mona)
            status = call(client, method, url).status_code
            if route.name in OWNER_ONLY:
                assert status == 403, (method, url)
            else:
                assert status != 403, (method, url)


def test_members_read_their_merchant_pages(merchant_a, alice, vera, client_for, api_for):
    for route in scoped_routes():
        if "get" not in methods_of(route):
            continue
        url = url_for(route, merchant_a, alice)
        client = api_for(vera) if is_api(route) else client_for(vera)
        assert client.get(url).status_code == 200, url


def test_users_without_a_merchant_see_where_to_go(nobody, client_for):
    response = client_for(nobody).get(reverse("home"))
    assert response.status_code == 200
    assert b"do not belong to any merchant" in response.content


def test_home_redirects_to_the_last_merchant_used(merchant_a, merchant_b, alice, client_for):
    Membership.objects.create(user=alice, merchant=merchant_b, role=Role.VIEWER)
    client = client_for(alice)
    client.get(reverse("campaigns:home", kwargs={"merchant": merchant_b.slug}))
    response = client.get(reverse("home"))
    assert response["Location"] == reverse("campaigns:home", kwargs={"merchant": merchant_b.slug})


def test_switcher_lists_only_own_merchants(merchant_a, merchant_b, alice, bob, client_for):
    response = client_for(alice).get(
        reverse("campaigns:home", kwargs={"merchant": merchant_a.slug})
    )
    assert b"Shop A" in response.content
    assert b"Shop B" not in response.content
