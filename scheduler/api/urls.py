"""API routes of this app, mounted under /api/v1/. Endpoints arrive with their issues."""

urlpatterns: list = []
