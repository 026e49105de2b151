from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mcp_core.healthchecks import ControlPlaneHealthView
from mcp_core.mcp.endpoint import mcp_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/mcp/", include("mcp_core.api.urls")),
    path("mcp", mcp_view, name="mcp"),
    path("health/", ControlPlaneHealthView.as_view(), name="health"),
    path("webhooks/", include("mcp_servers.webhooks.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
