"""A demo-like world for the Japanese walks: bob (language ``ja``, a member of ``vision``)
with a job in every state, a booking, a session, a query with findings, a pipeline and its
run, a team, a dataset. Names are chosen outside the English dictionary (user data is not
what the walk checks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from portal.accounts.models import ApiToken
from scheduler import states
from scheduler.models import (
    Job,
    PriorityClass,
    QueueOrder,
    Reservation,
    Session,
    WorkspaceImage,
)
from scheduler.services import reservations, sessions, submission
from scheduler.services.jobs import transition_job
from tests.browser.conftest import page, sign_in  # noqa: F401  (Chromium, for the walk)
from tests.pipelines.conftest import Driver, copy_inputs, three_steps
from tests.scheduler.conftest import make_node

# The edges that take a queued job to each state.
PATHS: dict[str, list[str]] = {
    states.QUEUED: [],
    states.ADMITTED: [states.ADMITTED],
    states.STARTING: [states.ADMITTED, states.STARTING],
    states.RUNNING: [states.ADMITTED, states.RUNNING],
    states.SUCCEEDED: [states.ADMITTED, states.RUNNING, states.SUCCEEDED],
    states.FAILED: [states.ADMITTED, states.RUNNING, states.FAILED],
    states.CANCELLED: [states.CANCELLED],
    states.TIMED_OUT: [states.ADMITTED, states.RUNNING, states.TIMED_OUT],
    states.PREEMPTED: [states.ADMITTED, states.RUNNING, states.PREEMPTED],
    states.LOST: [states.ADMITTED, states.LOST],
}


# The reason each state is reached with (codes the pages explain in words).
REASONS = {
    states.ADMITTED: "admitted",
    states.STARTING: "starting",
    states.FAILED: "oom_killed",
    states.CANCELLED: "cancelled",
    states.TIMED_OUT: "deadline_exceeded",
    states.PREEMPTED: "preempted_priority",
    states.LOST: "node_lost",
}


@pytest.fixture(autouse=True)
def _language_restored() -> Any:
    """The middleware activates bob's Japanese in the thread that serves the test client's
    requests (this one) and nothing deactivates it: later tests would read Japanese."""
    yield
    from django.utils import translation

    translation.deactivate()


@dataclass
class World:
    jobs: dict[str, Job] = field(default_factory=dict)
    booking: Reservation | None = None
    session: Session | None = None
    query: Any = None
    pipeline: Any = None
    run: Any = None
    dataset: Any = None
    token: ApiToken | None = None


@pytest.fixture
def japanese_bob(bob):
    bob.user.language = "ja"
    bob.user.first_name, bob.user.last_name = "Bob", "Baba"
    bob.user.save()
    return bob


@pytest.fixture
def world(settings, tmp_path, japanese_bob, alice, vision, demo, duckdb_engine, unlimited) -> World:
    from pipelines.models import Dataset
    from pipelines.services import runs
    from querygate.services import admission

    settings.QUERYGATE_RESULTS_DIR = tmp_path / "query-results"
    settings.PIPELINES_DATASETS_DIR = tmp_path / "datasets"
    bob = japanese_bob.user
    now = timezone.now()
    # The migration's default class (a transactional test's flush removes it).
    PriorityClass.objects.get_or_create(name="normal", defaults={"value": 0, "is_default": True})
    node = make_node("tesla-01", 4)
    make_node("a100-01", 4, "NVIDIA-A100-SXM4-80GB")
    world = World()

    for status, path in PATHS.items():
        job = submission.submit_job(
            bob,
            submission.JobRequest(
                name=f"resnet-{status}", image="pytorch/pytorch:2.4", team="vision",
                max_runtime_s=3600, gpus=1,
            ),
            now=now,
        )  # fmt: skip
        for to in path:
            fields: dict[str, Any] = {}
            if to == states.ADMITTED:
                fields = {"node": node, "gpu_indices": [0], "admitted_at": now}
            elif to == states.RUNNING:
                fields = {"started_at": now}
            elif to in states.TERMINAL:
                fields = {"finished_at": now}
            job = transition_job(job, to, now=now, reason=REASONS.get(to, ""), **fields)
        world.jobs[status] = job
    # The queued job waits for a reason, as the scheduler's cycle would say.
    Job.objects.filter(pk=world.jobs[states.QUEUED].pk).update(reason="capacity")
    QueueOrder.record(now, [world.jobs[states.QUEUED].pk], [0])
    world.jobs[states.QUEUED].refresh_from_db()

    world.booking = reservations.reserve_gpus(
        bob, team=vision, node=node, gpu_indices=[2, 3], start=now - timedelta(minutes=5),
        end=now + timedelta(hours=2), purpose="", now=now - timedelta(minutes=5),
    )  # fmt: skip
    workspace = WorkspaceImage.objects.create(
        name="lab-ws", title="Lab", image="karimasu/ws:1", kind=WorkspaceImage.Kind.JUPYTER,
        port=8888, command=["python", "-m", "kube_emulator.workspace"],
    )  # fmt: skip
    world.session = sessions.start_session(
        bob, reservation=world.booking, workspace=workspace, now=now
    )

    # A query with findings (SELECT * without a limit): warned, acknowledged.
    world.query = admission.submit_query(
        bob, "demo", "SELECT * FROM customer", now=now, acknowledge_warnings=True,
        engine=duckdb_engine,
    )  # fmt: skip

    world.pipeline = runs.save_pipeline(
        bob, team_slug="vision", name="churn", definition=three_steps(), now=now
    )
    world.run = runs.start_run(bob, world.pipeline, now=now)
    Driver(duckdb_engine, {"prep": copy_inputs, "train": lambda s, o: "failed"}).finish(world.run)
    world.run.refresh_from_db()
    world.dataset = Dataset.objects.order_by("pk").first()
    world.token = ApiToken.objects.filter(user=bob).first()
    return world
