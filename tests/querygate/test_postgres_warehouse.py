"""A real PostgreSQL warehouse through the services and the API: catalog snapshot with
partitioning read from the engine, an admin-declared "requires a partition filter", and
queries that run read-only."""

from __future__ import annotations

import pytest
from django.utils import timezone

from querygate.models import CatalogTable, Warehouse
from querygate.services.catalog import catalog_for, declare_partitioning, refresh_catalog
from tests.conftest import assert_error

URL = "/api/v1/queries/"


@pytest.fixture
def pg(db, pg_warehouse) -> Warehouse:
    warehouse = Warehouse.objects.create(
        name="pg", engine="postgres", connection=pg_warehouse["dsn"], open_to_all=True
    )
    refresh_catalog(warehouse.pk, now=timezone.now())
    warehouse.refresh_from_db()
    return warehouse


def submit(persona, sql: str):
    return persona.client().post(URL, {"warehouse": "pg", "sql": sql}, format="json")


def test_the_snapshot_holds_engine_partitioning_and_keys(pg) -> None:
    events = CatalogTable.objects.get(warehouse=pg, name="events")
    assert events.schema == "public" and events.partition_columns == ["day"]
    assert events.rows == 20000
    catalog = catalog_for(pg)
    assert catalog.default_schema == "public"
    assert catalog.table("customers").primary_key == ("id",)
    assert catalog.table("events").partition_columns == ("day",)


def test_a_query_runs_read_only_and_returns_rows(pg, bob) -> None:
    response = submit(
        bob, "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY country"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "succeeded", body
    assert body["result"]["rows"] == [["de", 667], ["jp", 666], ["us", 667]]
    assert body["analysis"]["explain"]["cost"] > 0


def test_a_declared_partition_filter_is_required(pg, bob) -> None:
    declare_partitioning(pg, "events", ["day"], required=True)
    error = assert_error(submit(bob, "SELECT count(*) FROM events"), 400, "query_rejected")
    finding = error["details"]["findings"][0]
    assert finding["rule"] == "missing-partition-filter" and "WHERE day >=" in finding["suggestion"]
    error = assert_error(
        submit(bob, "SELECT count(*) FROM events WHERE date_trunc('month', day) = '2026-01-01'"),
        400,
        "query_rejected",
    )
    assert error["details"]["findings"][0]["rule"] == "unprunable-partition-filter"
    ok = submit(
        bob,
        "SELECT count(*) AS n FROM events WHERE day >= DATE '2026-01-01' "
        "AND day < DATE '2026-01-08'",
    )
    assert ok.status_code == 201, ok.content
    assert ok.json()["result"]["rows"] == [[sum(1 for g in range(1, 20001) if g % 59 < 7)]]


def test_declarations_survive_a_refresh(pg) -> None:
    declare_partitioning(pg, "customers", ["country"], required=True)
    refresh_catalog(pg.pk, now=timezone.now())
    row = CatalogTable.objects.get(warehouse=pg, name="customers")
    assert row.declared_partition_columns == ["country"] and row.requires_partition_filter
