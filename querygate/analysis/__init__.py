"""Pure query analysis: SQL + dialect + catalog snapshot -> report. No Django, no I/O.

>>> from querygate.analysis import analyze, Catalog, TableStats, ColumnStats
>>> cat = Catalog((TableStats("t", (ColumnStats("a", "INT"),), rows=10),))
>>> [f.rule for f in analyze("SELECT b FROM t", dialect="duckdb", catalog=cat).findings]
['unknown-column']
"""

from querygate.analysis.analyze import analyze
from querygate.analysis.catalog import Catalog, ColumnStats, TableStats
from querygate.analysis.classify import StatementKind, classify
from querygate.analysis.estimate import Estimate, estimate_bytes_scanned, estimate_rows
from querygate.analysis.findings import Finding, Severity
from querygate.analysis.policy import EngineAllowList, Policy
from querygate.analysis.report import AnalysisFailure, Decision, Report

__all__ = [
    "AnalysisFailure",
    "Catalog",
    "ColumnStats",
    "Decision",
    "EngineAllowList",
    "Estimate",
    "Finding",
    "Policy",
    "Report",
    "Severity",
    "StatementKind",
    "TableStats",
    "analyze",
    "classify",
    "estimate_bytes_scanned",
    "estimate_rows",
]
