"""Ingestion through the real API: node tokens, bad batches, rollups, summaries, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from nodeagent.agent import Agent, HttpSender
from scheduler.models import Gpu
from scheduler.telemetry import services
from scheduler.telemetry.models import (
    GpuMinute,
    GpuSample,
    GpuState,
    JobUtilization,
    NodeAgentState,
)
from scheduler.telemetry.series import job_summary
from tests.conftest import assert_error
from tests.scheduler.telemetry.conftest import T0, batch, gpu_data, reading

URL = "/api/v1/telemetry/"


def post(client: APIClient, body: dict):
    return client.post(URL, body, format="json")


def test_node_token_posts_telemetry(agent_client, node):
    response = post(agent_client, batch([reading(T0, [gpu_data(0), gpu_data(1)])]))
    assert response.status_code == 202, response.content
    assert response.json() == {"node": "gpu-01", "readings": 1, "samples": 2, "unknown_gpus": []}
    gpu = Gpu.objects.get(node=node, index=1)
    assert gpu.uuid == "GPU-00000001-aaaa-bbbb-cccc-000000000000"


def test_user_token_is_rejected_at_ingest(alice):
    assert_error(post(alice.client(), batch([reading(T0, [gpu_data(0)])])), 401)


def test_no_token_is_rejected_at_ingest(anonymous):
    assert_error(post(anonymous, batch([reading(T0, [gpu_data(0)])])), 401)


def test_node_token_can_do_nothing_else(agent_client, node):
    assert_error(agent_client.get("/api/v1/me/"), 401, "authentication_failed")
    assert_error(agent_client.get("/api/v1/telemetry/gpus/"), 401)


def test_revoked_node_token_is_rejected(agent_client, node):
    services.revoke_node_tokens(node, now=T0)
    assert_error(post(agent_client, batch([reading(T0, [gpu_data(0)])])), 401)


def test_token_of_another_node_cannot_post_for_this_one(agent_client):
    error = assert_error(
        post(agent_client, batch([reading(T0, [gpu_data(0)])], node="gpu-02")), 400
    )
    assert "node" in error["details"]


@pytest.mark.parametrize(
    ("body", "want_key"),
    [
        pytest.param({"readings": []}, "readings", id="no-readings"),
        pytest.param([1, 2], "non_field_errors", id="not-an-object"),
        pytest.param(batch([{"at": "yesterday", "gpus": []}]), "readings[0].at", id="bad-time"),
        pytest.param(
            batch([reading(T0, [gpu_data(0, util=140.0)])]),
            "readings[0].gpus[0].utilization_gpu_pct",
            id="utilization-over-100",
        ),
        pytest.param(
            batch([reading(T0, [gpu_data(0, processes=[{"pid": "x"}])])]),
            "readings[0].gpus[0].processes[0]",
            id="process-without-pid",
        ),
        pytest.param(batch([reading(T0, [gpu_data(0)])], dropped=-1), "dropped", id="dropped"),
        pytest.param(
            batch([reading(T0, [gpu_data(99)])]), "readings[0].gpus[0].index", id="gpu-index"
        ),
    ],
)
def test_malformed_batch_is_400_with_details(agent_client, body, want_key):
    error = assert_error(post(agent_client, body), 400, "invalid")
    assert want_key in error["details"], error
    assert GpuSample.objects.count() == 0


def test_malformed_json_is_400(agent_client):
    response = agent_client.post(URL, data="{nope", content_type="application/json")
    assert_error(response, 400, "malformed_json")


def test_rollup_of_one_minute_merges_batches(agent_client, node):
    # Six readings in 12:00, two batches; GPU 0 runs 0,10,...,50 %; then one in 12:01.
    first = [
        reading(T0 + timedelta(seconds=10 * i), [gpu_data(0, util=10.0 * i)]) for i in range(3)
    ]
    second = [
        reading(
            T0 + timedelta(seconds=10 * i), [gpu_data(0, util=10.0 * i, memory_used_mib=2000.0)]
        )
        for i in range(3, 6)
    ]
    later = [reading(T0 + timedelta(seconds=60), [gpu_data(0, util=80.0)])]
    for readings in (first, second, later):
        assert post(agent_client, batch(readings)).status_code == 202
    minute = GpuMinute.objects.get(gpu__index=0, minute=T0)
    assert minute.samples == 6
    assert minute.utilization_mean == pytest.approx(25.0)  # (0+10+20+30+40+50)/6
    assert minute.utilization_max == 50.0
    assert minute.memory_used_mean == pytest.approx(1500.0)
    assert minute.idle_samples == 1  # only the 0 % reading is under 5 %
    assert GpuMinute.objects.get(gpu__index=0, minute=T0 + timedelta(minutes=1)).samples == 1
    state = GpuState.objects.get(gpu__index=0)
    assert state.at == T0 + timedelta(seconds=60) and state.utilization == 80.0


def test_an_old_backlog_does_not_overwrite_the_latest_state(agent_client):
    post(agent_client, batch([reading(T0 + timedelta(minutes=5), [gpu_data(0, util=70.0)])]))
    old = reading(T0, [gpu_data(0, util=1.0)], healthy=False, error="old trouble")
    post(agent_client, batch([old], dropped=4))
    assert GpuState.objects.get(gpu__index=0).utilization == 70.0
    agent_state = NodeAgentState.objects.get()
    assert agent_state.last_reading_at == T0 + timedelta(minutes=5)
    assert agent_state.dropped_total == 4
    assert agent_state.healthy is True and agent_state.error == ""


def test_job_summary_from_allocation_and_from_process_labels(agent_client, make_job):
    job = make_job(indices=(0,))
    other = make_job(indices=())  # the agent names this one through its pod's labels
    utils = [0.0, 2.0, 50.0, 90.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0]
    for i, util in enumerate(utils):
        labelled = {"pid": 9, "job_id": other.pk, "attempt": 1, "foreign": False}
        post(
            agent_client,
            batch(
                [
                    reading(
                        T0 + timedelta(seconds=10 * i),
                        [gpu_data(0, util=util), gpu_data(1, util=40.0, processes=[labelled])],
                    )
                ]
            ),
        )
    summary = job_summary(job)
    assert summary["samples"] == 10
    assert summary["utilization_mean"] == pytest.approx(74.2)
    assert summary["utilization_p95"] == 100.0
    assert summary["idle_fraction"] == pytest.approx(0.2)  # 0 % and 2 %
    assert summary["memory_used_mean_mib"] == 1000.0
    assert summary["gpu_hours"] == pytest.approx(100 / 3600, abs=1e-4)  # 10 samples x 10 s
    assert job_summary(other)["utilization_mean"] == 40.0
    assert JobUtilization.objects.count() == 2


def test_foreign_process_counted(agent_client, make_job):
    make_job(indices=(0,))
    unknown_pod = {"pid": 1, "pod_uid": "u", "foreign": None}
    post(
        agent_client,
        batch(
            [
                reading(
                    T0,
                    [
                        gpu_data(0, processes=[unknown_pod]),  # job's GPU: its own pod
                        gpu_data(1, processes=[unknown_pod, {"pid": 2, "foreign": True}]),
                    ],
                )
            ]
        ),
    )
    states = dict(GpuState.objects.values_list("gpu__index", "foreign_processes"))
    assert states == {0: 0, 1: 2}


def test_driver_failure_marks_every_gpu_unhealthy(agent_client, node):
    body = batch([{"at": T0.isoformat(), "healthy": False, "error": "driver: gone", "gpus": []}])
    assert post(agent_client, body).status_code == 202
    assert list(Gpu.objects.filter(node=node).values_list("healthy", flat=True)) == [False, False]
    assert set(GpuState.objects.values_list("error", flat=True)) == {"driver: gone"}
    post(agent_client, batch([reading(T0 + timedelta(seconds=10), [gpu_data(0), gpu_data(1)])]))
    assert list(Gpu.objects.filter(node=node).values_list("healthy", flat=True)) == [True, True]


def test_unknown_gpu_index_is_reported_not_stored(agent_client):
    response = post(agent_client, batch([reading(T0, [gpu_data(0), gpu_data(5)])]))
    assert response.json()["unknown_gpus"] == [5] and GpuSample.objects.count() == 1


def test_retention_deletes_old_raw_samples_but_keeps_rollups(agent_client, settings):
    settings.KARIMASU_TELEMETRY_RAW_RETENTION_HOURS = 24
    settings.KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS = 90
    old, recent = T0 - timedelta(hours=25), T0 - timedelta(hours=1)
    post(agent_client, batch([reading(old, [gpu_data(0)]), reading(recent, [gpu_data(0)])]))
    result = services.apply_retention(now=T0)
    assert result.samples_deleted == 1 and result.minutes_deleted == 0
    assert list(GpuSample.objects.values_list("at", flat=True)) == [recent]
    assert GpuMinute.objects.count() == 2
    assert services.apply_retention(now=T0 + timedelta(days=91)).minutes_deleted == 2


def test_retention_task_runs(agent_client):
    from scheduler.telemetry.tasks import apply_retention

    post(agent_client, batch([reading(T0 - timedelta(days=2), [gpu_data(0)])]))
    assert apply_retention.apply().get() == {"samples": 1, "minutes": 0}


def test_create_node_token_command_prints_a_working_token(node, capsys):
    call_command("create_node_token", "gpu-01")
    plaintext = capsys.readouterr().out.strip()
    assert plaintext.startswith("kmn_")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert post(client, batch([reading(T0, [gpu_data(0)])])).status_code == 202


def test_ingest_query_count_does_not_grow_with_readings(
    agent_client, django_assert_max_num_queries
):
    readings = [
        reading(T0 + timedelta(seconds=10 * i), [gpu_data(0), gpu_data(1)]) for i in range(30)
    ]
    with django_assert_max_num_queries(20):
        assert post(agent_client, batch(readings)).json()["samples"] == 60


@pytest.mark.django_db(transaction=True)
def test_agent_posts_to_the_live_portal(live_server, node):
    from tests.nodeagent.test_agent import Clock, CountingSource

    _, plaintext = services.create_node_token(node, now=T0)
    sender = HttpSender(live_server.url, plaintext, timeout=5)
    agent = Agent(CountingSource(), "gpu-01", sender, clock=Clock())
    agent.tick()
    agent.tick()
    assert len(agent.buffer) == 0 and agent.send_failures == 0
    assert sorted(GpuSample.objects.values_list("utilization", flat=True)) == [1.0, 2.0]
    bad = Agent(CountingSource(), "gpu-01", HttpSender(live_server.url, "kmn_wrong"), clock=Clock())
    bad.tick()
    assert len(bad.buffer) == 1 and bad.send_failures == 1  # 401: kept for when it's fixed


def test_a_pod_on_another_gpu_than_its_booked_index_is_credited_from_its_processes(
    agent_client, make_job
):
    """Device-plugin mode (issue 16): Karimasu placed the job on GPU 0, the kubelet gave its
    pod GPU 1. The job is credited with GPU 1's busy readings (its process is there), not with
    the idle GPU 0 it was placed on; GPU 0 belongs to no job."""
    job = make_job(indices=(0,))
    mine = {"pid": 7, "pod_uid": "p", "job_id": job.pk, "attempt": 1, "foreign": False}
    for i in range(3):
        post(
            agent_client,
            batch(
                [
                    reading(
                        T0 + timedelta(seconds=10 * i),
                        [gpu_data(0, util=0.0), gpu_data(1, util=95.0, processes=[mine])],
                    )
                ]
            ),
        )
    summary = job_summary(job)
    assert summary["samples"] == 3
    assert summary["utilization_mean"] == 95.0
    assert summary["idle_fraction"] == 0.0
    by_gpu = dict(GpuSample.objects.values_list("gpu__index", "job_id").distinct())
    assert by_gpu == {0: None, 1: job.pk}


def test_two_jobs_swapped_by_the_cluster_are_each_credited_with_their_own_gpu(
    agent_client, make_job
):
    first, second = make_job(indices=(0,)), make_job(indices=(1,))
    on_one = {"pid": 1, "job_id": first.pk, "attempt": 1, "foreign": False}
    on_zero = {"pid": 2, "job_id": second.pk, "attempt": 1, "foreign": False}
    post(
        agent_client,
        batch(
            [
                reading(
                    T0,
                    [
                        gpu_data(0, util=10.0, processes=[on_zero]),
                        gpu_data(1, util=80.0, processes=[on_one]),
                    ],
                )
            ]
        ),
    )
    assert job_summary(first)["utilization_mean"] == 80.0
    assert job_summary(second)["utilization_mean"] == 10.0


def test_an_agent_that_reports_only_pod_uids_is_resolved_through_the_jobs_pods(
    agent_client, make_job
):
    """The default agent (`--pods none`) reports a process's pod UID, not its job: the portal
    finds the job by the pods reconcile saw (`Job.pod_uids`), whatever GPU the pod got."""
    job = make_job(indices=(0,))
    job.pod_uids = ["pod-of-job"]
    job.save(update_fields=["pod_uids"])
    process = {"pid": 7, "pod_uid": "pod-of-job", "foreign": None}
    post(
        agent_client,
        batch([reading(T0, [gpu_data(0, util=0.0), gpu_data(1, util=88.0, processes=[process])])]),
    )
    assert job_summary(job)["utilization_mean"] == 88.0
    assert job_summary(job)["samples"] == 1
    states = dict(GpuState.objects.values_list("gpu__index", "foreign_processes"))
    assert states == {0: 0, 1: 0}  # its process is not foreign
