"""A warehouse's or grant's ``policy`` JSON read into the gate's ``Policy`` and the engine
``Limits``. Below the models (whose ``clean`` validates a policy with it) and the
services (which apply it), so that models never import services.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from querygate.analysis import Policy
from querygate.engines.sandbox import MIB, Limits
from querygate.errors import InvalidPolicy

__all__ = [
    "EXPORT_KEYS",
    "LIMIT_KEYS",
    "ExportLimits",
    "export_limits",
    "policy_from",
    "sandbox_limits",
]

_POLICY_FIELDS = {f.name for f in dataclasses.fields(Policy)} - {"allow_lists", "allow_writes"}

#: Keys of a warehouse's ``policy`` that set its engine limits (MiB, or threads), over the
#: ``QUERYGATE_*`` settings of the same meaning.
LIMIT_KEYS = {
    "sandbox_memory_mb": "QUERYGATE_SANDBOX_MEMORY_MB",
    "sandbox_threads": "QUERYGATE_SANDBOX_THREADS",
    "temp_mb": "QUERYGATE_TEMP_MB",
    "max_result_mb": "QUERYGATE_MAX_RESULT_MB",
}


def sandbox_limits(*overrides: dict[str, Any]) -> Limits:
    """The limits of every engine call: the ``QUERYGATE_*`` settings, then the
    ``LIMIT_KEYS`` of each policy override in order. ``InvalidPolicy`` for a value that is
    not a positive integer."""
    values = {key: int(getattr(settings, name)) for key, name in LIMIT_KEYS.items()}
    for override in overrides:
        for key in LIMIT_KEYS:
            if key not in override:
                continue
            value = override[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidPolicy(
                    _("The policy's %(key)s must be a positive whole number.") % {"key": key}
                )
            values[key] = value
    return Limits(
        memory_bytes=values["sandbox_memory_mb"] * MIB,
        threads=values["sandbox_threads"],
        temp_bytes=values["temp_mb"] * MIB,
        max_result_bytes=values["max_result_mb"] * MIB,
    )


#: Keys of a warehouse's ``policy`` that bound its full exports (rows; MiB of Arrow data),
#: over the ``QUERYGATE_*`` settings of the same meaning; 0 turns exports off.
EXPORT_KEYS = {
    "max_export_rows": "QUERYGATE_MAX_EXPORT_ROWS",
    "max_export_mb": "QUERYGATE_MAX_EXPORT_MB",
}


@dataclasses.dataclass(frozen=True)
class ExportLimits:
    rows: int
    bytes: int

    @property
    def enabled(self) -> bool:
        return self.rows > 0 and self.bytes > 0


def export_limits(*overrides: dict[str, Any]) -> ExportLimits:
    """The export cap: the ``QUERYGATE_MAX_EXPORT_*`` settings, then the ``EXPORT_KEYS`` of
    each policy override in order. ``InvalidPolicy`` for a value that is not a whole number
    of at least 0."""
    values = {key: int(getattr(settings, name)) for key, name in EXPORT_KEYS.items()}
    for override in overrides:
        for key in EXPORT_KEYS:
            if key not in override:
                continue
            value = override[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidPolicy(
                    _("The policy's %(key)s must be a whole number, 0 or more.") % {"key": key}
                )
            values[key] = value
    return ExportLimits(rows=values["max_export_rows"], bytes=values["max_export_mb"] * MIB)


def policy_from(*overrides: dict[str, Any], allow_writes: bool) -> Policy:
    """``Policy`` defaults with the known fields of each override applied in order.

    Severity overrides combine rule by rule (a grant's override of one rule keeps the
    warehouse's overrides of the others). An invalid override is InvalidPolicy (400), not a
    crash: the admin screens validate on save, this guards rows saved before that.
    """
    values: dict[str, Any] = {}
    severities: dict[str, Any] = {}
    for override in overrides:
        values.update({k: v for k, v in override.items() if k in _POLICY_FIELDS})
        if isinstance(override.get("severity_overrides"), dict):
            severities.update(override["severity_overrides"])
    if severities:
        values["severity_overrides"] = severities
    try:
        return Policy(**values, allow_writes=allow_writes)
    except (TypeError, ValueError) as exc:
        raise InvalidPolicy(
            _("The warehouse's query policy is invalid: %(error)s") % {"error": exc}
        ) from exc
