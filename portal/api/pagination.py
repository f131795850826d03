"""Page-number pagination for every list endpoint: `?page=2&page_size=100`."""

from typing import Any

from django.core.paginator import Page
from django.core.paginator import Paginator as DjangoPaginator
from rest_framework.pagination import PageNumberPagination


class Paginator(DjangoPaginator):  # type: ignore[type-arg]  # Django's class is not generic at run time
    """Django's paginator, without the COUNT(*) query when page 1 is the only page.

    Django counts first, then reads the page. For page 1 this reads one row more than a
    page: when they fit on the page, their number is the count (most lists here: the nodes,
    a user's teams, tokens and recent jobs). Otherwise it counts as before and the page is
    the rows already read. Same pages, counts and errors as Django's.
    """

    def page(self, number: Any) -> Page[Any]:
        if number not in (1, "1") or self.orphans or "count" in self.__dict__:
            return super().page(number)
        rows = list(self.object_list[: self.per_page + 1])
        if len(rows) <= self.per_page:
            self.count = len(rows)  # Paginator.count is a cached_property
        number = self.validate_number(number)
        django_paginator: Any = self  # _get_page is Django's (private, unstubbed) factory
        page: Page[Any] = django_paginator._get_page(rows[: self.per_page], number, self)
        return page


class PagePagination(PageNumberPagination):
    django_paginator_class = Paginator
    page_size_query_param = "page_size"
    max_page_size = 500
