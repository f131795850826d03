"""GPU jobs and bookings: the queue, its policy, the cluster and the telemetry.

- core/       pure policy (no Django, no I/O, no clock): snapshot + now -> decisions
- cluster/    the ClusterBackend protocol and its Kubernetes implementation
- telemetry/  the NVML node agent and its ingestion
"""
