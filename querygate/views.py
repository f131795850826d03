"""Server-rendered pages of the query gate: the SQL editor (``/sql/``).

The page is a thin client of the REST API (``/api/v1/queries/...``): the view only lists the
warehouses the user may query, their recent queries and the translated labels; analysis,
runs, polling, cancel and result pages go through the API with the session's CSRF token.
The code editor (CodeMirror) and the charts (Chart.js) are the vendored bundles under
``frontend/static/vendor/`` (``make frontend``). The recent queries are a live region
(``?live=1``, ``portal/live.py``): a query run in another tab or by the API shows up.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _

from portal.live import render_live, wants_live
from querygate.api import serializers as s
from querygate.models import QueryStatus
from querygate.services.access import (
    can_override_somewhere,
    visible_queries,
    visible_warehouses,
)

#: Rows per result page in the editor.
PAGE_SIZE = 100
#: Rows the chart reads from the result (its first page of this size).
CHART_ROWS = 1000
#: How many of the user's queries the recent list shows.
RECENT = 15
RECENT_REGIONS = {"recent": "querygate/_recent.html"}


@login_required
def sql_editor(request: HttpRequest) -> HttpResponse:
    """The editor; ``?warehouse=NAME`` preselects a warehouse, ``?query=ID`` reopens one of
    the user's (visible) queries with its SQL and result."""
    user = request.user
    recent = (
        visible_queries(user)
        .filter(user=user)
        .select_related("warehouse")
        .defer("result", "analysis")
        .order_by("-created_at", "-pk")[:RECENT]
    )
    if wants_live(request):
        return render_live(request, "querygate/editor.html", {"recent": recent}, RECENT_REGIONS)
    warehouses = list(visible_warehouses(user).order_by("name"))
    names = [warehouse.name for warehouse in warehouses]
    selected = request.GET.get("warehouse", "")
    initial_sql, reopened = "", None
    wanted = request.GET.get("query", "")
    if wanted.isdigit():
        query = visible_queries(user).filter(pk=int(wanted)).first()
        if query is not None:
            initial_sql, selected = query.sql, query.warehouse.name
            reopened = s.QueryDetailSerializer(query).data
    if selected not in names:
        selected = names[0] if names else ""
    can_override = can_override_somewhere(user)
    config = {
        "urls": {
            "queries": reverse("query-list"),
            "analyze": reverse("query-analyze"),
            "warehouses": reverse("warehouse-list"),
        },
        "scripts": {"charts": static("vendor/chartjs/charts.min.js")},
        "warehouses": {
            warehouse.name: {"engine": warehouse.engine, "row_cap": warehouse.row_cap}
            for warehouse in warehouses
        },
        "username": user.get_username(),
        "is_admin": user.is_staff,
        "can_override": can_override,
        "page_size": PAGE_SIZE,
        "chart_rows": CHART_ROWS,
        "query": reopened,
        "labels": _labels(),
    }
    return render_live(
        request,
        "querygate/editor.html",
        {
            "warehouses": warehouses,
            "selected": selected,
            "initial_sql": initial_sql,
            "recent": recent,
            "config": config,
        },
        RECENT_REGIONS,
    )


def _labels() -> dict[str, Any]:
    """Every text the page's script shows, in the request's language."""
    return {
        "decision": {
            "allow": _("Allowed: this query can run."),
            "warn": _("Runs with warnings: read them first."),
            "reject": _("Rejected: the gate will not run this query."),
        },
        "severity": {"info": _("info"), "warn": _("warning"), "error": _("error")},
        "cost": {
            "small": _("small"),
            "medium": _("medium"),
            "large": _("large"),
            "excessive": _("excessive"),
        },
        "status": {value: str(label) for value, label in QueryStatus.choices},
        "rows": _("Estimated result rows"),
        "rows_source": _("the gate's estimate, from the catalog's statistics"),
        "rows_why": _(
            "One estimate: the gate's, from the catalog's statistics, which is the one it "
            "decides on. The engine's plan is not shown as a second figure: it counts the "
            "rows of its top-most estimated step, which for an aggregate is the input, not "
            "the result."
        ),
        "needs_ack": _("This query has warnings: read them, then press Run anyway to run it."),
        "justification_required": _(
            "Write why this query must run: the justification is required and recorded."
        ),
        "new_tab": _("New tab"),
        "close_tab": _("Close tab"),
        "tab": _("Query %(number)s"),
        "chart_none": _("No numeric column to plot."),
        "chart_rows": _("The chart shows the first %(rows)s rows."),
        "downloads": _(
            "Downloads hold every row of the result: %(rows)s rows (the warehouse's row "
            "cap of %(cap)s bounds the pages above, not the downloads)."
        ),
        "bytes_scanned": _("Estimated bytes scanned"),
        "intermediate_rows": _("Rows the joins build (upper bound)"),
        "cost_class": _("Cost"),
        "runtime": _("Predicted runtime"),
        "seconds": _("%(seconds)s s"),
        "position": _("line %(line)s, column %(column)s"),
        "suggestion": _("Suggestion:"),
        "no_findings": _("No findings: nothing the gate can see is wrong."),
        "empty": _("Type a query to see what the gate thinks of it."),
        "analyzing": _("Analyzing…"),
        "failed": _("The request failed; try again."),
        "submitting": _("Submitting…"),
        "running_for": _("Running for %(seconds)s s…"),
        "finished": _("%(rows)s rows in %(seconds)s s."),
        "truncated": _("Only the first %(rows)s rows were kept (the row cap)."),
        "cached": _("Served from the result of query %(id)s."),
        "killed": _("stopped by %(user)s (%(reason)s)"),
        "page": _("Rows %(first)s–%(last)s of %(total)s"),
        "tables": _("%(count)s tables"),
        "table_rows": _("%(rows)s rows"),
        "insert": _("Insert into the query"),
    }
