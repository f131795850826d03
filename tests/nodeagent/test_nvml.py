"""The NVML source at its narrowest boundary: a fake `pynvml` module injected."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from nodeagent.nvml import NvmlSource, throttle_names

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MIB = 1024 * 1024


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"nvml error {value}")
        self.value = value


NOT_SUPPORTED, GPU_IS_LOST, DRIVER_NOT_LOADED = 3, 15, 9


class FakeNvml:
    """Only what NvmlSource calls. `broken` maps (call name, index) -> error code."""

    NVMLError = NVMLError

    def __init__(self, gpus: int = 2, broken: dict | None = None, init_fails: int = 0):
        self.gpus = gpus
        self.broken = broken or {}
        self.init_fails = init_fails
        self.inits = 0

    def _check(self, name: str, handle: int | None = None) -> None:
        code = self.broken.get((name, handle))
        if code is not None:
            raise NVMLError(code)

    def nvmlInit(self):
        self.inits += 1
        if self.inits <= self.init_fails:
            raise NVMLError(DRIVER_NOT_LOADED)

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, i):
        self._check("handle", i)
        return i

    def nvmlDeviceGetUUID(self, h):
        self._check("uuid", h)
        return f"GPU-{h:08d}-1111-2222-3333-444444444444"

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, h):
        self._check("memory", h)
        return SimpleNamespace(total=80 * 1024 * MIB, used=1024 * MIB, free=79 * 1024 * MIB)

    def nvmlDeviceGetUtilizationRates(self, h):
        self._check("utilization", h)
        return SimpleNamespace(gpu=87, memory=41)

    def nvmlDeviceGetTemperature(self, h, sensor):
        self._check("temperature", h)
        return 55

    def nvmlDeviceGetPowerUsage(self, h):
        self._check("power", h)
        return 312_500

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        self._check("power_limit", h)
        return 700_000

    def nvmlDeviceGetTotalEccErrors(self, h, kind, counter):
        self._check("ecc", h)
        return 2

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        self._check("clocks", h)
        return 0x4

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        self._check("processes", h)
        return [
            SimpleNamespace(pid=4242, usedGpuMemory=512 * MIB),
            SimpleNamespace(pid=4343, usedGpuMemory=None),
        ]


def test_normal_reading_has_every_field():
    reading = NvmlSource(nvml=FakeNvml(gpus=2)).read(NOW)
    assert reading.healthy and len(reading.gpus) == 2
    gpu = reading.gpus[1]
    assert gpu.index == 1 and gpu.uuid == "GPU-00000001-1111-2222-3333-444444444444"
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert (gpu.memory_total_mib, gpu.memory_used_mib) == (81920.0, 1024.0)
    assert (gpu.utilization_gpu_pct, gpu.utilization_memory_pct) == (87.0, 41.0)
    assert (gpu.temperature_c, gpu.power_draw_w, gpu.power_limit_w) == (55.0, 312.5, 700.0)
    assert gpu.ecc_uncorrected == 2 and gpu.throttle_reasons == ["sw_power_cap"]
    assert [(p.pid, p.used_memory_mib) for p in gpu.processes] == [(4242, 512.0), (4343, None)]
    assert gpu.healthy and gpu.error is None


def test_unsupported_fields_are_null_and_the_rest_still_read():
    broken = {(name, 0): NOT_SUPPORTED for name in ("ecc", "power", "clocks", "processes")}
    gpu = NvmlSource(nvml=FakeNvml(broken=broken)).read(NOW).gpus[0]
    assert gpu.ecc_uncorrected is None and gpu.power_draw_w is None
    assert gpu.throttle_reasons is None and gpu.processes is None
    assert gpu.utilization_gpu_pct == 87.0 and gpu.healthy


def test_lost_gpu_is_unhealthy_and_others_unaffected():
    source = NvmlSource(nvml=FakeNvml(broken={("utilization", 1): GPU_IS_LOST}))
    reading = source.read(NOW)
    assert reading.healthy
    lost, fine = reading.gpus[1], reading.gpus[0]
    assert not lost.healthy and "15" in lost.error
    assert lost.utilization_gpu_pct is None and fine.healthy and fine.utilization_gpu_pct == 87.0


def test_gpu_without_handle_is_unhealthy():
    reading = NvmlSource(nvml=FakeNvml(broken={("handle", 0): GPU_IS_LOST})).read(NOW)
    assert [g.healthy for g in reading.gpus] == [False, True]
    assert reading.gpus[0].uuid is None


def test_driver_failure_is_unhealthy_and_the_next_read_recovers():
    fake = FakeNvml(init_fails=1)
    source = NvmlSource(nvml=fake)
    first = source.read(NOW)
    assert not first.healthy and first.gpus == [] and "driver" in first.error
    second = source.read(NOW)
    assert second.healthy and len(second.gpus) == 2 and fake.inits == 2


def test_throttle_names_keep_unknown_bits():
    assert throttle_names(0) == []
    assert throttle_names(0x1 | 0x10000) == ["gpu_idle", "0x10000"]


def test_real_pynvml_without_a_driver_is_unhealthy_not_a_crash():
    # This machine has nvidia-ml-py but no NVIDIA driver: the real library raises on init.
    reading = NvmlSource().read(NOW)
    assert reading.healthy is False and reading.error.startswith("driver:")
