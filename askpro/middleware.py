"""Browser-only middleware: sessions, the logged-in user and flash messages are for the admin's
pages. The machine endpoints (/mcp, the REST API) authenticate every request by API key and
never read a cookie, so they skip these three: less work on the hottest paths (bench_mcp), and
no session can ever stand in for a key there.

Each class subclasses Django's own, so the admin's system checks still find them.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware


class _BrowserOnly:
    # None of the wrapped middleware has process_view/process_exception hooks: skipping
    # __call__ skips all of it.
    def __call__(self, request):
        if request.path_info.startswith(settings.SESSIONLESS_PATH_PREFIXES):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_BrowserOnly, DjangoSessionMiddleware):
    """Django's SessionMiddleware, skipped on SESSIONLESS_PATH_PREFIXES."""


class AuthenticationMiddleware(_BrowserOnly, DjangoAuthenticationMiddleware):
    """Django's AuthenticationMiddleware, skipped on SESSIONLESS_PATH_PREFIXES."""


class MessageMiddleware(_BrowserOnly, DjangoMessageMiddleware):
    """Django's MessageMiddleware, skipped on SESSIONLESS_PATH_PREFIXES."""
