"""Query gate API: warehouses and their catalogs, submit/analyze/list/cancel queries, and
result pages (JSON, or CSV/Parquet downloads of the result file)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from portal.errors import Conflict, InvalidRequest
from portal.streaming import StreamingResponse, stream_file
from querygate import tasks
from querygate.api import serializers as s
from querygate.messages import localize_analysis
from querygate.models import ACTIVE_STATUSES, Query, QueryStatus, Warehouse
from querygate.services import results
from querygate.services.access import (
    access_query,
    access_warehouse_named,
    can_manage_warehouses,
    visible_queries,
    visible_warehouses,
)
from querygate.services.admission import submit_query
from querygate.services.analyses import audited_analysis
from querygate.services.enforcement import cancel_query

PARQUET = "application/vnd.apache.parquet"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: Rows per record batch of an Arrow download.
ARROW_BATCH_ROWS = 65_536
#: Rows read from the result file per chunk of a CSV download.
CSV_CHUNK_ROWS = 5000


class WarehouseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Warehouses the user may query. The connection is shown to admins only."""

    lookup_field = "name"
    queryset = Warehouse.objects.none()

    def get_queryset(self) -> Any:
        return visible_warehouses(self.request.user)

    def get_serializer_class(self) -> Any:
        user = getattr(self.request, "user", None)
        manager = user is not None and can_manage_warehouses(user)
        return s.WarehouseAdminSerializer if manager else s.WarehouseSerializer

    @extend_schema(responses=s.CatalogTableSerializer(many=True), summary="Catalog snapshot")
    @action(detail=True, methods=["get"], pagination_class=None)
    def catalog(self, request: Request, name: str | None = None) -> Response:
        warehouse = self.get_object()
        tables = warehouse.tables.filter(present=True).order_by("schema", "name")
        return Response(s.CatalogTableSerializer(tables, many=True).data)

    @extend_schema(request=None, responses={202: None}, summary="Refresh the catalog (admin)")
    @action(detail=True, methods=["post"], permission_classes=[IsAdminUser])
    def refresh(self, request: Request, name: str | None = None) -> Response:
        warehouse = self.get_object()
        tasks.refresh_catalog.delay(warehouse.pk)
        return Response(status=status.HTTP_202_ACCEPTED)


_FILTERS = [
    OpenApiParameter("status", str, description="Comma-separated statuses."),
    OpenApiParameter("warehouse", str),
    OpenApiParameter("decision", str, enum=["allow", "warn", "reject"]),
    OpenApiParameter("user", str, description="Username."),
    OpenApiParameter("team", str, description="Team slug."),
    OpenApiParameter("mine", bool),
    OpenApiParameter("since", str, description="ISO time: created at or after."),
    OpenApiParameter("until", str, description="ISO time: created before."),
    OpenApiParameter("fingerprint", str),
]


class QueryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Queries through the gate and their audit log."""

    queryset = Query.objects.none()

    def get_serializer_class(self) -> Any:
        return s.QueryDetailSerializer if self.action == "retrieve" else s.QuerySerializer

    def get_queryset(self) -> Any:
        rows = visible_queries(self.request.user)
        if self.action != "list":
            return rows
        params = self.request.query_params
        if params.get("status"):
            rows = rows.filter(status__in=params["status"].split(","))
        for param, field in (
            ("warehouse", "warehouse__name"),
            ("decision", "decision"),
            ("user", "user__username"),
            ("team", "team__slug"),
            ("fingerprint", "fingerprint"),
        ):
            if params.get(param):
                rows = rows.filter(**{field: params[param]})
        if params.get("mine") in ("1", "true"):
            me: Any = self.request.user  # signed in: IsAuthenticated ran first
            rows = rows.filter(user=me)
        for param, lookup in (("since", "created_at__gte"), ("until", "created_at__lt")):
            if params.get(param):
                when = parse_datetime(params[param])
                if when is None:
                    raise InvalidRequest(_("%(param)s: not an ISO date-time.") % {"param": param})
                rows = rows.filter(**{lookup: when})
        return rows.defer("result", "analysis").order_by("-created_at", "-pk")

    @extend_schema(parameters=_FILTERS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=s.QueryRequestSerializer,
        responses={201: s.QueryDetailSerializer, 202: s.QueryDetailSerializer},
        summary="Submit a query: analyzed, decided, audited, then run",
    )
    def create(self, request: Request) -> Response:
        form = s.QueryRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        query = submit_query(
            request.user,
            data["warehouse"],
            data["sql"],
            now=timezone.now(),
            acknowledge_warnings=data["acknowledge_warnings"],
            override_justification=data["override_justification"],
            team=data.get("team"),
            export=data["export"],
        )
        query = access_query(request.user, query.pk)
        code = status.HTTP_202_ACCEPTED if query.status in ACTIVE_STATUSES else 201
        return Response(s.QueryDetailSerializer(query).data, status=code)

    @extend_schema(
        request=s.AnalyzeRequestSerializer,
        responses=s.AnalysisSerializer,
        summary="Lint and estimate a query without running it",
    )
    @action(detail=False, methods=["post"])
    def analyze(self, request: Request) -> Response:
        form = s.AnalyzeRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        access = access_warehouse_named(request.user, data["warehouse"], data.get("team"))
        report = audited_analysis(
            request.user, access, data["sql"], explain=data["explain"], now=timezone.now()
        )
        return Response(localize_analysis(report))

    @extend_schema(
        request=s.CancelRequestSerializer,
        responses=s.QueryDetailSerializer,
        summary="Cancel your query (admins: kill any)",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        query = access_query(request.user, pk, "cancel")
        form = s.CancelRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        cancel_query(
            request.user, query.pk, now=timezone.now(), reason=form.validated_data["reason"]
        )
        return Response(s.QueryDetailSerializer(access_query(request.user, query.pk)).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="At most 5,000."),
            OpenApiParameter(
                "download",
                str,
                enum=["csv", "parquet", "arrow"],
                description=(
                    "csv, parquet or arrow (an Arrow IPC stream): the whole download as a "
                    "file (the full export when there is one, else the stored result; "
                    "`download` in the JSON says which and how many rows)."
                ),
            ),
        ],
        responses={
            200: s.ResultPageSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, PARQUET): OpenApiTypes.BINARY,
            (200, ARROW_STREAM): OpenApiTypes.BINARY,
        },
        summary="The stored result, paged (or all of it as CSV or Parquet)",
        description="410 `results_expired` once the result file is deleted after the retention.",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def results(self, request: Request, pk: str | None = None) -> Any:
        query = access_query(request.user, pk, "results")
        if query.result is None and query.result_expired_at is None:
            if query.status == QueryStatus.SUCCEEDED or query.status not in ACTIVE_STATUSES:
                raise Conflict(
                    _("The query is %(status)s: it has no result.") % {"status": query.status},
                    code="no_result",
                )
            raise Conflict(_("The query has not finished yet."), code="not_finished")
        download = request.query_params.get("download")
        if download in ("parquet", "arrow"):
            if not query.result_file and query.result_expired_at is None:
                raise Conflict(_("This result has no Parquet file."), code="no_result_file")
            path = results.download_path(query)
            if download == "parquet":
                return stream_file(  # Content-Length: the file's size
                    path.open("rb"),
                    as_attachment=True,
                    filename=f"query-{query.pk}.parquet",
                    content_type=PARQUET,
                )
            response = StreamingResponse(_arrow_chunks(path), content_type=ARROW_STREAM)
            response["Content-Disposition"] = f'attachment; filename="query-{query.pk}.arrows"'
            return _with_download_headers(response, query)
        if download == "csv":
            source: Path | None = None
            if query.result_file or query.result_expired_at is not None:
                source = results.download_path(query)  # 410 now, not halfway through the stream
            response = StreamingResponse(
                _csv_chunks(query, source), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = f'attachment; filename="query-{query.pk}.csv"'
            return _with_download_headers(response, query)
        if download:
            raise InvalidRequest(_("download must be csv, parquet or arrow."))
        page, size = _page(request, "page", 1), min(_page(request, "page_size", 1000), 5000)
        columns, rows = results.result_page(query, page=page, size=size)
        return Response(
            {
                "columns": columns,
                "rows": rows,
                "row_count": query.row_count or 0,
                "truncated": query.truncated,
                "page": page,
                "page_size": size,
                "download": s.download_of(query),
            }
        )


def _with_download_headers(response: Any, query: Query) -> Any:
    """A streamed download says how many rows it holds and whether that is all of them
    (its length is not known before it is written)."""
    info = results.download_info(query)
    response["X-Karimasu-Rows"] = str(info["rows"])
    response["X-Karimasu-Complete"] = "true" if info["complete"] else "false"
    return response


def _arrow_chunks(path: Path) -> Iterator[bytes]:
    """The file as an Arrow IPC stream, one record batch (of the file's row groups) at a
    time: never the whole result in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()

    def flush() -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        return data

    with pq.ParquetFile(path) as source:
        with pa.ipc.new_stream(sink, source.schema_arrow) as writer:
            yield flush()
            for batch in source.iter_batches(batch_size=ARROW_BATCH_ROWS):
                writer.write_batch(batch)
                yield flush()
        yield flush()


def _csv_chunks(query: Query, path: Path | None) -> Iterator[str]:
    """The whole download as CSV, streamed: the header, then the file (the export, else the
    stored result) read ``CSV_CHUNK_ROWS`` rows at a time in one scan (never the whole
    result in memory at once); rows stored as JSON before result files come from the row
    itself."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow((query.result or {}).get("columns", []))
    yield flush()
    if path is None:
        writer.writerows((query.result or {}).get("rows", []))
        yield flush()
        return
    for rows in results.iter_rows(path, CSV_CHUNK_ROWS):
        writer.writerows(rows)
        yield flush()


def _page(request: Request, name: str, default: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        raise InvalidRequest(_("%(name)s must be an integer.") % {"name": name}) from None
    if value < 1:
        raise InvalidRequest(_("%(name)s must be at least 1.") % {"name": name})
    return value
