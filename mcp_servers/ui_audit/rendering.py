"""Render the project's own admin pages in process, as a staff user, without side effects.

No session row is written and no HTTP request leaves the process: the view is resolved and
called with a RequestFactory request carrying an in-memory user, session and message store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.test import RequestFactory
from django.urls import Resolver404, URLPattern, resolve

# Admin pages that are not worth auditing (they redirect or serve no page of ours).
SKIPPED_NAMES = {
    "logout",
    "login",
    "password_change",
    "password_change_done",
    "jsi18n",
    "autocomplete",
    "view_on_site",
    "app_list",
}


@dataclass(frozen=True)
class RenderedPage:
    path: str
    status: int
    content_type: str
    html: str


def auditable_pages() -> list[str]:
    """The admin index, our custom pages and every model's change list, in a stable order."""
    site = admin.site
    prefix = "/admin/"
    pages = [prefix]
    for pattern in site.get_urls():
        if isinstance(pattern, URLPattern) and pattern.name and pattern.name not in SKIPPED_NAMES:
            route = str(pattern.pattern)
            if "<" in route or "(" in route or route in {"", "^$"}:
                continue
            pages.append(prefix + route.lstrip("^").rstrip("$"))
    for model in site._registry:
        pages.append(f"{prefix}{model._meta.app_label}/{model._meta.model_name}/")
    return sorted(set(pages))


def audit_user(user_id: int | None = None):
    """The signed-in operator when there is one; else an unsaved staff superuser that exists
    only for this rendering (it cannot sign in and is never stored)."""
    user_model = get_user_model()
    if user_id is not None:
        user = user_model.objects.filter(pk=user_id, is_active=True, is_staff=True).first()
        if user is not None:
            return user
    return user_model(username="ui-audit", is_staff=True, is_superuser=True, is_active=True)


def render_page(path: str, *, user) -> RenderedPage:
    try:
        match = resolve(path)
    except Resolver404:
        return RenderedPage(path=path, status=404, content_type="", html="")
    request = RequestFactory().get(path, HTTP_HOST=(settings.ALLOWED_HOSTS or ["testserver"])[0].lstrip("."))
    request.user = user
    request.session = SessionStore()
    request._messages = CookieStorage(request)
    request.META["CSRF_COOKIE"] = (
        "x" * 64
    )  # lets templates render {% csrf_token %} without a cookie round trip
    response = match.func(request, *match.args, **match.kwargs)
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response = response.render()
    content_type = response.get("Content-Type", "")
    body = (
        response.content.decode(response.charset or "utf-8", errors="replace")
        if hasattr(response, "content")
        else ""
    )
    return RenderedPage(path=path, status=response.status_code, content_type=content_type, html=body)


def project_stylesheets() -> list[tuple[str, str]]:
    """(source, css) of the project's own styles: static .css files of our apps and <style>
    blocks in our templates — not Django's admin CSS, which we do not own."""
    base = Path(settings.BASE_DIR)
    sources = []
    for folder in ("askpro", "mcp_core", "mcp_servers", "dashboard"):
        for css in sorted((base / folder).rglob("static/**/*.css")):
            sources.append((str(css.relative_to(base)), css.read_text(errors="replace")))
    for template in sorted((base / "templates").rglob("*.html")):
        text = template.read_text(errors="replace")
        for index, block in enumerate(_style_blocks(text)):
            sources.append((f"{template.relative_to(base)} <style #{index + 1}>", block))
    return sources


def _style_blocks(text: str) -> list[str]:
    import re

    return re.findall(r"<style[^>]*>(.*?)</style>", text, flags=re.S | re.I)
