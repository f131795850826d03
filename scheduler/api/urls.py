from django.urls import path
from rest_framework.routers import SimpleRouter

from scheduler.api import jobs, policy, reservations, sessions, usage, views

router = SimpleRouter()
router.register("nodes", views.NodeViewSet, basename="node")
router.register("jobs", jobs.JobViewSet, basename="job")
router.register("sweeps", jobs.SweepViewSet, basename="sweep")
router.register("priority-classes", policy.PriorityClassViewSet, basename="priority-class")
router.register("reservations", reservations.ReservationViewSet, basename="reservation")
router.register(
    "maintenance-windows", reservations.MaintenanceWindowViewSet, basename="maintenance-window"
)

router.register("sessions", sessions.SessionViewSet, basename="session")
router.register("workspace-images", sessions.WorkspaceImageViewSet, basename="workspace-image")

urlpatterns = [
    path("availability/", reservations.AvailabilityView.as_view(), name="availability"),
    path("calendar/", reservations.CalendarView.as_view(), name="calendar"),
    path("calendar-feeds/", reservations.CalendarFeedsView.as_view(), name="calendar-feeds"),
    path("teams/<slug:slug>/quota/", policy.TeamQuotaView.as_view(), name="team-quota"),
    path("teams/<slug:slug>/usage/", usage.TeamUsageView.as_view(), name="team-usage"),
    path("usage/waste/", usage.WasteView.as_view(), name="usage-waste"),
    path("jobs/<str:pk>/efficiency/", usage.JobEfficiencyView.as_view(), name="job-efficiency"),
    path("teams/<slug:slug>/policy/", reservations.TeamPolicyView.as_view(), name="team-policy"),
    *router.urls,
]
