"""The transport matrix (issue 11 §2): every HTTP entry point of the API and /mcp (both protocol
eras) x every input class — bytes that are not UTF-8, lone surrogates and NUL in strings,
nesting deeper than REQUEST_MAX_JSON_DEPTH, bodies over REQUEST_MAX_BODY_BYTES, valid JSON of
the wrong top-level type, numbers beyond a column, and hostile values in every header the
project reads. Each gets a 4xx in the entry point's own JSON shape naming the field (on /mcp:
the JSON-RPC error object with the right code), and nothing is stored: no audit row, no
webhook row, no change to the tenant.

Webhooks have their own matrix (test_webhook_matrix.py); stdio and the console are at the end.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings
from django_mcpz.headers import encode_header_value

from mcp_core.models import AuditEntry
from mcp_servers.webhooks.models import WebhookEvent
from tests.mcp.helpers import LEGACY, MODERN, modern_meta

from .conftest import tenant_snapshot

HEADERS = ["Authorization", "Idempotency-Key", "X-Request-ID", "Mcp-Session-Id", "MCP-Protocol-Version"]
HEADERS += ["Mcp-Method", "Mcp-Name"]
HEADER_VALUES = {
    "NUL": "a\x00b",
    "lone surrogate": "a\ud800b",
    "control character": "a\x1bb",
    "non-ASCII": "caf\u00e9",
    "absurd length": "a" * 5000,
}
PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602


@dataclass
class Expect:
    """What the entry point must answer: an HTTP status and the field named; on /mcp a
    JSON-RPC error code (or, for a bad tool argument, a tool error naming it)."""

    status: int
    field: str
    rpc_code: int | None = None
    tool_error: bool = False


@dataclass
class Case:
    entry: str
    klass: str
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    expect: Expect
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.klass}"


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- the entry points: a valid request each, and how each input class is put into it ---------
def _api_call(envelope: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    body = {"service": "database", "operation": "get_tenant_stats", "params": {}}
    return {**body, **(envelope or {}), **changes}


def _mcp(era: str, *, name: str = "database_get_tenant_stats", arguments: Any = None) -> tuple[dict, dict]:
    params: dict[str, Any] = {"name": name, "arguments": arguments if arguments is not None else {}}
    headers = {"Accept": "application/json, text/event-stream"}
    if era == MODERN:
        params["_meta"] = modern_meta()
        headers |= {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name}
    else:
        headers["MCP-Protocol-Version"] = LEGACY
    return {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": params}, headers


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _api_cases() -> list[Case]:
    depth = settings.REQUEST_MAX_JSON_DEPTH
    limit = settings.REQUEST_MAX_BODY_BYTES
    path = "/api/v1/mcp/call"
    cases = [
        ("not UTF-8", _dumps(_api_call()).replace(b"database", b"data\xff\xfebase"), Expect(400, "body")),
        ("lone surrogate in service", _dumps(_api_call(service="\ud800")), Expect(400, "service")),
        ("lone surrogate in tenant", _dumps(_api_call(tenant="a\udfff")), Expect(400, "tenant")),
        ("lone surrogate in a field name", _dumps(_api_call({"\ud800": 1})), Expect(400, "\\ud800")),
        ("NUL in operation", _dumps(_api_call(operation="get\x00")), Expect(400, "operation")),
        ("NUL in tenant", _dumps(_api_call(tenant="a\x00")), Expect(400, "tenant")),
        ("absurdly long service", _dumps(_api_call(service="s" * 10_000)), Expect(400, "service")),
        ("nesting too deep", _dumps(_api_call(params={"x": _deep(depth)})), Expect(400, "body")),
        ("over the size limit", b'{"service": "' + b"s" * limit + b'"}', Expect(413, "body")),
        ("tenant beyond a bigint", _dumps(_api_call(tenant=2**63)), Expect(400, "tenant")),
        ("empty body", b"", Expect(400, "service")),  # DRF reads no body as {}
    ]
    cases += [
        (f"top level {kind}", text, Expect(400, "body"))
        for kind, text in (("array", b"[]"), ("string", b'"x"'), ("number", b"1"), ("null", b"null"))
    ]
    return [Case("api call", klass, "post", path, body, {}, expect) for klass, body, expect in cases]


OPERATION_PATH = "/api/v1/mcp/database/get_tenant_stats"


def _operation_route_cases() -> list[Case]:
    """`POST /api/v1/mcp/<service>/<operation>`: the params are the body, the tenant a query."""
    depth = settings.REQUEST_MAX_JSON_DEPTH
    limit = settings.REQUEST_MAX_BODY_BYTES
    path = OPERATION_PATH
    cases = [
        ("not UTF-8", b'{"d\xff\xfeys": 7}', path, Expect(400, "body")),
        ("nesting too deep", _dumps({"x": _deep(depth)}), path, Expect(400, "body")),
        ("over the size limit", b'{"x": "' + b"s" * limit + b'"}', path, Expect(413, "body")),
        ("NUL in operation", b"{}", "/api/v1/mcp/database/get%00stats", Expect(400, "operation")),
        ("absurdly long service", b"{}", f"/api/v1/mcp/{'s' * 10_000}/get", Expect(400, "service")),
        ("NUL in tenant", b"{}", f"{path}?tenant=a%00", Expect(400, "tenant")),
        ("unknown query parameter", b"{}", f"{path}?tenantt=x", Expect(400, "tenantt")),
    ]
    cases += [
        # The body is the params here, so a body of the wrong type is refused as the params.
        (f"top level {kind}", text, path, Expect(400, "params"))
        for kind, text in (("array", b"[]"), ("string", b'"x"'), ("number", b"1"), ("null", b"null"))
    ]
    # Params-level classes (surrogates, NUL, numbers, dates) reach the pipeline as on /call and
    # are covered for this route by test_bad_input_matrix and test_fuzz.
    return [Case("api operation", klass, "post", url, body, {}, expect) for klass, body, url, expect in cases]


def _mcp_cases(era: str) -> list[Case]:
    depth = settings.REQUEST_MAX_JSON_DEPTH
    limit = settings.REQUEST_MAX_BODY_BYTES
    entry = f"mcp {era}"
    out = []

    def add(klass: str, body: bytes, expect: Expect, headers: dict[str, str]) -> None:
        out.append(Case(entry, klass, "post", "/mcp", body, headers, expect))

    message, headers = _mcp(era)
    text = _dumps(message)
    add(
        "not UTF-8", text.replace(b"tools/call", b"tools/\xffcall"), Expect(400, "body", PARSE_ERROR), headers
    )
    add(
        "lone surrogate in id",
        text.replace(b"11", b'"\\udc00"', 1),
        Expect(400, "body", PARSE_ERROR),
        headers,
    )
    add(
        "nesting too deep",
        _dumps(_mcp(era, arguments={"x": _deep(depth)})[0]),
        Expect(400, "body", PARSE_ERROR),
        headers,
    )
    add(
        "over the size limit",
        text[:-1] + b', "pad": "' + b"p" * limit + b'"}',
        Expect(413, "body", INVALID_REQUEST),
        headers,
    )
    add("number out of range", text.replace(b"11", b"1e400", 1), Expect(400, "body", PARSE_ERROR), headers)
    add("empty body", b"", Expect(400, "body", PARSE_ERROR), headers)
    for kind, body in (("array", b"[]"), ("string", b'"x"'), ("number", b"1"), ("null", b"null")):
        add(f"top level {kind}", body, Expect(400, "body", INVALID_REQUEST), headers)
    # Strings and numbers that parse: refused by the protocol layer or, for tool arguments, by
    # the pipeline (a tool error naming the argument, as MCP wants for bad arguments).
    nul_message, nul_headers = _mcp(era, name="database_get_tenant_stats\x00")
    if era == MODERN:
        nul_headers["Mcp-Name"] = encode_header_value("database_get_tenant_stats\x00")
    expect_nul = Expect(200, "tool", INVALID_PARAMS)  # "Unknown tool: ..."
    add("NUL in the tool name", _dumps(nul_message), expect_nul, nul_headers)
    for klass, arguments, named in (
        ("NUL in an argument", {"tenant": "a\x00"}, "tenant"),
        ("argument beyond a bigint", {"tenant": 2**63}, "tenant"),
        ("absurdly long argument", {"tenant": "t" * 10_000}, "tenant"),
    ):
        add(klass, _dumps(_mcp(era, arguments=arguments)[0]), Expect(200, named, tool_error=True), headers)
    return out


ENTRIES = ["api call", "api operation", "api services", "api health", "mcp 2026-07-28", "mcp 2025-11-25"]


def _baseline(entry: str) -> tuple[str, str, bytes | None, dict[str, str]]:
    """(method, path, body, headers) of a valid request to the entry point."""
    if entry == "api call":
        return "post", "/api/v1/mcp/call", _dumps(_api_call()), {}
    if entry == "api operation":
        return "post", OPERATION_PATH, b"{}", {}
    if entry == "api services":
        return "get", "/api/v1/mcp/services", None, {}
    if entry == "api health":
        return "get", "/api/v1/mcp/health?timeout=1", None, {}
    message, headers = _mcp(MODERN if entry.endswith(MODERN) else LEGACY)
    return "post", "/mcp", _dumps(message), headers


def _header_cases() -> list[Case]:
    """Every header the project reads, with every hostile value, on every entry point."""
    cases = []
    for entry in ENTRIES:
        method, path, body, headers = _baseline(entry)
        for header in HEADERS:
            for label, value in HEADER_VALUES.items():
                sent = f"Bearer {value}" if header == "Authorization" else value
                expect = Expect(400, header, INVALID_REQUEST if path == "/mcp" else None)
                cases.append(
                    Case(entry, f"{header} {label}", method, path, body, {**headers, header: sent}, expect)
                )
    return cases


CASES = _api_cases() + _operation_route_cases() + _mcp_cases(MODERN) + _mcp_cases(LEGACY) + _header_cases()


def _send(client, case: Case, key: str):
    headers = {"Authorization": f"Bearer {key}", **case.headers}
    if case.method == "get":
        return client.get(case.path, headers=headers)
    return client.post(case.path, data=case.body, content_type="application/json", headers=headers)


def _named(case: Case, response) -> str | None:
    """What is wrong with the answer, or None."""
    expect = case.expect
    if response.status_code >= 500 or response.status_code != expect.status:
        return f"HTTP {response.status_code} (wanted {expect.status}): {response.content[:300]!r}"
    if not response["Content-Type"].startswith("application/json"):
        return f"not JSON: {response['Content-Type']}"
    answer = response.json()
    if case.path.startswith("/api/"):
        error = answer.get("error") or {}
        if error.get("code") != "validation_error" or error.get("details", {}).get("field") != expect.field:
            return f"error {error}"
        if not error["message"].startswith(f"{expect.field}:"):
            return f"message {error['message']!r} does not start with the field"
        if expect.status == 413 and error["details"].get("limit") != settings.REQUEST_MAX_BODY_BYTES:
            return "413 without the limit"
        return None
    if expect.tool_error:
        result = answer.get("result") or {}
        first = result.get("content", [{}])[0].get("text", "").split("\n")[0]
        if not result.get("isError") or not first.startswith(f"validation_error: {expect.field}:"):
            return f"not a tool error naming {expect.field}: {answer}"
        return None
    error = answer.get("error") or {}
    if answer.get("jsonrpc") != "2.0" or error.get("code") != expect.rpc_code:
        return f"JSON-RPC error {error} (wanted code {expect.rpc_code})"
    data = error.get("data") or {}
    if data.get("field", expect.field) != expect.field and expect.field not in error.get("message", ""):
        return f"does not name {expect.field}: {error}"
    if expect.status == 413 and data.get("limit") != settings.REQUEST_MAX_BODY_BYTES:
        return "413 without the limit"
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_it_refuses_hostile_input_on_every_entry_point_naming_the_field(case, client, alice, alice_key):
    before = tenant_snapshot(alice)
    audited, webhooks = AuditEntry.objects.count(), WebhookEvent.objects.count()
    problem = _named(case, _send(client, case, alice_key))
    assert problem is None, problem
    assert tenant_snapshot(alice) == before
    # Refused before the pipeline (or, for tool arguments, by it: then audited once, and this
    # test's transaction takes django-mcpz's rolled-back savepoint with it).
    assert AuditEntry.objects.count() == audited
    assert WebhookEvent.objects.count() == webhooks


@pytest.mark.parametrize("entry", ENTRIES)
def test_it_accepts_the_matrix_baseline_of_each_entry_point(entry, client, alice, alice_key):
    """So that every refusal above is the hostile part's doing, not a broken baseline."""
    method, path, body, headers = _baseline(entry)
    response = _send(client, Case(entry, "baseline", method, path, body, headers, Expect(200, "")), alice_key)
    assert response.status_code == 200, response.content[:300]
    answer = response.json()
    assert answer.get("error") is None, answer
    if entry.startswith("mcp"):
        assert answer["result"]["isError"] is False, answer


def _asgi_post(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, int]:
    """One request through the project's ASGI application (askpro.asgi), the body in chunks
    and without a Content-Length, as a chunked upload arrives. Returns the status, the body
    and how many bytes the application pulled."""
    from askpro.asgi import application

    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []
    pulled = 0

    async def receive():
        nonlocal pulled
        if messages:
            pulled += len(messages[0]["body"])
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected (a disconnect cancels the answer)

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(application(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


@pytest.mark.parametrize("path", ["/api/v1/mcp/call", "/mcp", "/webhooks/stripe"])
def test_it_bounds_a_chunked_body_without_content_length(path):
    """No Content-Length, 64 KiB chunks far past the limit: a JSON 413 in the entry point's shape
    naming the limit, never Django's HTML page, and never more than the limit + one chunk read
    (Django's own ASGI handler would spool all of it to disk first)."""
    limit = (
        settings.WEBHOOK_MAX_BODY_BYTES if path.startswith("/webhooks/") else settings.REQUEST_MAX_BODY_BYTES
    )
    chunk = 65536
    chunks = [b"[" + b" " * (chunk - 1)] + [b" " * chunk] * (3 * limit // chunk)
    status, body, pulled = _asgi_post(path, chunks, [(b"transfer-encoding", b"chunked")])
    assert status == 413, body[:300]
    assert str(limit) in json.dumps(json.loads(body))
    assert pulled <= limit + chunk


def test_it_serves_a_small_chunked_body_over_asgi(transactional_db):
    """The wrapper hands a body within the limit on whole: an unsigned webhook is refused by
    its signature check, i.e. the view saw the body. (The view runs in another thread, hence
    a committed database.)"""
    status, body, _ = _asgi_post(
        "/webhooks/calcom", [b'{"a":', b' "b"}'], [(b"transfer-encoding", b"chunked")]
    )
    assert status == 401, body
    assert json.loads(body)["reason"] == "missing_signature"


def test_it_refuses_an_invalid_content_length_as_json(client, alice_key):
    response = client.post(
        "/api/v1/mcp/call",
        data=b"{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_key}"},
        CONTENT_LENGTH="12abc",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "Content-Length"


# --- stdio: the same classes, one line each, through the real bridge -------------------------
def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _stdio_cases() -> list[tuple[str, bytes, int, str]]:
    """(class, line, JSON-RPC code, what the message must say)."""
    depth = settings.REQUEST_MAX_JSON_DEPTH
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}}
    text = _line(listing)
    return [
        ("not UTF-8", text.replace(b"tools/list", b"tools/\xfflist"), PARSE_ERROR, "UTF-8"),
        ("lone surrogate escape", text.replace(b"{}", b'{"x": "\\ud800"}'), PARSE_ERROR, "surrogate"),
        (
            "nesting too deep",
            text.replace(b"{}", b'{"x": ' + b"[" * (depth + 1) + b"]" * (depth + 1) + b"}"),
            PARSE_ERROR,
            "deeper",
        ),
        ("not JSON", b"{nope", PARSE_ERROR, "JSON"),
        ("number out of range", text.replace(b"3", b"1e400", 1), PARSE_ERROR, "out of range"),
        ("top level array", b"[]", INVALID_REQUEST, "Expected `object`"),
        ("top level string", b'"x"', INVALID_REQUEST, "Expected `object`"),
        ("NUL in the method", text.replace(b"tools/list", b"tools/list\\u0000"), -32601, "Method not found"),
        (
            "control character in the protocol version",
            _line(
                {**listing, "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026\u001b"}}}
            ),
            INVALID_REQUEST,
            "MCP-Protocol-Version",
        ),
    ]


STDIO_CASES = _stdio_cases()


@pytest.mark.parametrize(("klass", "line", "code", "says"), STDIO_CASES, ids=[c[0] for c in STDIO_CASES])
def test_it_answers_hostile_stdio_lines_with_json_rpc_errors(klass, line, code, says, alice, alice_key):
    from mcp_core.mcp.stdio import handle_line

    reply = json.loads(handle_line(line, alice_key))
    assert reply["jsonrpc"] == "2.0"
    assert reply["error"]["code"] == code, reply
    assert says in reply["error"]["message"], reply


def test_it_skips_an_oversized_stdio_line_unread_and_answers_the_next(alice, alice_key):
    import io

    from mcp_core.mcp.stdio import read_lines, serve

    stdin = io.BytesIO(
        b'{"jsonrpc": "2.0", "id": 1, "pad": "'
        + b"p" * 5000
        + b'"}\n'
        + _line({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {}})
        + b"\n"
    )
    out = io.StringIO()
    serve(read_lines(stdin, limit=1000), out, alice_key)
    first, second = (json.loads(text) for text in out.getvalue().splitlines())
    assert (first["id"], first["error"]["code"]) == (None, INVALID_REQUEST)
    assert first["error"]["data"] == {"field": "message", "problem": "too_large", "limit": 1000}
    assert second == {"jsonrpc": "2.0", "id": 2, "result": {}}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_survives_hostile_input_in_a_real_stdio_process(alice, alice_key):
    """The real `manage.py mcp_stdio` process: every hostile line is answered (one line each,
    JSON-RPC errors), an oversized line included, and a valid request after them all still is;
    the process exits 0 when stdin closes."""
    import subprocess
    import sys

    from tests.mcp.conftest import ROOT, child_env

    limit = 64 * 1024
    lines = [line for _, line, _, _ in STDIO_CASES]
    lines.append(b'{"jsonrpc": "2.0", "id": 8, "method": "ping", "pad": "' + b"p" * (4 * limit) + b'"}')
    lines.append(_line({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {}}))
    result = subprocess.run(
        [sys.executable, "manage.py", "mcp_stdio"],
        input=b"\n".join(lines) + b"\n",
        cwd=ROOT,
        env=child_env(MCP_API_KEY=alice_key, REQUEST_MAX_BODY_BYTES=str(limit)),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    replies = [json.loads(text) for text in result.stdout.decode().splitlines()]
    assert len(replies) == len(lines)
    codes = [reply.get("error", {}).get("code") for reply in replies]
    assert codes == [code for _, _, code, _ in STDIO_CASES] + [INVALID_REQUEST, None]
    assert replies[-1] == {"jsonrpc": "2.0", "id": 9, "result": {}}
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("path", "method"), [("/api/v1/mcp/call", "post"), ("/mcp", "post"), ("/api/v1/mcp/services", "get")]
)
def test_it_refuses_a_host_not_allowed_as_json_on_the_machine_paths(path, method, client, alice_key):
    response = getattr(client, method)(
        path,
        headers={"Authorization": f"Bearer {alice_key}", "Host": "evil.example"},
        **({"data": b"{}", "content_type": "application/json"} if method == "post" else {}),
    )
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    text = json.dumps(response.json())
    assert "Host" in text and "evil" not in text


# The machine paths: what monitors and scrapers call. They read few headers (Authorization on
# /metrics, X-Request-ID everywhere through the middleware, Host), and a hostile value in any of
# them must get an answer of the path's own kind, never a 500 or a reflected value.
MACHINE_PATHS = ["/metrics", "/health/live", "/health/ready", "/health/"]


@pytest.mark.parametrize("path", MACHINE_PATHS)
def test_it_answers_hostile_headers_on_the_machine_paths_without_a_server_error(path, client, settings, db):
    settings.METRICS_TOKEN = "metrics-token-for-the-matrix"
    problems = []
    for header in ["Authorization", "X-Request-ID", "Accept"]:
        for label, value in HEADER_VALUES.items():
            response = client.get(path, headers={header: value})
            # 200/503: health as it is; 401/403: not allowed; 400: the header itself refused.
            if response.status_code not in (200, 400, 401, 403, 503):
                problems.append(f"{header} {label}: HTTP {response.status_code}")
            elif value in response.content.decode("utf-8", "replace") and label != "non-ASCII":
                problems.append(f"{header} {label}: the value is reflected")
    assert not problems, f"{path}:\n" + "\n".join(problems)
    if path == "/metrics":  # the baseline: the scraper's own token is let in
        allowed = client.get(path, headers={"Authorization": "Bearer metrics-token-for-the-matrix"})
        assert allowed.status_code == 200
