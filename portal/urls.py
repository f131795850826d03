from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from pipelines import views as pipeline_views
from portal import health, views
from portal.accounts import oidc
from portal.accounts import views as account_views
from querygate import views as querygate_views
from scheduler import views as scheduler_views

# The portal's own error pages (and under DEBUG, the 404 too: portal/error_pages.py).
handler404 = "portal.error_pages.page_not_found"
handler500 = "portal.error_pages.server_error"

api_v1 = [
    path("", include("portal.accounts.api.urls")),
    path("", include("scheduler.api.urls")),
    path("", include("scheduler.telemetry.api.urls")),
    path("", include("querygate.api.urls")),
    path("", include("pipelines.api.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("bookings/", scheduler_views.bookings_page, name="bookings"),
    path("team/", scheduler_views.my_team_page, name="my-team"),
    path("teams/<slug:slug>/", scheduler_views.team_page, name="team"),
    path("jobs/", scheduler_views.jobs_page, name="jobs"),
    path("jobs/<int:job_id>/", scheduler_views.job_page, name="job"),
    path("jobs/<int:job_id>/log/", scheduler_views.job_log, name="job-log"),
    path("sessions/", scheduler_views.sessions_page, name="sessions"),
    path("sessions/<int:session_id>/", scheduler_views.session_page, name="session"),
    path("sql/", querygate_views.sql_editor, name="sql-editor"),
    path("pipelines/", pipeline_views.pipelines_page, name="pipelines"),
    path("pipelines/<int:pipeline_id>/", pipeline_views.pipeline_page, name="pipeline"),
    path("pipeline-runs/<int:run_id>/", pipeline_views.run_page, name="pipeline-run"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Single sign-on (404 unless OIDC_RP_CLIENT_ID is set): see portal/accounts/oidc.py.
    path("oidc/authenticate/", oidc.authenticate_view, name="oidc_authentication_init"),
    path("oidc/callback/", oidc.callback_view, name="oidc_authentication_callback"),
    path("accounts/tokens/", account_views.tokens, name="tokens"),
    path("accounts/tokens/<int:token_id>/revoke/", account_views.revoke_token, name="token-revoke"),
    path("i18n/setlang/", account_views.set_language, name="set_language"),
    path("accounts/time-zone/", account_views.set_time_zone, name="set_time_zone"),
    path("admin/", admin.site.urls),
    path("calendar/<str:secret>.ics", scheduler_views.calendar_feed, name="calendar-feed"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]
