"""Job logs that outlive their pods, and a follow that never holds a web thread for long.

A Kubernetes Job and its pods go away ``ttlSecondsAfterFinished`` (an hour) after the end,
and their logs with them. When reconcile sees an attempt finish it archives the attempt's
log into ``KARIMASU_JOB_LOGS_DIR`` (on the shared volume in a deployment), written to a
temporary file and renamed, so a half-written archive is never served; an archive larger
than ``KARIMASU_JOB_LOG_MAX_MB`` keeps its head and its tail. The log view serves the
archive when there is one, else the cluster's log.

``follow`` streams for at most ``KARIMASU_LOG_FOLLOW_SECONDS`` and then ends: a client
follows a long job by asking again (the job page does), so a follower costs one web thread
for that long at most, however long the job runs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings

from scheduler.cluster.backend import ClusterBackend, ClusterError
from scheduler.models import Job

log = logging.getLogger("karimasu.jobs")


def logs_dir() -> Path:
    return Path(settings.KARIMASU_JOB_LOGS_DIR)


def archive_path(job: Job, attempt: int) -> Path:
    """The archive of one attempt. The submission time is in the name, so a database that
    was reset (ids reused) never shows another job's log."""
    stamp = int(job.submitted_at.timestamp()) if job.submitted_at else 0
    return logs_dir() / f"job-{int(job.pk)}-a{int(attempt)}-{stamp}.log"


def archive_log(backend: ClusterBackend, job: Job, attempt: int) -> bool:
    """Copy the attempt's log from the cluster into its archive file; False when the cluster
    had none (or could not be read: reconcile goes on, the log stays on the cluster)."""
    limit = int(settings.KARIMASU_JOB_LOG_MAX_MB) * 1024 * 1024
    job_id = job.pk
    try:
        lines = list(_capped(backend.logs(job_id, attempt), limit))
    except ClusterError as exc:
        log.warning("job.log_archive_failed job=%s attempt=%s %s", job_id, attempt, exc)
        return False
    if not lines:
        return False
    target = archive_path(job, attempt)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".log")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.writelines(f"{line}\n" for line in lines)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        log.warning("job.log_archive_failed job=%s attempt=%s %s", job_id, attempt, exc)
        return False
    return True


def _capped(lines: Iterable[str], limit: int) -> Iterator[str]:
    """At most ``limit`` bytes of lines: the first half, a marker, the last lines."""
    head_budget = limit // 2
    size, tail, tail_size, cut = 0, deque[str](), 0, 0
    for line in lines:
        if size + len(line) + 1 <= head_budget:
            size += len(line) + 1
            yield line
            continue
        tail.append(line)
        tail_size += len(line) + 1
        while tail and tail_size > limit - head_budget:
            tail_size -= len(tail.popleft()) + 1
            cut += 1
    if cut:
        yield f"[karimasu: {cut} lines cut from the middle of this log]"
    yield from tail


def read_archive(job: Job, attempt: int, tail: int | None) -> list[str] | None:
    """The archived lines (the last ``tail`` of them), or None when there is no archive."""
    path = archive_path(job, attempt)
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            lines = deque((line.rstrip("\n") for line in handle), maxlen=tail or None)
    except FileNotFoundError:
        return None
    return list(lines)


def bounded(lines: Iterable[str], seconds: float) -> Iterator[str]:
    """Lines until ``seconds`` have passed (checked between lines; the cluster read itself
    times out after the same time without a line)."""
    deadline = time.monotonic() + seconds
    try:
        for line in lines:
            yield line
            if time.monotonic() >= deadline:
                return
    except Exception as exc:  # a read timeout or a closed stream: end the stream, not a 500
        log.info("job.log_follow_ended %s", type(exc).__name__)
