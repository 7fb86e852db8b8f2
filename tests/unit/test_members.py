"""Owners invite, re-role and remove members in the portal; a merchant always keeps an owner."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from campaigns import services
from campaigns.choices import Role
from campaigns.models import AuditEvent, Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def members_url(slug: str = "shop-a") -> str:
    return reverse("campaigns:members", kwargs={"merchant": slug})


def test_owner_invites_a_new_person_who_gets_a_set_password_link(
    merchant_a, alice, client_for, mailoutbox, django_capture_on_commit_callbacks
):
    client = client_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(members_url(), {"email": "Zoe@Example.test", "role": "manager"})
    assert response.status_code == 302
    membership = Membership.objects.get(merchant=merchant_a, user__email="zoe@example.test")
    assert membership.role == Role.MANAGER
    assert membership.invited_by == alice
    assert not membership.user.has_usable_password()
    (mail,) = mailoutbox
    assert mail.to == ["zoe@example.test"]
    assert "Shop A" in mail.subject
    link = next(line for line in mail.body.splitlines() if "/accounts/reset/" in line)
    # the link lets Zoe choose a password and sign in
    page = Client().get(link.strip(), follow=True)
    assert b"new_password1" in page.content
    event = AuditEvent.objects.get(verb="member.invited")
    assert event.actor == alice
    assert event.target == "zoe@example.test"


def test_inviting_an_existing_user_adds_a_membership(merchant_a, alice, client_for, mailoutbox):
    existing = UserFactory(username="carol", email="carol@example.test")
    client_for(alice).post(members_url(), {"email": "carol@example.test", "role": "viewer"})
    assert Membership.objects.filter(merchant=merchant_a, user=existing, role="viewer").exists()


def test_inviting_a_member_twice_is_a_form_error(merchant_a, alice, vera, client_for):
    response = client_for(alice).post(members_url(), {"email": vera.email, "role": "viewer"})
    assert response.status_code == 200
    assert "already a member" in response.content.decode()
    assert Membership.objects.filter(merchant=merchant_a).count() == 2


def test_bad_invitation_input_shows_field_errors(merchant_a, alice, client_for):
    response = client_for(alice).post(members_url(), {"email": "not-an-email", "role": "king"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid email address." in html
    assert "Select a valid choice." in html
    assert Membership.objects.filter(merchant=merchant_a).count() == 1


def test_owner_changes_a_role(merchant_a, alice, vera, client_for):
    membership = Membership.objects.get(user=vera)
    url = reverse(
        "campaigns:member-role", kwargs={"merchant": "shop-a", "member_id": membership.pk}
    )
    client_for(alice).post(url, {"role": "manager"})
    membership.refresh_from_db()
    assert membership.role == Role.MANAGER
    assert AuditEvent.objects.get(verb="member.role_changed").data == {
        "from": "viewer",
        "to": "manager",
    }


def test_the_last_owner_can_neither_leave_nor_be_demoted(merchant_a, alice, client_for):
    membership = Membership.objects.get(user=alice)
    client = client_for(alice)
    role_url = reverse(
        "campaigns:member-role", kwargs={"merchant": "shop-a", "member_id": membership.pk}
    )
    response = client.post(role_url, {"role": "viewer"}, follow=True)
    assert "at least one owner" in response.content.decode()
    remove_url = reverse(
        "campaigns:member-remove", kwargs={"merchant": "shop-a", "member_id": membership.pk}
    )
    client.post(remove_url)
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_an_owner_may_leave_when_another_owner_remains(merchant_a, alice, mona, client_for):
    services.member_change_role(
        membership=Membership.objects.get(user=mona), role=Role.OWNER, actor=alice
    )
    membership = Membership.objects.get(user=alice)
    url = reverse(
        "campaigns:member-remove", kwargs={"merchant": "shop-a", "member_id": membership.pk}
    )
    response = client_for(alice).post(url)
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_service_refuses_demoting_the_last_owner(merchant_a, alice):
    with pytest.raises(ValidationError):
        services.member_change_role(
            membership=Membership.objects.get(user=alice), role=Role.MANAGER, actor=alice
        )


def test_owner_edits_merchant_settings_with_validation(merchant_a, alice, client_for):
    url = reverse("campaigns:settings", kwargs={"merchant": "shop-a"})
    bad = client_for(alice).post(url, {"name": "", "currency": "CNY", "timezone": "Nowhere/Land"})
    assert bad.status_code == 200
    assert "This field is required." in bad.content.decode()
    client_for(alice).post(url, {"name": "Shop A+", "currency": "USD", "timezone": "Europe/Paris"})
    merchant_a.refresh_from_db()
    assert (merchant_a.name, merchant_a.currency, merchant_a.timezone) == (
        "Shop A+",
        "USD",
        "Europe/Paris",
    )


def test_viewers_see_no_member_controls(merchant_a, alice, vera, client_for):
    html = client_for(vera).get(members_url()).content.decode()
    assert "Invite a member" not in html
    assert "member-remove" not in html
    assert "/remove/" not in html
