"""Helpers for the hot API responses built as plain dicts instead of through serializers.

A ModelSerializer builds its fields on every request and runs two or three Python calls per
field and row; for the notebooks' hot path (`/api/v1/me/`, `/api/v1/jobs/`,
`/api/v1/nodes/`) that was most of the request. Those views build their dicts from rows
read with `values()`, with the same keys, order and values as their serializers (which stay
the reference and the OpenAPI schema; the tests compare both outputs).

The conversions here are those of DRF's fields for the types these columns hold.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from django.utils import timezone
from rest_framework import ISO_8601
from rest_framework.fields import DateTimeField
from rest_framework.settings import api_settings

_DATETIME_FIELD = DateTimeField()


class Datetimes:
    """`serializers.DateTimeField().to_representation` for many values in one response.

    The current time zone is read once (DRF reads it per value): the response is built in
    one request, under one time zone.
    """

    def __init__(self) -> None:
        self.zone: tzinfo | None = timezone.get_current_timezone()
        output = api_settings.DATETIME_FORMAT
        self.fast = self.zone is not None and output is not None and output.lower() == ISO_8601

    def __call__(self, value: datetime | None) -> str | None:
        if not value:
            return None
        if not self.fast or value.tzinfo is None:
            return _DATETIME_FIELD.to_representation(value)
        text = value.astimezone(self.zone).isoformat()
        if text.endswith("+00:00"):
            text = text[:-6] + "Z"
        return text


def integer(value: Any) -> int | None:
    """`IntegerField` under a serializer: None stays None."""
    return None if value is None else int(value)


def floating(value: Any) -> float | None:
    """`FloatField` under a serializer: None stays None."""
    return None if value is None else float(value)


def boolean(value: Any) -> bool | None:
    """`BooleanField` under a serializer (for the booleans a column holds)."""
    return None if value is None else bool(value)


class CountedRows:
    """A `values()` queryset to paginate, counted by `count()`.

    The rows read columns through joins (`owner__username`); Django keeps those joins in
    the paginator's COUNT(*). Counting the plain queryset they come from gives the same
    number without them (and is built only when the paginator needs a count).
    """

    ordered = True  # the rows are ordered: the paginator need not warn

    def __init__(self, count: Callable[[], int], rows: Any) -> None:
        self._count = count
        self.rows = rows

    def count(self) -> int:
        return int(self._count())

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, key: Any) -> Any:
        return self.rows[key]
