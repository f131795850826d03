"""API routes of the pipelines, mounted under /api/v1/."""

from rest_framework.routers import SimpleRouter

from pipelines.api import views

router = SimpleRouter()
router.register("pipelines", views.PipelineViewSet, basename="pipeline")
router.register("pipeline-runs", views.PipelineRunViewSet, basename="pipeline-run")
router.register("datasets", views.DatasetViewSet, basename="dataset")

urlpatterns = router.urls
