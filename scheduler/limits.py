"""The scheduler's fixed limits, each written once: the services enforce them, and the
API's serializers, the page forms (whose inputs get ``min``/``max`` from them), the model
constraints and the docs read them from here.

Pure constants (no Django): the core may import them too. Limits an operator tunes are
settings instead (``KARIMASU_MAX_JOB_RUNTIME_HOURS``, ``KARIMASU_MAX_ATTEMPTS``), and a
team's are rows (``TeamQuota``, ``TeamPolicy``).
"""

from __future__ import annotations

#: The most GPUs one booking takes, and one job per node (``Job.gpus``): one node's worth
#: (the largest nodes have 8). The database holds it for jobs too (``job_gpus_at_most_8``).
MAX_GPUS = 8

#: The most GPUs one job takes in all, ``nodes x gpus`` (a multi-node job, a gang). The
#: database holds it (``Job``'s ``job_total_gpus_at_most_64``); the most nodes is a setting
#: (``KARIMASU_MAX_JOB_NODES``).
MAX_JOB_GPUS = 64

#: The most jobs one sweep makes, counted before a grid is expanded.
MAX_SWEEP_JOBS = 500

#: The shortest and longest booking or borrowing asked for at once, in hours.
MIN_BOOKING_HOURS = 0.25
MAX_BOOKING_HOURS = 24 * 31
