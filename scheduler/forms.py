"""Forms of the bookings page (the API has its own serializers)."""

from __future__ import annotations

import shlex
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator
from django.utils.translation import gettext_lazy as _

from portal.accounts.models import Team, User
from scheduler import messages
from scheduler.limits import MAX_BOOKING_HOURS, MAX_GPUS, MIN_BOOKING_HOURS
from scheduler.models import Node, PriorityClass
from scheduler.services.submission import JobRequest

_LOCAL_MINUTE = ["%Y-%m-%dT%H:%M"]  # what <input type="datetime-local"> sends


def _teams(user: User) -> Any:
    teams = Team.objects.order_by("slug")
    return teams if user.is_staff else teams.filter(memberships__user=user).distinct()


class _TeamForm(forms.Form):
    """A form that charges a team: one of the user's (admins: any); preselected when the
    user has only one."""

    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), to_field_name="slug", label=_("Team")
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["team"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = _teams(user)
        if field.queryset.count() == 1:
            field.initial = field.queryset.first()


class BookForm(_TeamForm):
    """Book chosen GPUs of one node for a time window."""

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
    shared_with_team = forms.BooleanField(
        label=_("Share with my team"),
        required=False,
        help_text=_("Off: only your jobs use these GPUs. On: your team's jobs may too."),
    )

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

    gpus = forms.IntegerField(label=_("GPUs"), min_value=1, max_value=MAX_GPUS, initial=1)
    hours = forms.FloatField(
        label=_("Hours"), min_value=MIN_BOOKING_HOURS, max_value=MAX_BOOKING_HOURS, initial=2
    )
    purpose = forms.CharField(label=_("Purpose"), max_length=500, required=False)
    shared_with_team = forms.BooleanField(
        label=_("Share with my team"),
        required=False,
        help_text=_("Off: only your jobs use these GPUs. On: your team's jobs may too."),
    )


class JobForm(_TeamForm):
    """Submit a training job (the API's fields that a form can hold)."""

    field_order = ["name", "team"]  # the job's name, then whom it is charged to

    name = forms.SlugField(label=_("Name"), max_length=100)
    image = forms.CharField(label=_("Image"), max_length=500, initial="pytorch/pytorch:2.4")
    command = forms.CharField(
        label=_("Command"),
        required=False,
        max_length=2000,
        help_text=_("As in a shell, e.g. python train.py --epochs 10; empty: the image's own"),
    )
    gpus = forms.IntegerField(
        label=_("GPUs"),
        min_value=0,
        max_value=MAX_GPUS,
        initial=1,
        help_text=_("Per node"),
    )
    nodes = forms.IntegerField(
        label=_("Nodes"),
        min_value=1,
        initial=1,
        required=False,
        help_text=_(
            "More than 1: a multi-node job, started on all its nodes together or not at all"
        ),
    )
    gpu_models = forms.MultipleChoiceField(
        label=_("GPU models"),
        required=False,
        help_text=_("Any of these; none chosen: any model"),
    )
    max_runtime_h = forms.FloatField(
        label=_("Longest runtime (hours)"), min_value=0.02, max_value=24 * 14, initial=4
    )
    priority_class = forms.ChoiceField(label=_("Priority"), required=False)
    preemptible = forms.BooleanField(
        label=_("May be preempted (runs on borrowed GPUs sooner)"), required=False, initial=True
    )
    env = forms.CharField(
        label=_("Environment"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One NAME=value per line"),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        nodes = self.fields["nodes"]
        nodes.max_value = settings.KARIMASU_MAX_JOB_NODES  # type: ignore[attr-defined]
        nodes.validators.append(MaxValueValidator(settings.KARIMASU_MAX_JOB_NODES))
        nodes.widget.attrs["max"] = str(settings.KARIMASU_MAX_JOB_NODES)
        models = Node.objects.filter(gone_at__isnull=True).exclude(gpu_model="")
        names = sorted(set(models.values_list("gpu_model", flat=True)))
        self.fields["gpu_models"].choices = [(name, name) for name in names]  # type: ignore[attr-defined]
        classes = PriorityClass.objects.order_by("-value")
        self.fields["priority_class"].choices = [("", _("the default"))] + [  # type: ignore[attr-defined]
            (pc.name, messages.priority_label(pc.name)) for pc in classes
        ]

    def clean_command(self) -> list[str]:
        try:
            return shlex.split(self.cleaned_data["command"])
        except ValueError as error:
            raise forms.ValidationError(_("The command does not parse: %s") % error) from None

    def clean_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["env"].splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(_("Line %(n)s is not NAME=value.") % {"n": number})
            env[name.strip()] = value
        return env

    def job_request(self) -> JobRequest:
        """The validated form as the submission service's request."""
        data = self.cleaned_data
        return JobRequest(
            name=data["name"],
            image=data["image"],
            team=data["team"].slug,
            max_runtime_s=max(60, int(data["max_runtime_h"] * 3600)),
            command=data["command"],
            env=data["env"],
            gpus=data["gpus"],
            nodes=data["nodes"] or 1,
            gpu_models=list(data["gpu_models"]),
            priority_class=data["priority_class"],
            preemptible=data["preemptible"],
        )
