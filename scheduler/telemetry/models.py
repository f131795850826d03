"""Telemetry models (samples, rollups, node tokens) arrive with the telemetry issue."""
