"""Shape check of a posted telemetry batch, by hand: it runs for every reading of every GPU of
every node, so it stays cheap (see benchmarks/telemetry_ingest.py). Pure: no Django.

`parse_batch(data)` returns the batch with `at` parsed to aware datetimes, or raises
`BatchError` whose `details` map a JSON path (`readings[0].gpus[1].utilization_gpu_pct`) to
what is wrong there.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypeGuard

MAX_READINGS = 1000
MAX_GPUS = 64
MAX_PROCESSES = 256

NUMBER_FIELDS = (
    "memory_total_mib",
    "memory_used_mib",
    "utilization_gpu_pct",
    "utilization_memory_pct",
    "temperature_c",
    "power_draw_w",
    "power_limit_w",
)
PERCENT_FIELDS = ("utilization_gpu_pct", "utilization_memory_pct")


class BatchError(ValueError):
    def __init__(self, details: dict[str, str]) -> None:
        super().__init__("Malformed telemetry batch.")
        self.details = details


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _at(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _iso(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat()


def parse_batch(
    data: Any, *, earliest: datetime | None = None, latest: datetime | None = None
) -> dict[str, Any]:
    """Check `data`; every reading's `at` must lie in [earliest, latest] when they are given.

    The window is what keeps the database readable: a time such as
    `9999-12-31T23:59:59-14:00` is year 10000 in UTC, which PostgreSQL stores but psycopg
    cannot read back, and a reading years ahead would stay the GPU's "latest" forever.
    """
    errors: dict[str, str] = {}
    if not isinstance(data, dict):
        raise BatchError({"non_field_errors": "Expected a JSON object."})
    for key in ("node", "source"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            errors[key] = "Expected a string."
    interval = data.get("interval_s", 10)
    if not _is_number(interval) or not 0 < interval <= 3600:
        errors["interval_s"] = "Expected a number of seconds in (0, 3600]."
    dropped = data.get("dropped", 0)
    if not _is_int(dropped) or dropped < 0:
        errors["dropped"] = "Expected a non-negative integer."
    readings = data.get("readings")
    if not isinstance(readings, list) or not readings:
        errors["readings"] = "Expected a non-empty list."
    elif len(readings) > MAX_READINGS:
        errors["readings"] = f"At most {MAX_READINGS} readings per batch."
    else:
        for i, reading in enumerate(readings):
            _check_reading(reading, f"readings[{i}]", errors, earliest, latest)
            if len(errors) >= 20:
                break
    if errors:
        raise BatchError(errors)
    return data


def _check_reading(
    reading: Any,
    path: str,
    errors: dict[str, str],
    earliest: datetime | None,
    latest: datetime | None,
) -> None:
    if not isinstance(reading, dict):
        errors[path] = "Expected an object."
        return
    at = _at(reading.get("at"))
    if at is None:
        errors[f"{path}.at"] = "Expected an RFC 3339 time with a zone."
    elif (earliest is not None and at < earliest) or (latest is not None and at > latest):
        errors[f"{path}.at"] = (
            f"Outside the accepted window [{_iso(earliest)}, {_iso(latest)}]:"
            " check the node's clock."
        )
    else:
        reading["at"] = at
    if not isinstance(reading.get("healthy", True), bool):
        errors[f"{path}.healthy"] = "Expected a boolean."
    gpus = reading.get("gpus", [])
    if not isinstance(gpus, list) or len(gpus) > MAX_GPUS:
        errors[f"{path}.gpus"] = f"Expected a list of at most {MAX_GPUS} GPUs."
        return
    for j, gpu in enumerate(gpus):
        _check_gpu(gpu, f"{path}.gpus[{j}]", errors)


def _check_gpu(gpu: Any, path: str, errors: dict[str, str]) -> None:
    if not isinstance(gpu, dict):
        errors[path] = "Expected an object."
        return
    index = gpu.get("index")
    if not _is_int(index) or not 0 <= index < MAX_GPUS:
        errors[f"{path}.index"] = f"Expected an integer 0..{MAX_GPUS - 1}."
    uuid = gpu.get("uuid")
    if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 64):
        errors[f"{path}.uuid"] = "Expected a string of at most 64 characters or null."
    if not isinstance(gpu.get("healthy", True), bool):
        errors[f"{path}.healthy"] = "Expected a boolean."
    _check_measures(gpu, path, errors)
    _check_processes(gpu.get("processes"), path, errors)


def _check_measures(gpu: dict[str, Any], path: str, errors: dict[str, str]) -> None:
    for key in NUMBER_FIELDS:
        value = gpu.get(key)
        if value is None:
            continue
        if not _is_number(value) or value < 0:
            errors[f"{path}.{key}"] = "Expected a non-negative number or null."
        elif key in PERCENT_FIELDS and value > 100:
            errors[f"{path}.{key}"] = "Expected a percentage 0..100."
    ecc = gpu.get("ecc_uncorrected")
    if ecc is not None and (not _is_int(ecc) or ecc < 0):
        errors[f"{path}.ecc_uncorrected"] = "Expected a non-negative integer or null."
    reasons = gpu.get("throttle_reasons")
    if reasons is not None and not (
        isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)
    ):
        errors[f"{path}.throttle_reasons"] = "Expected a list of strings or null."


def _check_processes(processes: Any, path: str, errors: dict[str, str]) -> None:
    if processes is None:
        return
    if not isinstance(processes, list) or len(processes) > MAX_PROCESSES:
        errors[f"{path}.processes"] = f"Expected a list of at most {MAX_PROCESSES} or null."
        return
    for k, proc in enumerate(processes):
        where = f"{path}.processes[{k}]"
        if not isinstance(proc, dict) or not _is_int(proc.get("pid")):
            errors[where] = "Expected an object with an integer pid."
            continue
        for key in ("job_id", "attempt"):
            if proc.get(key) is not None and not _is_int(proc[key]):
                errors[f"{where}.{key}"] = "Expected an integer or null."
        if proc.get("foreign") is not None and not isinstance(proc["foreign"], bool):
            errors[f"{where}.foreign"] = "Expected a boolean or null."
