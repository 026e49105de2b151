"""The stream process's ASGI application (the Procfile's `stream` line):
`uvicorn askpro.stream:application`. It serves only the admin's live event stream
(mcp_core.live_stream); every other page stays with the web process (askpro.wsgi)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askpro.settings")
django.setup()

from mcp_core.live_stream import LiveStreamApp  # noqa: E402 - needs the settings configured above

application = LiveStreamApp()
