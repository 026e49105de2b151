"""The OpenAPI schema shows each operation (its own path, params and result schemas derived
from the declarations), validates, and Swagger UI renders it without the internet."""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.db import connections

from mcp_core.contracts import HTTP_STATUS_FOR_ERROR
from mcp_core.discovery import params_schema, result_schema
from mcp_core.registry import get_registry
from tests.browser import CHROMIUM, CHROMIUM_ARGS

COMPONENTS = "#/components/schemas/"


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _inline(node, lookup, depth=0):
    """The schema with every $ref replaced by what it points at."""
    assert depth < 50, "runaway $ref nesting"
    if isinstance(node, dict):
        if "$ref" in node:  # a $ref may carry siblings (a field's own description): they win
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            return _inline({**lookup(node["$ref"]), **siblings}, lookup, depth + 1)
        return {key: _inline(value, lookup, depth + 1) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item, lookup, depth + 1) for item in node]
    return node


def _from_components(schema):
    return lambda ref: schema["components"]["schemas"][ref.removeprefix(COMPONENTS)]


def _from_defs(root):
    return lambda ref: root["$defs"][ref.removeprefix("#/$defs/")]


def _strip_titles(node):
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def test_it_shows_every_operation_with_its_params_and_result_schemas(schema):
    operations = get_registry().operations()
    assert len(operations) > 20
    resolve = _from_components(schema)
    for op in operations:
        path = f"/api/v1/mcp/{op.service}/{op.name}"
        assert path in schema["paths"], f"{op.tool_name} has no path"
        post = schema["paths"][path]["post"]
        assert post["operationId"] == op.tool_name
        assert post["tags"] == [op.service]
        assert op.description.split()[0] in post["description"]
        assert f"`{op.scope}`" in post["description"]

        body = post["requestBody"]["content"]["application/json"]["schema"]
        documented = _strip_titles(_inline(body, resolve))
        declared = _strip_titles(_inline(params_schema(op), _from_defs(params_schema(op))))
        assert documented == declared, op.tool_name
        assert documented["additionalProperties"] is False
        assert post["requestBody"]["required"] == bool(params_schema(op).get("required"))

        ok = _inline(post["responses"]["200"]["content"]["application/json"]["schema"], resolve)
        assert ok["properties"]["success"] == {"const": True}
        declared_result = _strip_titles(_inline(result_schema(op), _from_defs(result_schema(op))))
        assert _strip_titles(ok["properties"]["data"]) == declared_result, op.tool_name

        names = {p["name"] for p in post["parameters"]}
        assert ("tenant" in names) == op.tenant_scoped, op.tool_name
        assert {"Idempotency-Key", "X-Request-ID"} <= names
        statuses = {int(s) for s in post["responses"]} - {200}
        assert statuses <= set(HTTP_STATUS_FOR_ERROR.values())
        assert {400, 401, 403, 404, 429, 504} <= statuses, op.tool_name
        assert (502 in statuses) == op.annotations.open_world, op.tool_name
    # The catch-all route itself is not shown as a path of its own.
    assert "/api/v1/mcp/{service}/{operation}" not in schema["paths"]
    assert {"/api/v1/mcp/call", "/api/v1/mcp/services", "/api/v1/mcp/health"} <= set(schema["paths"])
    assert schema["security"] == [{"bearerAuth": []}]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {tag["name"] for tag in schema["tags"]} >= {op.service for op in operations}


def test_it_documents_paths_that_exist(client, schema, db):
    """Every documented operation path routes to the pipeline (without a key: 401, audited)."""
    operation_paths = [p for p in schema["paths"] if p.startswith("/api/v1/mcp/") and p.count("/") == 5]
    assert len(operation_paths) == len(get_registry().operations())
    for path in operation_paths:
        response = client.post(path, data="{}", content_type="application/json")
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized", path


def test_it_validates_against_the_openapi_specification(tmp_path, db):
    out = tmp_path / "schema.yaml"
    # --validate checks the document against the OpenAPI 3.1 meta-schema and raises on errors;
    # --fail-on-warn makes any warning of the generator an error too.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert text.startswith("openapi: 3.1.0")
    assert "/api/v1/mcp/database/query:" in text


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


def test_it_serves_swagger_ui_from_this_host_only(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    parser = _Assets()
    parser.feed(html)
    assert len(parser.urls) >= 3, parser.urls  # favicon, stylesheet, scripts
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{url} is not on this host"
        assert url.startswith("/static/drf_spectacular_sidecar/"), url
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file of this install"
    # And nothing in the inline script fetches from elsewhere either.
    assert not re.search(r"https?://", html), re.findall(r"https?://\S+", html)


# --- in a real browser, with every request off this host blocked ---

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "api-docs"


@pytest.fixture(scope="session")
def _release_live_server_connections(django_db_setup, django_db_blocker):
    """At the end of the session, end the idle connections the live server's thread left on
    this run's test database, which would otherwise keep it from being dropped. (Not sooner:
    this process's own pooled connections are idle between tests too.)"""
    yield
    if connections["default"].vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
        )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_renders_swagger_ui_offline_with_every_operation(live_server, _release_live_server_connections):
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_browser.sh (apt-get install chromium)")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    local = urlsplit(live_server.url).netloc
    blocked: list[str] = []
    failed: list[str] = []

    def only_this_host(route):
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", only_this_host)
            page = context.new_page()
            page.on("pageerror", lambda exc: failed.append(str(exc)))
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(f"{live_server.url}/api/docs/")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            page.screenshot(path=str(SHOTS / "swagger.png"), full_page=False)
            # Open database_query: Swagger shows its body schema with the params to send.
            block = page.locator("#operations-database-database_query")
            block.locator(".opblock-summary").click()
            block.locator(".opblock-body").wait_for()
            body_text = block.locator(".opblock-body").inner_text()
            page.screenshot(path=str(SHOTS / "swagger-database-query.png"), full_page=False)
            context.close()
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

    assert blocked == [], f"the page asked for something off this host: {blocked}"
    assert failed == [], failed
    cleaned = {p.replace("\u200b", "").strip() for p in paths}
    for op in get_registry().operations():
        assert f"/api/v1/mcp/{op.service}/{op.name}" in cleaned, op.tool_name
    assert "sql" in body_text and "max_rows" in body_text, body_text[:500]
