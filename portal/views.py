"""Server-rendered pages of the portal shell (the home dashboard)."""

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.accounts.models import Membership


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("team")
        .prefetch_related(
            Prefetch("team__memberships", queryset=Membership.objects.select_related("user"))
        )
    )
    return render(request, "portal/home.html", {"memberships": memberships})
