from django.urls import path
from rest_framework.routers import SimpleRouter

from portal.accounts.api import views

router = SimpleRouter()
router.register("tokens", views.ApiTokenViewSet, basename="token")
router.register("teams", views.TeamViewSet, basename="team")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    *router.urls,
]
