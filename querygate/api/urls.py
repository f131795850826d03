"""API routes of the query gate, mounted under /api/v1/."""

from rest_framework.routers import SimpleRouter

from querygate.api import views

router = SimpleRouter()
router.register("warehouses", views.WarehouseViewSet, basename="warehouse")
router.register("queries", views.QueryViewSet, basename="query")

urlpatterns = router.urls
