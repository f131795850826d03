"""The scheduler speaks the reader's language (issue 18 item 1): refusals raised in a request
(booking conflicts, booking policy, quotas, job inputs with their details, not found,
permissions) and what background work stored in English (why a job waits, the timeline events
the cycle writes, cancels) reach a Japanese reader in Japanese, by the user's setting or by
``Accept-Language`` on a token request, and an English reader in the very words stored; the
default priority classes have Japanese names. ``code`` fields do not change with the language.
"""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone, translation
from django.utils.translation import gettext

from portal.accounts.models import User
from scheduler import messages, states
from scheduler.models import Job, JobEvent, TeamPolicy, TeamQuota
from scheduler.services.cycle import run_cycle
from tests.conftest import assert_error
from tests.scheduler.conftest import make_node, submit_job

pytestmark = pytest.mark.django_db

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdr]")


@pytest.fixture
def nodes(db):
    return [make_node("tesla-01"), make_node("a100-01", 4, "NVIDIA-A100-SXM4-80GB")]


def _set_language(persona, language: str) -> None:
    User.objects.filter(pk=persona.user.pk).update(language=language)


def _at(hours: float) -> str:
    moment = timezone.now() + timedelta(hours=hours)
    return moment.replace(second=0, microsecond=0).isoformat()


def _book(persona, gpus=(0,), start=1, end=3, **headers):
    body = {"team": "vision", "node": "tesla-01", "gpus": list(gpus)}
    body |= {"start": _at(start), "end": _at(end)}
    return persona.client().post("/api/v1/reservations/", body, format="json", **headers)


_submit = submit_job


def _three_ways(call, status: int, code: str | None = None):
    """The error body for bob in Japanese (his setting), for alice asking in Japanese
    (``Accept-Language``) and for alice in English: the same code each time."""
    return (
        assert_error(call("bob", {}), status, code),
        assert_error(call("alice", {"HTTP_ACCEPT_LANGUAGE": "ja"}), status, code),
        assert_error(call("alice", {"HTTP_ACCEPT_LANGUAGE": "en"}), status, code),
    )


def _japanese(text: str) -> bool:
    return bool(JAPANESE.search(text))


# --- refusals raised in the request --------------------------------------------------------


def test_a_booking_conflict_and_a_policy_refusal(alice, bob, vision, nodes, unlimited) -> None:
    _set_language(bob, "ja")
    people = {"alice": alice, "bob": bob}
    assert _book(alice, gpus=(0, 1), start=1, end=3).status_code == 201
    ja, asked, en = _three_ways(
        lambda who, headers: _book(people[who], gpus=(1,), start=2, end=4, **headers), 409
    )
    assert en["message"] == "Those GPUs are not free for that whole time."
    assert _japanese(ja["message"]) and ja["message"] == asked["message"]

    TeamPolicy.objects.filter(team=vision).update(max_booking_hours=1)
    ja, asked, en = _three_ways(
        lambda who, headers: _book(people[who], gpus=(0,), start=10, end=13, **headers),
        403,
        "policy_violation",
    )
    assert en["message"] == "Bookings of vision last at most 1 h (this one: 3.0 h)."
    assert ja["message"] == "vision の予約は最長 1 時間です（この予約：3.0 時間）。"  # noqa: RUF001
    assert asked["message"] == ja["message"]
    assert ja["details"] == en["details"] == {"rule": "max_booking_hours", "limit": 1}


def test_a_quota_refusal_and_an_input_error_with_its_details(alice, bob, vision, nodes) -> None:
    _set_language(bob, "ja")
    people = {"alice": alice, "bob": bob}
    TeamQuota.objects.create(team=vision, user_gpu_cap=2)
    ja, asked, en = _three_ways(
        lambda who, h: _submit(people[who], h, gpus=4, gpu_models=["NVIDIA-A100-SXM4-80GB"]),
        403,
        "over_limit",
    )
    assert en["message"] == "vision lets one member hold at most 2 GPUs; this job asks for 4."
    assert _japanese(ja["message"]) and "vision" in ja["message"] and "4" in ja["message"]
    assert asked["message"] == ja["message"]

    ja, asked, en = _three_ways(
        lambda who, h: _submit(people[who], h, env={"CUDA_VISIBLE_DEVICES": "0"}), 400, "invalid"
    )
    assert en["details"]["env"] == [en["message"]]
    assert en["message"].startswith("CUDA_VISIBLE_DEVICES cannot be set")
    assert _japanese(ja["message"]) and "CUDA_VISIBLE_DEVICES" in ja["message"]
    assert ja["details"]["env"] == [ja["message"]] and asked["details"] == ja["details"]


def test_not_found_and_not_permitted(alice, bob, vision, nodes) -> None:
    job = _submit(alice).json()
    _set_language(bob, "ja")
    people = {"alice": alice, "bob": bob}
    ja, asked, en = _three_ways(
        lambda who, h: people[who].client().get("/api/v1/jobs/999999/efficiency/", **h), 404
    )
    assert en["message"] == "Job not found."
    assert ja["message"] == asked["message"] == "ジョブが見つかりません。"

    # bob is a member, not a lead: he sees alice's job but may not cancel it.
    ja = assert_error(bob.client().post(f"/api/v1/jobs/{job['id']}/cancel/"), 403)
    assert ja["message"] == "このジョブを取り消せるのは、所有者、チームのリーダー、管理者だけです。"
    en = assert_error(
        bob.client().post(f"/api/v1/jobs/{job['id']}/cancel/", HTTP_ACCEPT_LANGUAGE="en"), 403
    )
    assert en["message"] == "Only the job's owner, its team's leads and admins can cancel it."


# --- what the cycle stored, read later --------------------------------------------------------


def test_why_a_job_waits_in_the_readers_language(alice, bob, vision, nodes) -> None:
    TeamQuota.objects.create(team=vision, guaranteed_gpus=0, borrowing_allowed=False)
    job = _submit(alice).json()
    run_cycle(None, now=timezone.now(), foreign_busy=frozenset())
    stored = Job.objects.get(pk=job["id"])
    assert stored.reason == "quota"
    assert stored.message == "team vision uses its 0 guaranteed GPUs"

    _set_language(bob, "ja")
    for client, headers in ((bob.client(), {}), (alice.client(), {"HTTP_ACCEPT_LANGUAGE": "ja"})):
        for url in (f"/api/v1/jobs/{job['id']}/", "/api/v1/jobs/"):
            body = client.get(url, **headers).json()
            row = body if "id" in body else body["results"][0]
            assert row["reason"] == "quota"  # the code stays
            assert row["message"] == "チーム vision は保証枠の 0 基の GPU を使い切っています"
    english = alice.client().get(f"/api/v1/jobs/{job['id']}/", HTTP_ACCEPT_LANGUAGE="en")
    assert english.json()["message"] == stored.message


def test_a_timeline_event_the_cycle_wrote(alice, bob, vision, nodes) -> None:
    now = timezone.now()
    job = Job.objects.create(
        name="victim",
        owner=alice.user,
        team=vision,
        image="x:1",
        gpus=1,
        max_runtime_s=600,
        status=states.PREEMPTED,
        reason="preempted_priority",
        terminating_until=now - timedelta(seconds=1),
        submitted_at=now,
    )
    run_cycle(None, now=now, foreign_busy=frozenset())
    event = JobEvent.objects.filter(job=job, to_status=states.QUEUED).get()
    assert event.message == "Requeued after preemption."

    _set_language(bob, "ja")
    [shown] = [
        e
        for e in bob.client().get(f"/api/v1/jobs/{job.pk}/").json()["events"]
        if e["to_status"] == states.QUEUED
    ]
    assert shown["message"] == "プリエンプトされたため、再びキューに入りました。"
    english = alice.client().get(f"/api/v1/jobs/{job.pk}/").json()["events"]
    assert "Requeued after preemption." in [e["message"] for e in english]


def test_the_default_priority_classes_have_japanese_names(alice, bob) -> None:
    _set_language(bob, "ja")
    shown = {p["name"]: p for p in bob.client().get("/api/v1/priority-classes/").json()["results"]}
    assert shown["high"]["display_name"] == "高" and shown["normal"]["display_name"] == "標準"
    assert _japanese(shown["low"]["description_text"])
    assert shown["low"]["description"] == "Runs when nothing else waits; first to be preempted."
    english = {
        p["name"]: p
        for p in alice.client()
        .get("/api/v1/priority-classes/", HTTP_ACCEPT_LANGUAGE="en")
        .json()["results"]
    }
    assert english["high"]["display_name"] == "High"
    assert english["low"]["description_text"] == english["low"]["description"]


# --- the stored templates --------------------------------------------------------------------


def test_every_stored_template_has_a_japanese_translation() -> None:
    with translation.override("ja"):
        for template in messages.TEMPLATES:
            japanese = gettext(template)
            assert japanese != template, template
            assert sorted(PLACEHOLDER.findall(japanese)) == sorted(PLACEHOLDER.findall(template)), (
                template
            )


def test_render_fills_nested_phrases_and_leaves_other_texts_alone() -> None:
    text = messages.stored(
        messages.PREEMPTED,
        who=messages.stored(messages.PREEMPTED_BY_JOB, gpus=4, team="nlp"),
        why=messages.PREEMPTED_RECLAIM,
    )
    cancelled = messages.stored(
        messages.CANCELLED_BY_SYSTEM_BECAUSE, reason=messages.SESSION_BOOKING_ENDED
    )
    with translation.override("ja"):
        shown = messages.render(text)
        assert "チーム nlp の 4 GPU のジョブ" in shown and "保証枠" in shown
        assert messages.render(cancelled) == "システムが取り消しました：予約が終了しました"  # noqa: RUF001
        # The cluster's own words, an admin's reason, and hostile input: as stored.
        for other in ("Back-off pulling image", "", "%(x)s", "Cancelled by", "a" * 5000):
            assert messages.render(other) == other
        assert messages.render(None) is None
    with translation.override("en"):
        assert messages.render(text) == text


def test_a_text_equal_to_a_template_is_that_template_not_a_filled_one() -> None:
    """ "behind other jobs of higher rank" also matches "behind %(ahead)s jobs of higher
    rank" (ahead="other"): the template it is wins over one it would fill."""
    with translation.override("ja"):
        shown = messages.render(messages.WAIT_BEHIND_OTHERS)
        assert shown == translation.gettext(messages.WAIT_BEHIND_OTHERS)
        assert "other" not in shown
        assert "3" in messages.render(messages.stored(messages.WAIT_BEHIND, ahead=3))


def _sample(node: ast.JoinedStr) -> str:
    return "".join(part.value if isinstance(part, ast.Constant) else "7" for part in node.values)


def test_every_waiting_detail_the_core_writes_has_a_template() -> None:
    """Each detail ``scheduler.core.cycle`` (no Django) writes for a waiting job, with its
    values filled in, renders in Japanese: a new or changed wording there fails here."""
    import scheduler.core.cycle as core

    # The source, also when the compiled module runs (``scripts/build_core.py``).
    source = Path(messages.__file__).resolve().parent / "core" / "cycle.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    details: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and any(
            isinstance(e, ast.Attribute) and getattr(e.value, "id", "") == "Reason"
            for e in node.elts
        ):
            details += [_sample(e) for e in node.elts if isinstance(e, ast.JoinedStr)]
            details += [
                e.value
                for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
            details += [  # a constant the core names (its own or ``decisions``')
                getattr(core, e.id)
                for e in node.elts
                if isinstance(e, ast.Name) and isinstance(getattr(core, e.id, None), str)
            ]
        if isinstance(node, ast.FunctionDef) and node.name == "_static_detail":
            details += [_sample(e) for e in ast.walk(node) if isinstance(e, ast.JoinedStr)]
            details += [
                e.value.value
                for e in ast.walk(node)
                if isinstance(e, ast.Return)
                and isinstance(e.value, ast.Constant)
                and isinstance(e.value.value, str)
            ]
    assert len(set(details)) >= 16, sorted(set(details))
    assert "no node is schedulable: none has joined, or all are cordoned or not ready" in details
    with translation.override("ja"):
        for detail in details:
            assert _japanese(messages.render(detail)), detail


def test_a_waiting_containers_explanation_is_translated_not_the_clusters_words() -> None:
    from scheduler.cluster.mapping import WAITING_REASONS, _explained

    explained = {explain for _code, explain in WAITING_REASONS.values() if explain}
    assert explained == set(messages.CLUSTER_PHRASES)
    _code, stored = _explained("CreateContainerConfigError", 'secret "hf-token" not found')
    _code, bare = _explained("CrashLoopBackOff", "")
    with translation.override("ja"):
        shown = messages.render(stored)
        assert shown.startswith("コンテナーの設定が不完全です")
        assert shown.endswith('（CreateContainerConfigError: secret "hf-token" not found）')  # noqa: RUF001
        assert messages.render(bare).startswith("コンテナーが終了を繰り返し")
        # Any other text in brackets is not taken for an explanation.
        assert messages.render("Something else (Reason: words)") == "Something else (Reason: words)"
