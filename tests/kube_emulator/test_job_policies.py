"""The Job controller's failure handling and Indexed Jobs: backoffLimit, podFailurePolicy
(FailJob, Ignore, Count, FailIndex), completionMode Indexed with completions/parallelism,
per-index Pods and statuses, backoffLimitPerIndex and maxFailedIndexes."""

from __future__ import annotations

import re

import pytest

from kube_emulator.jobs import compress_indexes

from .conftest import NS, condition, job_pods, make_job

INDEX = "batch.kubernetes.io/job-completion-index"


def _body(batch, name: str, **kwargs) -> dict:
    spec_extra = kwargs.pop("spec", {})
    body = batch.api_client.sanitize_for_serialization(make_job(name, **kwargs))
    body["spec"].update(spec_extra)
    return body


def _rules(*rules: dict) -> dict:
    return {"podFailurePolicy": {"rules": list(rules)}}


def test_backoff_limit_counts_failed_pods(emulator, core, batch) -> None:
    batch.create_namespaced_job(NS, _body(batch, "flaky", duration=1, exit_code=1, backoff_limit=2))
    emulator.advance(200)
    job = batch.read_namespaced_job("flaky", NS)
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    assert job.status.failed == 3  # the first run and two retries
    assert len(job_pods(core, "flaky")) == 3


def test_fail_job_rule_ends_the_job_at_the_first_matching_exit_code(emulator, core, batch) -> None:
    rules = _rules(
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
    )
    batch.create_namespaced_job(
        NS, _body(batch, "fatal", duration=1, exit_code=42, backoff_limit=6, spec=rules)
    )
    emulator.advance(5)
    job = batch.read_namespaced_job("fatal", NS)
    failed = condition(job, "Failed")
    assert failed.reason == "PodFailurePolicy"
    assert re.search(
        r"Container train for pod karimasu-jobs/fatal-\w+ failed with exit code 42 matching "
        r"FailJob rule at index 0",
        failed.message,
    )
    assert len(job_pods(core, "fatal")) == 1  # no retry despite backoffLimit 6


def test_other_exit_codes_still_count(emulator, core, batch) -> None:
    rules = _rules({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}})
    batch.create_namespaced_job(
        NS, _body(batch, "counted", duration=1, exit_code=3, backoff_limit=1, spec=rules)
    )
    emulator.advance(60)
    assert condition(batch.read_namespaced_job("counted", NS), "Failed").reason == (
        "BackoffLimitExceeded"
    )


def test_ignore_rule_on_a_disruption_does_not_count(emulator, core, batch) -> None:
    rules = _rules(
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    )
    batch.create_namespaced_job(
        NS, _body(batch, "tolerant", duration=1000, backoff_limit=0, spec=rules)
    )
    emulator.settle()
    [pod] = job_pods(core, "tolerant")
    emulator.controller.lose_node(pod.spec.node_name)
    emulator.advance(330)  # evicted after 300 s, then replaced elsewhere
    job = batch.read_namespaced_job("tolerant", NS)
    assert condition(job, "Failed") is None
    assert job.status.failed is None  # the ignored failure is not counted
    phases = sorted(p.status.phase for p in job_pods(core, "tolerant"))
    assert phases == ["Failed", "Running"]


def test_not_in_rule_ignores_clean_exits_and_listed_codes(emulator, core, batch) -> None:
    rules = _rules(
        {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
    )
    batch.create_namespaced_job(
        NS, _body(batch, "listed", duration=1, exit_code=2, backoff_limit=1, spec=rules)
    )
    batch.create_namespaced_job(
        NS, _body(batch, "unlisted", duration=1, exit_code=7, backoff_limit=1, spec=rules)
    )
    emulator.advance(60)
    assert condition(batch.read_namespaced_job("listed", NS), "Failed").reason == (
        "BackoffLimitExceeded"
    )
    assert condition(batch.read_namespaced_job("unlisted", NS), "Failed").reason == (
        "PodFailurePolicy"
    )


def test_indexed_job_runs_each_index_with_its_identity(emulator, core, batch) -> None:
    spec = {"completionMode": "Indexed", "completions": 3, "parallelism": 2}
    body = _body(batch, "shards", gpus=0, duration=10, spec=spec)
    body["spec"]["template"]["spec"]["subdomain"] = "shards-svc"
    batch.create_namespaced_job(NS, body)
    emulator.settle()
    pods = job_pods(core, "shards")
    assert len(pods) == 2  # parallelism
    for pod in pods:
        index = pod.metadata.annotations[INDEX]
        assert pod.metadata.labels[INDEX] == index
        assert re.fullmatch(rf"shards-{index}-[a-z0-9]{{5}}", pod.metadata.name)
        assert (pod.spec.hostname, pod.spec.subdomain) == (f"shards-{index}", "shards-svc")
        [env] = [e for e in pod.spec.containers[0].env if e.name == "JOB_COMPLETION_INDEX"]
        assert env.value_from.field_ref.field_path == f"metadata.labels['{INDEX}']"
    assert sorted(p.metadata.annotations[INDEX] for p in pods) == ["0", "1"]

    emulator.advance(10)
    job = batch.read_namespaced_job("shards", NS)
    assert job.status.completed_indexes == "0-1"
    assert [
        p.metadata.annotations[INDEX]
        for p in job_pods(core, "shards")
        if p.status.phase == "Running"
    ] == ["2"]
    emulator.advance(10)
    job = batch.read_namespaced_job("shards", NS)
    assert (job.status.completed_indexes, job.status.succeeded) == ("0-2", 3)
    assert condition(job, "Complete").status == "True"


def test_backoff_limit_per_index_fails_only_that_index(emulator, core, batch) -> None:
    spec = {
        "completionMode": "Indexed",
        "completions": 4,
        "parallelism": 4,
        "backoffLimitPerIndex": 1,
    }
    annotations = {"karimasu.io/sim-fail-indexes": "2"}
    body = _body(batch, "per-index", gpus=0, duration=5, annotations=annotations, spec=spec)
    del body["spec"]["backoffLimit"]  # defaulted to "no global limit" with a per-index one
    batch.create_namespaced_job(NS, body)
    emulator.advance(60)
    job = batch.read_namespaced_job("per-index", NS)
    assert job.spec.backoff_limit == 2147483647
    assert (job.status.completed_indexes, job.status.failed_indexes) == ("0-1,3", "2")
    assert job.status.failed == 2  # index 2 ran twice
    assert condition(job, "Failed").reason == "FailedIndexes"


def test_max_failed_indexes_stops_the_job_early(emulator, core, batch) -> None:
    spec = {
        "completionMode": "Indexed",
        "completions": 3,
        "parallelism": 1,
        "backoffLimitPerIndex": 0,
        "maxFailedIndexes": 0,
    }
    annotations = {"karimasu.io/sim-fail-indexes": "0"}
    body = _body(batch, "strict", gpus=0, duration=5, annotations=annotations, spec=spec)
    batch.create_namespaced_job(NS, body)
    emulator.advance(10)
    job = batch.read_namespaced_job("strict", NS)
    assert condition(job, "Failed").reason == "MaxFailedIndexesExceeded"
    assert [p.metadata.annotations[INDEX] for p in job_pods(core, "strict")] == ["0"]


def test_fail_index_rule_fails_the_index_without_retry(emulator, core, batch) -> None:
    spec = {
        "completionMode": "Indexed",
        "completions": 2,
        "parallelism": 2,
        "backoffLimitPerIndex": 3,
        **_rules({"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [5]}}),
    }
    annotations = {"karimasu.io/sim-fail-indexes": "1"}
    body = _body(
        batch, "doomed", gpus=0, duration=5, exit_code=5, annotations=annotations, spec=spec
    )
    batch.create_namespaced_job(NS, body)
    emulator.advance(60)
    job = batch.read_namespaced_job("doomed", NS)
    assert (job.status.completed_indexes, job.status.failed_indexes) == ("0", "1")
    assert len(job_pods(core, "doomed")) == 2  # index 1 was not retried


@pytest.mark.parametrize(
    ("indexes", "text"), [(set(), ""), ({3}, "3"), ({0, 1, 2, 5, 6, 9}, "0-2,5-6,9")]
)
def test_compressed_index_notation(indexes, text) -> None:
    assert compress_indexes(indexes) == text
