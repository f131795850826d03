"""Queryset helpers for the hot paths."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet


def prebuilt(build: Callable[[], QuerySet[Any]]) -> Callable[[], QuerySet[Any]]:
    """`build()`'s queryset, set up once per process and copied at each call (filter it).

    Setting up a `values()` query of many columns (resolving each name, its joins) costs a
    tenth of a hot request; copying a queryset is cheap. A queryset is never changed in
    place, and the one kept is never evaluated, so the copies share nothing mutable.
    """
    base = functools.cache(build)

    def copy() -> QuerySet[Any]:
        return base().all()

    return copy
