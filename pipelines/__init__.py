"""Pipelines: query -> container -> GPU steps as one DAG, and the datasets they make."""
