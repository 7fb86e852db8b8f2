"""Django admin: every registered model's pages load for staff and are refused to others."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from campaigns.models import AuditEvent
from modeling.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def admin_pages(obj_for_model) -> list[str]:
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse(f"{prefix}_changelist"))
        if model_admin.has_add_permission(_FakeRequest()):
            urls.append(reverse(f"{prefix}_add"))
        obj = obj_for_model(model)
        if obj is not None:
            urls.append(reverse(f"{prefix}_change", args=[obj.pk]))
    return urls


class _FakeRequest:
    class user:
        is_active = is_staff = is_superuser = True

        @staticmethod
        def has_perm(perm, obj=None):
            return True


@pytest.fixture
def one_of_each(merchant_a, alice, staff):
    job = JobFactory(merchant=merchant_a)
    AuditEvent.objects.create(merchant=merchant_a, actor=alice, verb="member.invited", target="x")
    objects = {Job: job, AuditEvent: AuditEvent.objects.first()}

    def get(model):
        return objects.get(model) or model._default_manager.first()

    return get


def test_staff_can_open_every_admin_page(staff, one_of_each, client_for):
    client = client_for(staff)
    pages = admin_pages(one_of_each)
    assert len(pages) >= 12
    for url in pages:
        assert client.get(url).status_code == 200, url


def test_members_who_are_not_staff_are_sent_to_the_admin_login(alice, one_of_each, client_for):
    client = client_for(alice)
    for url in admin_pages(one_of_each):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("admin:login")), url


def test_admin_search_and_filters_work(staff, merchant_a, alice, client_for):
    client = client_for(staff)
    response = client.get(
        reverse("admin:auth_user_changelist"), {"q": "alice", "is_staff__exact": "0"}
    )
    assert response.status_code == 200
    assert b"alice" in response.content
    response = client.get(
        reverse("admin:campaigns_membership_changelist"), {"role__exact": "owner"}
    )
    assert b"alice" in response.content


def test_audit_log_is_read_only_in_admin(staff, merchant_a, alice, client_for):
    event = AuditEvent.objects.create(merchant=merchant_a, actor=alice, verb="member.invited")
    client = client_for(staff)
    url = reverse("admin:campaigns_auditevent_change", args=[event.pk])
    client.post(url, {"target": "changed"})
    event.refresh_from_db()
    assert event.target == ""


def test_check_workers_action_queues_one_job_per_queue(
    staff, merchant_a, client_for, django_capture_on_commit_callbacks
):
    client = client_for(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:campaigns_merchant_changelist"),
            {"action": "check_workers", "_selected_action": [merchant_a.pk]},
            follow=True,
        )
    assert response.status_code == 200
    jobs = Job.objects.filter(merchant=merchant_a, kind="worker_check")
    assert sorted(job.params["queue"] for job in jobs) == ["default", "scoring", "training"]
    # Eager in unit tests: each ran in-process and finished.
    assert {job.status for job in jobs} == {"succeeded"}
