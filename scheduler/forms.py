"""Forms of the bookings page (the API has its own serializers)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Team, User
from scheduler.models import Node

_LOCAL_MINUTE = ["%Y-%m-%dT%H:%M"]  # what <input type="datetime-local"> sends


def _teams(user: User) -> Any:
    teams = Team.objects.order_by("slug")
    return teams if user.is_staff else teams.filter(memberships__user=user).distinct()


class _TeamForm(forms.Form):
    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["team"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = _teams(user)
        if field.queryset.count() == 1:
            field.initial = field.queryset.first()


class BookForm(_TeamForm):
    """Book chosen GPUs of one node for a time window."""

    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), to_field_name="slug", label=_("Team")
    )
    node = forms.ModelChoiceField(
        queryset=Node.objects.filter(gone_at__isnull=True).order_by("name"),
        to_field_name="name",
        label=_("Node"),
    )
    gpus = forms.CharField(
        label=_("GPUs"),
        help_text=_("GPU numbers on that node, e.g. 0,1"),
        max_length=40,
    )
    start = forms.DateTimeField(
        label=_("From"),
        input_formats=_LOCAL_MINUTE,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=_LOCAL_MINUTE[0]),
    )
    end = forms.DateTimeField(
        label=_("Until"),
        input_formats=_LOCAL_MINUTE,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=_LOCAL_MINUTE[0]),
    )
    purpose = forms.CharField(label=_("Purpose"), max_length=500, required=False)

    def clean_gpus(self) -> list[int]:
        text = self.cleaned_data["gpus"]
        try:
            indices = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
        except ValueError:
            raise forms.ValidationError(_("Give GPU numbers separated by commas.")) from None
        if not indices or min(indices) < 0:
            raise forms.ValidationError(_("Give GPU numbers separated by commas."))
        return indices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", _("The end must come after the start."))
        return data


class BorrowForm(_TeamForm):
    """Borrow GPUs from now on, wherever they are free (best fit)."""

    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), to_field_name="slug", label=_("Team")
    )
    gpus = forms.IntegerField(label=_("GPUs"), min_value=1, max_value=8, initial=1)
    hours = forms.FloatField(label=_("Hours"), min_value=0.25, max_value=24 * 31, initial=2)
    purpose = forms.CharField(label=_("Purpose"), max_length=500, required=False)
