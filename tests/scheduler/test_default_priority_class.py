"""One default priority class, however it is saved: the API, the admin and the model all
leave exactly one (a new default takes over), and the database refuses a second."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from scheduler.models import PriorityClass

pytestmark = pytest.mark.django_db


def _defaults() -> list[str]:
    return list(PriorityClass.objects.filter(is_default=True).values_list("name", flat=True))


def _admin_client(admin) -> Client:
    admin.user.is_superuser = True
    admin.user.save(update_fields=["is_superuser"])
    client = Client()
    client.force_login(admin.user)
    return client


def test_the_seeded_classes_have_one_default():
    assert _defaults() == ["normal"]


def test_the_admin_cannot_leave_two_defaults(admin):
    client = _admin_client(admin)
    response = client.post(
        "/admin/scheduler/priorityclass/add/",
        {"name": "urgent", "value": "500", "description": "", "is_default": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _defaults() == ["urgent"]
    low = PriorityClass.objects.get(name="low")
    response = client.post(
        f"/admin/scheduler/priorityclass/{low.pk}/change/",
        {"name": "low", "value": str(low.value), "description": "", "is_default": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _defaults() == ["low"]


def test_the_api_cannot_leave_two_defaults(admin):
    client = admin.client()
    response = client.patch("/api/v1/priority-classes/high/", {"is_default": True}, format="json")
    assert response.status_code == 200, response.content
    assert _defaults() == ["high"]
    response = client.post(
        "/api/v1/priority-classes/",
        {"name": "urgent", "value": 500, "is_default": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert _defaults() == ["urgent"]


def test_saving_a_model_takes_the_default_and_unsetting_leaves_none():
    PriorityClass(name="urgent", value=500, is_default=True).save()
    assert _defaults() == ["urgent"]
    urgent = PriorityClass.objects.get(name="urgent")
    urgent.is_default = False
    urgent.save()
    assert _defaults() == []


def test_the_database_refuses_a_second_default():
    with pytest.raises(IntegrityError), transaction.atomic():
        PriorityClass.objects.filter(name="low").update(is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        PriorityClass.objects.bulk_create([PriorityClass(name="x", value=1, is_default=True)])
    assert _defaults() == ["normal"]
