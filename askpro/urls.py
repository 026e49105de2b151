from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mcp_core.healthchecks import ControlPlaneHealthView, live_view, ready_view
from mcp_core.live import stream_not_here
from mcp_core.mcp.endpoint import mcp_view
from mcp_core.prometheus import metrics_view

urlpatterns = [
    # Served by the stream process; the web process answers only "not here" (mcp_core.live).
    *(
        [path(settings.LIVE_STREAM_URL.lstrip("/"), stream_not_here, name="live-stream")]
        if settings.LIVE_STREAM_URL.startswith("/")
        else []
    ),
    path("admin/", admin.site.urls),
    path("api/v1/mcp/", include("mcp_core.api.urls")),
    path("mcp", mcp_view, name="mcp"),
    # OAuth 2.1 for MCP clients: /.well-known/oauth-* and /oauth/* (docs/oauth.md).
    path("", include("mcp_core.oauth.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("health/", ControlPlaneHealthView.as_view(), name="health"),
    re_path(r"^health/live/?$", live_view, name="health-live"),
    re_path(r"^health/ready/?$", ready_view, name="health-ready"),
    path("webhooks/", include("mcp_servers.webhooks.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

# Django's own refusals (a Host not allowed, ...) as JSON on the API, /mcp and webhooks.
handler400 = "mcp_core.limits.bad_request"
