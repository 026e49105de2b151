"""Operators see every client, token and pending code through django-oauth-toolkit's admin
(tokens are stored as checksums only, so no page can show one). ID tokens are not used: this
server is not an OpenID provider."""

from django.contrib import admin
from oauth2_provider.models import get_id_token_model

if admin.site.is_registered(get_id_token_model()):
    admin.site.unregister(get_id_token_model())
