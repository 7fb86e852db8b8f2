"""The REST API: authentication, schema and docs, merchants and members endpoints."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from campaigns.models import AuditEvent, Membership

pytestmark = pytest.mark.django_db


def test_unauthenticated_calls_get_401_with_a_token_challenge():
    response = APIClient().get(reverse("api:merchant-list"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_token_is_issued_for_a_username_and_password(alice):
    from tests.factories import PASSWORD

    response = APIClient().post(reverse("api:token"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(reverse("api:merchant-list")).status_code == 200


def test_wrong_password_gets_no_token(alice):
    response = APIClient().post(reverse("api:token"), {"username": "alice", "password": "nope"})
    assert response.status_code == 400


def test_session_authentication_works_for_the_browser(alice, client_for):
    response = client_for(alice).get(reverse("api:merchant-list"))
    assert response.status_code == 200


def test_my_merchants_lists_only_mine_with_my_role(merchant_a, merchant_b, alice, bob, api_for):
    data = api_for(alice).get(reverse("api:merchant-list")).json()
    assert data == [
        {
            "slug": "shop-a",
            "name": "Shop A",
            "currency": "CNY",
            "timezone": "Asia/Shanghai",
            "role": "owner",
            "created_at": data[0]["created_at"],
        }
    ]


def test_owner_changes_merchant_settings_and_it_is_audited(merchant_a, alice, api_for):
    url = reverse("api:merchant", kwargs={"merchant": "shop-a"})
    response = api_for(alice).patch(url, {"currency": "EUR"}, format="json")
    assert response.status_code == 200, response.content
    merchant_a.refresh_from_db()
    assert merchant_a.currency == "EUR"
    event = AuditEvent.objects.get(merchant=merchant_a)
    assert event.actor == alice and event.data == {"currency": ["CNY", "EUR"]}


def test_bad_settings_are_rejected_with_field_errors(merchant_a, alice, api_for):
    url = reverse("api:merchant", kwargs={"merchant": "shop-a"})
    response = api_for(alice).patch(
        url, {"currency": "ZZZ", "timezone": "Mars/Base"}, format="json"
    )
    assert response.status_code == 400
    assert "currency" in response.json()
    response = api_for(alice).patch(url, {"timezone": "Mars/Base"}, format="json")
    assert response.status_code == 400
    assert "timezone" in response.json()
    merchant_a.refresh_from_db()
    assert (merchant_a.currency, merchant_a.timezone) == ("CNY", "Asia/Shanghai")


def test_members_api_invites_changes_and_removes(
    merchant_a, alice, vera, api_for, mailoutbox, django_capture_on_commit_callbacks
):
    client = api_for(alice)
    base = reverse("api:member-list", kwargs={"merchant": "shop-a"})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            base, {"email": "New.Person@Example.test", "role": "manager"}, format="json"
        )
    assert response.status_code == 201, response.content
    assert response.json()["email"] == "new.person@example.test"
    assert len(mailoutbox) == 1 and "/accounts/reset/" in mailoutbox[0].body
    member_id = response.json()["id"]
    detail = reverse("api:member-detail", kwargs={"merchant": "shop-a", "member_id": member_id})
    assert client.patch(detail, {"role": "viewer"}, format="json").json()["role"] == "viewer"
    assert client.delete(detail).status_code == 204
    assert not Membership.objects.filter(pk=member_id).exists()


def test_schema_is_valid_openapi_and_lists_merchant_endpoints(alice, client_for):
    response = client_for(alice).get(reverse("api:schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/merchants/{merchant}/jobs/{job_id}/" in schema["paths"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_schema_generation_has_no_warnings():
    from django.core.management import call_command

    # --fail-on-warn turns drf-spectacular's warnings (unresolvable types, ...) into errors.
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", "/dev/null")


def test_swagger_ui_is_served_locally(alice, client_for):
    html = client_for(alice).get(reverse("api:docs")).content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", html)  # nothing off-site
