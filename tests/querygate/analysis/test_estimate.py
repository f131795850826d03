"""Cost estimate: column pruning, partition pruning, row heuristics (Kueue-style table).

Every ``want_*`` number is worked out from the SF1 catalog in ``catalogs.py`` and the
heuristics documented in ``estimate.py`` / ``predicates.py``:

* lineitem has 6,001,215 rows; l_quantity, l_tax are 8 bytes wide; the 16 columns add up to
  122 bytes; l_returnflag (1 byte) is the narrowest.
* events has 500,000,000 rows and is partitioned by ts (8 bytes): ts alone is 4e9 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from querygate.analysis import Policy, analyze
from querygate.analysis.policy import GIB

from .catalogs import lab_catalog

CATALOG = lab_catalog()
LINEITEM_ROWS = 6_001_215
TS_BYTES = 8 * 500_000_000


@dataclass
class Case:
    id: str
    sql: str
    want_bytes: int | None = None
    want_rows: int | None = None
    want_intermediate: int | None = None


CASES = [
    Case(
        "column pruning: two 8-byte columns of lineitem",
        "SELECT l_quantity, l_tax FROM lineitem LIMIT 10",
        want_bytes=16 * LINEITEM_ROWS,
    ),
    Case(
        "select star reads all 122 bytes per lineitem row",
        "SELECT * FROM lineitem LIMIT 10",
        want_bytes=122 * LINEITEM_ROWS,
        want_rows=10,
    ),
    Case(
        "TPC-H Q1 shape reads seven lineitem columns (38 bytes)",
        "SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice), "
        "sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) FROM lineitem "
        "WHERE l_shipdate <= DATE '1998-09-02' GROUP BY l_returnflag, l_linestatus",
        want_bytes=38 * LINEITEM_ROWS,
        want_rows=6,  # 3 return flags x 2 line statuses
    ),
    Case(
        "count(*) is charged the narrowest column",
        "SELECT count(*) FROM lineitem",
        want_bytes=1 * LINEITEM_ROWS,
        want_rows=1,
    ),
    Case(
        "EXISTS (SELECT *) reads only the correlated column",
        "SELECT o_orderkey FROM orders WHERE EXISTS "
        "(SELECT * FROM lineitem WHERE l_orderkey = o_orderkey) LIMIT 5",
        want_bytes=8 * 1_500_000 + 8 * LINEITEM_ROWS,
    ),
    Case(
        "two-sided range on the partition column keeps 1/3 x 1/3",
        "SELECT count(*) FROM events "
        "WHERE ts >= TIMESTAMP '2024-03-01' AND ts < TIMESTAMP '2024-03-02'",
        want_bytes=TS_BYTES // 9,
    ),
    Case(
        "BETWEEN on the partition column keeps a quarter",
        "SELECT count(*) FROM events "
        "WHERE ts BETWEEN TIMESTAMP '2024-03-01' AND TIMESTAMP '2024-03-02'",
        want_bytes=TS_BYTES // 4,
    ),
    Case(
        "function-wrapped partition column prunes nothing",
        "SELECT count(*) FROM events WHERE CAST(ts AS DATE) = DATE '2024-03-01'",
        want_bytes=TS_BYTES,
    ),
    Case(
        "a filter on a non-partition column does not reduce bytes",
        "SELECT count(*) FROM page_views WHERE user_id = 5",
        want_bytes=8 * 50_000_000,
        want_rows=1,
    ),
    Case(
        "equality on the primary key returns one row",
        "SELECT o_comment FROM orders WHERE o_orderkey = 5",
        want_rows=1,
    ),
    Case(
        "equality on a non-key column divides by its NDV",
        "SELECT l_comment FROM lineitem WHERE l_orderkey = 5",
        want_rows=4,  # 6,001,215 / 1,500,000
    ),
    Case(
        "foreign-key join keeps the many side's rows",
        "SELECT o.o_orderkey, c.c_name FROM orders AS o "
        "JOIN customer AS c ON o.o_custkey = c.c_custkey",
        want_rows=1_500_000,
        want_intermediate=1_500_000,
    ),
    Case(
        "many-to-many join fans out to rows x rows / NDV",
        "SELECT t.tag FROM tags AS t JOIN labels AS l ON t.item_id = l.item_id",
        want_rows=6_000_000_000,  # 2M x 3M / 1,000
        want_intermediate=6_000_000_000,
    ),
    Case(
        "cross join multiplies",
        "SELECT n.n_name FROM nation AS n, region AS r",
        want_rows=125,
    ),
    Case(
        "UNION ALL adds both sides",
        "SELECT n_name FROM nation UNION ALL SELECT r_name FROM region",
        want_rows=30,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_estimate(case: Case) -> None:
    report = analyze(case.sql, dialect="duckdb", catalog=CATALOG)
    assert report.estimate is not None, report.findings
    if case.want_bytes is not None:
        assert report.estimate.bytes_scanned == case.want_bytes
    if case.want_rows is not None:
        assert report.estimate.rows == case.want_rows
    if case.want_intermediate is not None:
        assert report.estimate.intermediate_rows == case.want_intermediate


@pytest.mark.parametrize(
    ("policy", "sql", "want_decision", "want_reason"),
    [
        pytest.param(
            Policy(warn_bytes_scanned=100 * 1024**2, max_bytes_scanned=GIB // 2),
            "SELECT * FROM lineitem LIMIT 10",
            "reject",
            "scans about 0.7 GiB, over the limit of 0.5 GiB",
            id="over the byte limit: reject",
        ),
        pytest.param(
            Policy(warn_bytes_scanned=100 * 1024**2, max_bytes_scanned=GIB),
            "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag "
            "HAVING sum(l_quantity) > 0 AND sum(l_tax) > 0 AND max(l_discount) > 0",
            "warn",
            "scans about 0.1 GiB",  # 25 bytes x 6,001,215 rows = 0.14 GiB
            id="over the warning threshold only: warn",
        ),
        pytest.param(
            Policy(max_intermediate_rows=1_000_000_000),
            "SELECT t.tag FROM tags AS t JOIN labels AS l ON t.item_id = l.item_id LIMIT 5",
            "reject",
            "intermediate rows",
            id="join fan-out over the intermediate-row limit: reject",
        ),
    ],
)
def test_decision_from_thresholds(
    policy: Policy, sql: str, want_decision: str, want_reason: str
) -> None:
    report = analyze(sql, dialect="duckdb", catalog=CATALOG, policy=policy)
    assert report.decision.value == want_decision
    assert any(want_reason in reason for reason in report.reasons), report.reasons


def test_bytes_by_table_splits_a_join() -> None:
    report = analyze(
        "SELECT o.o_totalprice, c.c_name FROM orders AS o "
        "JOIN customer AS c ON o.o_custkey = c.c_custkey LIMIT 5",
        dialect="duckdb",
        catalog=CATALOG,
    )
    assert report.estimate is not None
    assert report.estimate.bytes_by_table == {
        "main.orders": (8 + 8) * 1_500_000,
        "main.customer": (8 + 18) * 150_000,
    }
