"""The paginator skips COUNT(*) when page 1 is the only page; pages are Django's."""

from __future__ import annotations

import pytest
from django.core.paginator import EmptyPage, PageNotAnInteger
from django.core.paginator import Paginator as DjangoPaginator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.accounts.models import Team
from portal.api.pagination import Paginator


def pages(paginator_class, items, per_page, number, **options):
    paginator = paginator_class(items, per_page, **options)
    try:
        page = paginator.page(number)
    except (EmptyPage, PageNotAnInteger) as exc:
        return type(exc), str(exc)
    return (
        list(page),
        paginator.count,
        paginator.num_pages,
        page.has_next(),
        page.has_previous(),
        page.start_index(),
    )


@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 25])
@pytest.mark.parametrize("number", [1, "1", 2, 3, "last", 0, -1, "x"])
@pytest.mark.parametrize("allow_empty", [True, False])
def test_pages_are_djangos(size, number, allow_empty):
    items = list(range(size))
    options = {"allow_empty_first_page": allow_empty}
    assert pages(Paginator, items, 10, number, **options) == pages(
        DjangoPaginator, items, 10, number, **options
    )


@pytest.mark.parametrize("teams, queries", [(0, 1), (3, 1), (10, 1), (11, 2), (14, 2)])
def test_a_single_page_is_read_without_count(db, teams, queries):
    Team.objects.bulk_create(Team(slug=f"t{i:02d}", name=f"T{i}") for i in range(teams))
    with CaptureQueriesContext(connection) as captured:
        page = Paginator(Team.objects.order_by("slug"), 10).page(1)
        assert page.paginator.count == teams
        assert [t.slug for t in page] == [f"t{i:02d}" for i in range(min(teams, 10))]
    assert len(captured) == queries
    assert ("COUNT(" in " ".join(q["sql"] for q in captured)) == (queries == 2)
