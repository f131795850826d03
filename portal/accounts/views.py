"""Pages: the user's API tokens (create, see once, revoke) and their language."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from portal.accounts import services
from portal.accounts.models import ApiToken
from portal.errors import KarimasuError


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label=gettext_lazy("Name"))
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=services.MAX_TOKEN_LIFETIME.days,
        required=False,
        label=gettext_lazy("Expires in (days)"),
        help_text=gettext_lazy("Leave empty for a token that does not expire."),
    )


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            token, created = services.create_api_token(
                request.user,
                name=form.cleaned_data["name"],
                now=timezone.now(),
                expires_in=timedelta(days=days) if days else None,
            )
        except KarimasuError as exc:
            form.add_error("name", exc.message)
        else:
            form = TokenForm()
            messages.success(request, _("Token “%(name)s” created.") % {"name": token.name})
    rows = ApiToken.objects.filter(user=request.user)
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "created": created, "tokens": rows, "now": timezone.now()},
    )


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's set_language, and for a signed-in user also their saved language."""
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        services.set_language(request.user, language)
    return django_set_language(request)


@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = services.revoke_api_token(request.user, token_id, now=timezone.now())
    except KarimasuError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return redirect("tokens")


@login_required
@require_POST
def set_time_zone(request: HttpRequest) -> HttpResponse:
    """Save the user's time zone (empty: the site's), then back to where they were."""
    try:
        services.set_time_zone(request.user, request.POST.get("time_zone", ""))
    except KarimasuError as exc:
        messages.error(request, exc.message)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)


def sso_context(request: HttpRequest) -> dict[str, bool]:
    """Template context: whether the sign-in page offers single sign-on."""
    return {"sso_enabled": bool(getattr(settings, "OIDC_RP_CLIENT_ID", ""))}
