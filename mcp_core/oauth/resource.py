"""Where this server is, as OAuth sees it: the issuer, the protected resource (/mcp) and the
challenge a 401 carries (RFC 9728 section 5.1)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

MCP_PATH = "/mcp"
# The scope a 401 suggests (SEP-835): reading is enough to list tools and call read operations;
# a client asks for more on the consent page, where the user's own rights bound the grant.
CHALLENGE_SCOPE = "*:read"


def origin(request: HttpRequest) -> str:
    """The public origin: OAUTH_PUBLIC_URL, or the scheme and Host of this request."""
    return settings.OAUTH_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


def mcp_resource(request: HttpRequest) -> str:
    """The canonical URI of the MCP endpoint: the only audience tokens are issued for."""
    return origin(request) + MCP_PATH


def metadata_url(request: HttpRequest) -> str:
    """The protected-resource metadata document of /mcp (the path-inserted well-known form)."""
    path = reverse("oauth2_provider:oauth-resource-metadata-path", kwargs={"resource_path": "mcp"})
    return origin(request) + path


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def challenge(request: HttpRequest, *, error: str | None = None, description: str | None = None) -> str:
    """`WWW-Authenticate` for /mcp: where to find the metadata, and what was wrong if anything."""
    params = {"realm": "askpro"}
    if error:
        params["error"] = error
    if description:
        params["error_description"] = description
    params["scope"] = CHALLENGE_SCOPE
    params["resource_metadata"] = metadata_url(request)
    return "Bearer " + ", ".join(f'{key}="{_quoted(value)}"' for key, value in params.items())
