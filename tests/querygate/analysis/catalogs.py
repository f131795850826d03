"""Catalog snapshots for the analysis tests.

``tpch_catalog`` holds TPC-H scale factor 1 statistics written as data, from the TPC-H
specification (row counts per table; key and value domains give the distinct counts; average
widths are the spec's string lengths, fixed widths for numbers and dates). ``lab_catalog``
adds the tables the golden files need beyond TPC-H: a partitioned event table that requires a
partition filter, a partitioned one that does not, a wide table and two keyless tables.
"""

from __future__ import annotations

from querygate.analysis import Catalog, ColumnStats, TableStats

# name, type, average width, distinct values (None: as many as rows / unknown)
_Spec = tuple[str, str, int, int | None]

_TPCH: dict[str, tuple[int, tuple[str, ...], tuple[_Spec, ...]]] = {
    "region": (
        5,
        ("r_regionkey",),
        (
            ("r_regionkey", "INTEGER", 4, 5),
            ("r_name", "VARCHAR", 6, 5),
            ("r_comment", "VARCHAR", 66, 5),
        ),
    ),
    "nation": (
        25,
        ("n_nationkey",),
        (
            ("n_nationkey", "INTEGER", 4, 25),
            ("n_name", "VARCHAR", 8, 25),
            ("n_regionkey", "INTEGER", 4, 5),
            ("n_comment", "VARCHAR", 74, 25),
        ),
    ),
    "supplier": (
        10_000,
        ("s_suppkey",),
        (
            ("s_suppkey", "BIGINT", 8, 10_000),
            ("s_name", "VARCHAR", 18, 10_000),
            ("s_address", "VARCHAR", 25, 10_000),
            ("s_nationkey", "INTEGER", 4, 25),
            ("s_phone", "VARCHAR", 15, 10_000),
            ("s_acctbal", "DECIMAL(15,2)", 8, 9_955),
            ("s_comment", "VARCHAR", 63, 10_000),
        ),
    ),
    "customer": (
        150_000,
        ("c_custkey",),
        (
            ("c_custkey", "BIGINT", 8, 150_000),
            ("c_name", "VARCHAR", 18, 150_000),
            ("c_address", "VARCHAR", 25, 150_000),
            ("c_nationkey", "INTEGER", 4, 25),
            ("c_phone", "VARCHAR", 15, 150_000),
            ("c_acctbal", "DECIMAL(15,2)", 8, 140_187),
            ("c_mktsegment", "VARCHAR", 9, 5),
            ("c_comment", "VARCHAR", 73, 150_000),
        ),
    ),
    "part": (
        200_000,
        ("p_partkey",),
        (
            ("p_partkey", "BIGINT", 8, 200_000),
            ("p_name", "VARCHAR", 33, 200_000),
            ("p_mfgr", "VARCHAR", 14, 5),
            ("p_brand", "VARCHAR", 8, 25),
            ("p_type", "VARCHAR", 21, 150),
            ("p_size", "INTEGER", 4, 50),
            ("p_container", "VARCHAR", 8, 40),
            ("p_retailprice", "DECIMAL(15,2)", 8, 20_899),
            ("p_comment", "VARCHAR", 14, 130_000),
        ),
    ),
    "partsupp": (
        800_000,
        ("ps_partkey", "ps_suppkey"),
        (
            ("ps_partkey", "BIGINT", 8, 200_000),
            ("ps_suppkey", "BIGINT", 8, 10_000),
            ("ps_availqty", "BIGINT", 8, 9_999),
            ("ps_supplycost", "DECIMAL(15,2)", 8, 99_865),
            ("ps_comment", "VARCHAR", 124, 800_000),
        ),
    ),
    "orders": (
        1_500_000,
        ("o_orderkey",),
        (
            ("o_orderkey", "BIGINT", 8, 1_500_000),
            ("o_custkey", "BIGINT", 8, 99_996),
            ("o_orderstatus", "VARCHAR", 1, 3),
            ("o_totalprice", "DECIMAL(15,2)", 8, 1_464_556),
            ("o_orderdate", "DATE", 4, 2_406),
            ("o_orderpriority", "VARCHAR", 8, 5),
            ("o_clerk", "VARCHAR", 15, 1_000),
            ("o_shippriority", "INTEGER", 4, 1),
            ("o_comment", "VARCHAR", 49, 1_500_000),
        ),
    ),
    "lineitem": (
        6_001_215,
        ("l_orderkey", "l_linenumber"),
        (
            ("l_orderkey", "BIGINT", 8, 1_500_000),
            ("l_partkey", "BIGINT", 8, 200_000),
            ("l_suppkey", "BIGINT", 8, 10_000),
            ("l_linenumber", "BIGINT", 8, 7),
            ("l_quantity", "DECIMAL(15,2)", 8, 50),
            ("l_extendedprice", "DECIMAL(15,2)", 8, 933_900),
            ("l_discount", "DECIMAL(15,2)", 8, 11),
            ("l_tax", "DECIMAL(15,2)", 8, 9),
            ("l_returnflag", "VARCHAR", 1, 3),
            ("l_linestatus", "VARCHAR", 1, 2),
            ("l_shipdate", "DATE", 4, 2_526),
            ("l_commitdate", "DATE", 4, 2_466),
            ("l_receiptdate", "DATE", 4, 2_554),
            ("l_shipinstruct", "VARCHAR", 12, 4),
            ("l_shipmode", "VARCHAR", 5, 7),
            ("l_comment", "VARCHAR", 27, 4_580_667),
        ),
    ),
}


def _table(
    name: str,
    rows: int,
    key: tuple[str, ...],
    specs: tuple[_Spec, ...],
    schema: str,
    partition_columns: tuple[str, ...] = (),
    requires_partition_filter: bool = False,
) -> TableStats:
    columns = tuple(ColumnStats(n, t, w, distinct=d) for n, t, w, d in specs)
    return TableStats(
        name,
        columns,
        schema=schema,
        rows=rows,
        bytes=sum(c.avg_width for c in columns) * rows,
        primary_key=key,
        partition_columns=partition_columns,
        requires_partition_filter=requires_partition_filter,
    )


def tpch_tables(schema: str = "main") -> tuple[TableStats, ...]:
    """The eight TPC-H tables at scale factor 1."""
    return tuple(_table(n, r, k, s, schema) for n, (r, k, s) in _TPCH.items())


def lab_tables(schema: str = "main") -> tuple[TableStats, ...]:
    """Extra tables for the golden files (see the module docstring)."""
    wide = tuple((f"attr_{i:02d}", "VARCHAR", 10, None) for i in range(1, 26))
    return (
        _table(
            "events",
            500_000_000,
            ("event_id",),
            (
                ("event_id", "BIGINT", 8, 500_000_000),
                ("event_date", "DATE", 4, 1_000),
                ("ts", "TIMESTAMP", 8, 400_000_000),
                ("user_id", "BIGINT", 8, 2_000_000),
                ("kind", "VARCHAR", 8, 20),
                ("payload", "VARCHAR", 200, None),
            ),
            schema,
            partition_columns=("ts",),
            requires_partition_filter=True,
        ),
        _table(
            "page_views",
            50_000_000,
            ("view_id",),
            (
                ("view_id", "BIGINT", 8, 50_000_000),
                ("view_date", "DATE", 4, 1_000),
                ("user_id", "BIGINT", 8, 2_000_000),
                ("url", "VARCHAR", 60, 1_000_000),
            ),
            schema,
            partition_columns=("view_date",),
        ),
        _table("wide_dim", 1_000, ("attr_01",), wide, schema),
        _table(
            "tags",
            2_000_000,
            (),
            (
                ("item_id", "BIGINT", 8, 1_000),
                ("tag", "VARCHAR", 12, 5_000),
            ),
            schema,
        ),
        _table(
            "labels",
            3_000_000,
            (),
            (
                ("item_id", "BIGINT", 8, 1_000),
                ("label", "VARCHAR", 12, 300),
            ),
            schema,
        ),
    )


def tpch_catalog(schema: str = "main") -> Catalog:
    """TPC-H at scale factor 1 only."""
    return Catalog(tpch_tables(schema), default_schema=schema)


def lab_catalog(schema: str = "main") -> Catalog:
    """TPC-H at scale factor 1 plus the lab tables: the golden files' catalog."""
    return Catalog(tpch_tables(schema) + lab_tables(schema), default_schema=schema)
