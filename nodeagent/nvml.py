"""The NVML source: reads every GPU of this node through nvidia-ml-py (`import pynvml`).

The `pynvml` module is injected (`NvmlSource(nvml=fake)`) so the tests exercise every call
at this, the narrowest, boundary. Contract of `read(now)`:

- a field NVML does not support (or cannot give now) is None, never an exception;
- a GPU that is lost (NVML_ERROR_GPU_IS_LOST) or fails to answer its handle/UUID is returned
  with `healthy=False` and `error`;
- a failing driver (init or device count fails) gives a `NodeReading(healthy=False)`; the
  next `read` tries to initialise again. `read` never raises an NVML error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

from nodeagent.readings import GpuReading, NodeReading, ProcessReading

log = logging.getLogger("karimasu.telemetry.nvml")

MIB = 1024 * 1024
ERROR_GPU_IS_LOST = 15  # pynvml.NVML_ERROR_GPU_IS_LOST

# Bits of nvmlDeviceGetCurrentClocksEventReasons (formerly "throttle reasons").
THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


class GpuLost(Exception):
    """Raised inside the source when a call says the GPU is gone."""


def throttle_names(mask: int) -> list[str]:
    """Names of the set bits, unknown bits as hex.

    >>> throttle_names(0x4 | 0x40)
    ['sw_power_cap', 'hw_thermal_slowdown']
    """
    names = [name for bit, name in THROTTLE_BITS.items() if mask & bit]
    rest = mask & ~sum(THROTTLE_BITS)
    if rest:
        names.append(hex(rest))
    return names


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource:
    name = "nvml"

    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        if nvml is None:
            import pynvml

            nvml = pynvml
        # nvidia-ml-py ships no types: the module (or a test double) is used as Any.
        self.nvml: Any = nvml
        self._initialised = False

    def close(self) -> None:
        if self._initialised:
            with contextlib.suppress(self.nvml.NVMLError):
                self.nvml.nvmlShutdown()
            self._initialised = False

    def read(self, now: datetime) -> NodeReading:
        nv = self.nvml
        try:
            if not self._initialised:
                nv.nvmlInit()
                self._initialised = True
            count = nv.nvmlDeviceGetCount()
        except nv.NVMLError as exc:
            log.warning("nvml driver failure: %s", exc)
            self._initialised = False
            return NodeReading(at=now, healthy=False, error=f"driver: {exc}")
        gpus = [self._read_gpu(index) for index in range(count)]
        return NodeReading(at=now, gpus=gpus)

    def _read_gpu(self, index: int) -> GpuReading:
        nv = self.nvml
        reading = GpuReading(index=index)
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            reading.uuid = _text(nv.nvmlDeviceGetUUID(handle))
        except nv.NVMLError as exc:
            return GpuReading(index=index, healthy=False, error=str(exc), processes=None)
        try:
            self._fill(reading, handle)
        except GpuLost as exc:
            reading.healthy, reading.error = False, str(exc)
        return reading

    def _field(self, call: Callable[[], Any]) -> Any:
        """One NVML call: its value, None when unsupported or failing, GpuLost when lost."""
        try:
            return call()
        except self.nvml.NVMLError as exc:
            if getattr(exc, "value", None) == ERROR_GPU_IS_LOST:
                raise GpuLost(str(exc)) from exc
            return None

    def _fill(self, reading: GpuReading, handle: Any) -> None:
        nv, field = self.nvml, self._field
        name = field(lambda: nv.nvmlDeviceGetName(handle))
        reading.name = None if name is None else _text(name)
        memory = field(lambda: nv.nvmlDeviceGetMemoryInfo(handle))
        if memory is not None:
            reading.memory_total_mib = round(memory.total / MIB, 1)
            reading.memory_used_mib = round(memory.used / MIB, 1)
        rates = field(lambda: nv.nvmlDeviceGetUtilizationRates(handle))
        if rates is not None:
            reading.utilization_gpu_pct = float(rates.gpu)
            reading.utilization_memory_pct = float(rates.memory)
        temp = field(lambda: nv.nvmlDeviceGetTemperature(handle, 0))  # NVML_TEMPERATURE_GPU
        reading.temperature_c = None if temp is None else float(temp)
        power = field(lambda: nv.nvmlDeviceGetPowerUsage(handle))
        reading.power_draw_w = None if power is None else power / 1000.0
        limit = field(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle))
        reading.power_limit_w = None if limit is None else limit / 1000.0
        # NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1, NVML_VOLATILE_ECC = 0
        ecc = field(lambda: nv.nvmlDeviceGetTotalEccErrors(handle, 1, 0))
        reading.ecc_uncorrected = None if ecc is None else int(ecc)
        reasons = field(lambda: self._clock_event_reasons(handle))
        reading.throttle_reasons = None if reasons is None else throttle_names(int(reasons))
        procs = field(lambda: nv.nvmlDeviceGetComputeRunningProcesses(handle))
        reading.processes = None if procs is None else [self._process(p) for p in procs]

    def _clock_event_reasons(self, handle: Any) -> int:
        nv = self.nvml
        call = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if call is None:  # older nvidia-ml-py
            call = nv.nvmlDeviceGetCurrentClocksThrottleReasons
        reasons: int = call(handle)
        return reasons

    @staticmethod
    def _process(proc: Any) -> ProcessReading:
        used = getattr(proc, "usedGpuMemory", None)
        return ProcessReading(
            pid=int(proc.pid), used_memory_mib=None if used is None else used / MIB
        )
