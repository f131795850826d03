"""GPU telemetry: the node agent's sources (NVML, simulated) and the portal's ingestion."""
