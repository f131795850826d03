"""Benchmarks: `make bench` (python -m benchmarks). Results go in benchmarks/RESULTS.md.

Each benchmark reports a ratio against a baseline measured in the same run, because these
machines are noisy and absolute figures drift between runs.
"""
