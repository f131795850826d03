"""Shared pieces of the admin screens: read-only and never-delete screens, and actions
that go through a confirmation page asking for a reason (kills)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _


class NoDeleteAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """History is never deleted from the admin (no delete button, no bulk delete): old
    rows go through the retention purge."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(NoDeleteAdmin):
    """What the cluster, the agents or the services write: shown, never added or edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=200,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Recorded with the kill and shown to the owner."),
    )


def confirm_with_reason(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    title: str,
    question: str,
    act: Callable[[str], None],
) -> TemplateResponse | None:
    """An admin action's confirmation step: the first post shows the selected objects and
    asks for a reason; the second (``confirm=yes`` with a reason) calls ``act(reason)``
    and returns None, so the admin goes back to the list with the action's messages."""
    form = ReasonForm(request.POST if request.POST.get("confirm") == "yes" else None)
    if form.is_bound and form.is_valid():
        act(form.cleaned_data["reason"].strip())
        return None
    opts = modeladmin.model._meta
    return TemplateResponse(
        request,
        "admin/confirm_with_reason.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "question": question,
            "objects": list(queryset[:200]),
            "count": queryset.count(),
            "form": form,
            "opts": opts,
            "action": request.POST.get("action", ""),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )
