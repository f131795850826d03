"""Admin safety (issue 18, item 7): history is never deleted from the admin, the inventory
and GPU states are read-only, a kill asks for a reason and records it, the query list
shows the SQL, and a maintenance window over live bookings warns and tells the holders."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin import site
from django.core import mail
from django.test import RequestFactory
from django.utils import timezone

from querygate.models import AnalyzeAudit, Query, QueryStatus, Warehouse
from scheduler.admin import JobEventInline
from scheduler.models import Gpu, Job, JobEvent, MaintenanceWindow, NodeEvent, Reservation, Sweep
from scheduler.services import reservations
from scheduler.telemetry.models import GpuState

from .test_admin import _admin_client, _job

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model",
    [Job, JobEvent, Reservation, Sweep, NodeEvent, Query, AnalyzeAudit],
    ids=lambda model: model.__name__,
)
def test_history_has_no_delete(admin, model) -> None:
    """No bulk delete action and no delete permission, even for a superuser."""
    admin.user.is_superuser = True
    request = RequestFactory().get("/admin/")
    request.user = admin.user
    model_admin = site._registry.get(model)
    if model_admin is None:  # shown only inline (job events): the inline refuses deletes
        model_admin = JobEventInline(Job, site)
        assert not model_admin.has_delete_permission(request)
        return
    assert "delete_selected" not in model_admin.get_actions(request)
    assert not model_admin.has_delete_permission(request)


def test_a_job_cannot_be_deleted_from_the_admin(admin, alice, nodes) -> None:
    job = _job(alice, "vision")
    client = _admin_client(admin)
    listing = client.get("/admin/scheduler/job/").content.decode()
    assert 'value="kill"' in listing and 'value="delete_selected"' not in listing
    assert client.get(f"/admin/scheduler/job/{job.pk}/delete/").status_code == 403
    refused = client.post(
        "/admin/scheduler/job/", {"action": "delete_selected", "_selected_action": [job.pk]}
    )
    assert refused.status_code in (200, 302)
    assert type(job).objects.filter(pk=job.pk).exists()


def test_nodes_and_gpu_states_are_read_only(admin, nodes) -> None:
    client = _admin_client(admin)
    node = nodes["tesla-01"]
    GpuState.objects.create(gpu=Gpu.objects.filter(node=node).first(), at=timezone.now())
    assert client.get("/admin/scheduler/node/add/").status_code == 403
    change = client.get(f"/admin/scheduler/node/{node.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert 'name="_save"' not in html and 'name="name"' not in html  # a view, no form
    posted = client.post(f"/admin/scheduler/node/{node.pk}/change/", {"name": "renamed"})
    assert posted.status_code == 403
    node.refresh_from_db()
    assert node.name == "tesla-01"
    for model in ("gpustate", "nodeagentstate", "jobutilization"):
        assert client.get(f"/admin/telemetry/{model}/add/").status_code == 403, model
    state = GpuState.objects.get()
    page = client.get(f"/admin/telemetry/gpustate/{state.pk}/change/").content.decode()
    assert 'name="_save"' not in page


def _query(user, status=QueryStatus.QUEUED) -> Query:
    warehouse = Warehouse.objects.create(name="w1", engine="duckdb", connection="/nowhere")
    return Query.objects.create(
        user=user,
        warehouse=warehouse,
        sql="SELECT l_orderkey,\n   l_quantity FROM lineitem WHERE l_shipdate > DATE '1995-01-01' "
        "AND l_quantity > 10 ORDER BY l_quantity DESC",
        fingerprint="test",
        statement_type="select",
        decision="allow",
        status=status,
        runtime_budget_s=60,
        created_at=timezone.now(),
    )


def test_the_query_list_shows_the_sql_truncated(admin, bob) -> None:
    _query(bob.user)
    html = _admin_client(admin).get("/admin/querygate/query/").content.decode()
    assert "column-sql_short" in html
    assert "SELECT l_orderkey, l_quantity FROM lineitem" in html  # one line
    assert "ORDER BY l_quantity DESC" not in html  # cut


def test_a_query_kill_asks_for_a_reason_and_records_it(admin, bob) -> None:
    query = _query(bob.user)
    client = _admin_client(admin)
    selected = {"action": "kill", "_selected_action": [query.pk]}
    confirm = client.post("/admin/querygate/query/", selected)
    assert confirm.status_code == 200 and 'name="reason"' in confirm.content.decode()
    query.refresh_from_db()
    assert query.status == QueryStatus.QUEUED
    done = client.post(
        "/admin/querygate/query/",
        {**selected, "confirm": "yes", "reason": "scans all of lineitem at noon"},
        follow=True,
    )
    assert "Kill requested for 1 query(ies)." in done.content.decode()
    query.refresh_from_db()
    assert query.status == QueryStatus.KILLED
    assert query.kill_reason == "scans all of lineitem at noon"
    assert query.killed_by == admin.user


def test_a_maintenance_window_over_live_bookings_warns_and_notifies(
    admin, alice, vision, nodes, unlimited, django_capture_on_commit_callbacks, eager_tasks
) -> None:
    alice.user.email = "alice@example.com"
    alice.user.save(update_fields=["email"])
    now = timezone.now()
    booking = reservations.reserve_gpus(
        alice.user,
        team=vision,
        node=nodes["tesla-01"],
        gpu_indices=[0],
        start=now + timedelta(hours=1),
        end=now + timedelta(hours=3),
        now=now,
    )
    reservations.reserve_gpus(  # on another node: not affected
        alice.user,
        team=vision,
        node=nodes["tesla-02"],
        gpu_indices=[0],
        start=now + timedelta(hours=1),
        end=now + timedelta(hours=3),
        now=now,
    )
    mail.outbox.clear()
    start, end = now + timedelta(hours=2), now + timedelta(hours=4)
    with django_capture_on_commit_callbacks(execute=True):
        response = _admin_client(admin).post(
            "/admin/scheduler/maintenancewindow/add/",
            {
                "node": nodes["tesla-01"].pk,
                "start_0": timezone.localtime(start).strftime("%Y-%m-%d"),
                "start_1": timezone.localtime(start).strftime("%H:%M:%S"),
                "end_0": timezone.localtime(end).strftime("%Y-%m-%d"),
                "end_1": timezone.localtime(end).strftime("%H:%M:%S"),
                "reason": "driver upgrade",
            },
            follow=True,
        )
    assert MaintenanceWindow.objects.count() == 1
    html = response.content.decode()
    assert "overlaps 1 live booking(s)" in html
    assert f"#{booking.pk} alice (vision) tesla-01" in html
    notices = [m for m in mail.outbox if "Maintenance on tesla-01" in m.subject]
    assert [m.to for m in notices] == [["alice@example.com"]]


def test_a_maintenance_window_made_through_the_api_notifies_too(
    admin, alice, vision, nodes, unlimited, django_capture_on_commit_callbacks, eager_tasks
) -> None:
    alice.user.email = "alice@example.com"
    alice.user.save(update_fields=["email"])
    now = timezone.now()
    reservations.reserve_gpus(
        alice.user,
        team=vision,
        node=nodes["a100-01"],
        gpu_indices=[0, 1],
        start=now + timedelta(hours=1),
        end=now + timedelta(hours=3),
        now=now,
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.client().post(
            "/api/v1/maintenance-windows/",
            {
                "start": (now + timedelta(hours=2)).isoformat(),
                "end": (now + timedelta(hours=5)).isoformat(),
                "reason": "rack move",
            },
            format="json",
        )
    assert response.status_code == 201, response.content
    assert [m.to for m in mail.outbox if "Maintenance on a100-01" in m.subject] == [
        ["alice@example.com"]
    ]
