"""The well-known documents at the origin's root, and the authorization server under /oauth/.

The namespace is django-oauth-toolkit's, so that its metadata view names these endpoints."""

from django.urls import path
from oauth2_provider import views as dot_views

from . import views

app_name = "oauth2_provider"

urlpatterns = [
    path(
        ".well-known/oauth-authorization-server",
        dot_views.OAuthServerMetadataView.as_view(),
        name="oauth-server-metadata",
    ),
    path(
        ".well-known/oauth-protected-resource",
        views.ResourceMetadataView.as_view(),
        name="oauth-resource-metadata",
    ),
    path(
        ".well-known/oauth-protected-resource/<path:resource_path>",
        views.ResourceMetadataView.as_view(),
        name="oauth-resource-metadata-path",
    ),
    path("oauth/authorize/", views.ConsentView.as_view(), name="authorize"),
    path("oauth/token/", views.BoundedTokenView.as_view(), name="token"),
    path("oauth/revoke/", views.BoundedRevokeTokenView.as_view(), name="revoke-token"),
    path("oauth/register/", views.RegistrationView.as_view(), name="dcr-register"),
    path(
        "oauth/register/<str:client_id>/",
        dot_views.DynamicClientRegistrationManagementView.as_view(),
        name="dcr-register-management",
    ),
    path("oauth/clients/", views.my_clients, name="my-clients"),
    path("oauth/clients/<int:pk>/revoke/", views.revoke_my_client, name="my-clients-revoke"),
]
