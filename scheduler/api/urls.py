from rest_framework.routers import SimpleRouter

from scheduler.api import views

router = SimpleRouter()
router.register("nodes", views.NodeViewSet, basename="node")

urlpatterns = router.urls
