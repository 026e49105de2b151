import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askpro.settings")
_django = get_asgi_application()

from mcp_core.limits import BoundedBodyASGI  # noqa: E402 - needs the settings configured above

# Bodies are bounded before Django reads them (mcp_core.limits, docs/input-limits.md).
application = BoundedBodyASGI(_django)
