"""The Twilio sandbox's contract test: its requests and answers checked against Twilio's own
OpenAPI description (reference/specs/twilio_api_v2010.json), and its webhooks against the
signature the official library's RequestValidator computes."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from mcp_servers.messaging.client import DeadlineHttpClient
from mcp_servers.messaging.sandbox import SANDBOX_CLASS, TwilioSandbox, parse_form

SPEC_PATH = Path(settings.BASE_DIR).parent / "shared" / "reference" / "specs" / "twilio_api_v2010.json"
CUSTOMER = "+4915112345678"
SENDER = "+4930111111"


@cache
def spec() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        pytest.skip(f"the Twilio OpenAPI description is not at {SPEC_PATH}")
    return json.loads(SPEC_PATH.read_text())


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` -> JSON Schema's type union; $refs kept (resolved by the
    validator against the spec's components)."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _openapi_to_jsonschema(v) for k, v in node.items() if k not in ("nullable", "x-twilio", "examples")
    }
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    if node.get("nullable") and "$ref" in node:
        out = {"anyOf": [{"$ref": node["$ref"]}, {"type": "null"}]}
    return out


def schema_for(method: str, path: str, status: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(operation, response JSON Schema) of the spec entry matching a concrete request."""
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            operation = item[method.lower()]
            content = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            root = {
                "components": _openapi_to_jsonschema(spec()["components"]),
                **_openapi_to_jsonschema(content),
            }
            return operation, root
    raise AssertionError(f"{method} {path} is not in Twilio's API description")


def check_answer(method: str, path: str, response: requests.Response) -> dict[str, Any]:
    """The answer's status is one the spec declares, its body validates against the declared
    schema, and it carries exactly the declared properties (none invented, none left out)."""
    operation, schema = schema_for(method, path, response.status_code)
    body = response.json()
    jsonschema.Draft202012Validator(schema).validate(body)
    ref = operation["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
    declared = spec()["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]["properties"] if "$ref" in ref else ref["properties"]  # fmt: skip
    assert set(body) == set(declared)
    return body


def check_form(method: str, path: str, form: dict[str, str]) -> None:
    """A request's form fields are ones the spec declares, its required ones present, and each
    value matches the declared pattern."""
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            body = item[method.lower()]["requestBody"]["content"]["application/x-www-form-urlencoded"][
                "schema"
            ]
            assert set(body.get("required", [])) <= set(form)
            for name, value in form.items():
                assert name in body["properties"], f"{name} is not a parameter of {method} {template}"
                declared = body["properties"][name]
                if "pattern" in declared:
                    assert re.match(declared["pattern"], value), f"{name}={value!r}"
            return
    raise AssertionError(f"{method} {path} is not in Twilio's API description")


@pytest.fixture(scope="module")
def sb():
    server = TwilioSandbox(demo=False).start()
    yield server
    server.stop()


@pytest.fixture
def fresh(sb):
    sb.reset()
    sb.sink = None
    return sb


@pytest.fixture
def account(fresh):
    return fresh.add_account()


def library(sb: TwilioSandbox, sid: str, token: str) -> Client:
    return Client(sid, token, http_client=DeadlineHttpClient(sb.url), environment={})


def url(sb, sid: str, tail: str = "Messages.json") -> str:
    return f"{sb.url}/2010-04-01/Accounts/{sid}/{tail}"


# --- requests and answers against the description ---


def test_it_takes_the_librarys_form_post_and_answers_201_with_a_message_resource(fresh, account):
    sid, token = account
    sent = library(fresh, sid, token).messages.create(to=CUSTOMER, from_=SENDER, body="Hallo",
                                                      status_callback="https://example.com/cb")  # fmt: skip
    [request] = fresh.requests_to(r"/Messages\.json$")
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    check_form("POST", request.path, parse_form(request.body))
    assert sent.status == "queued" and re.match(r"^SM[0-9a-f]{32}$", sent.sid)
    response = requests.get(url(fresh, sid, f"Messages/{sent.sid}.json"), auth=(sid, token), timeout=5)
    body = check_answer("GET", f"/2010-04-01/Accounts/{sid}/Messages/{sent.sid}.json", response)
    assert (body["to"], body["from"], body["direction"], body["num_segments"]) == (
        CUSTOMER,
        SENDER,
        "outbound-api",
        "1",
    )


def test_it_answers_a_create_as_the_description_says(fresh, account):
    sid, token = account
    response = requests.post(
        url(fresh, sid), data={"To": CUSTOMER, "From": SENDER, "Body": "x"}, auth=(sid, token), timeout=5
    )
    assert response.status_code == 201
    check_answer("POST", f"/2010-04-01/Accounts/{sid}/Messages.json", response)


def test_it_pages_lists_as_the_description_says(fresh, account):
    sid, token = account
    api = library(fresh, sid, token)
    for n in range(5):
        api.messages.create(to=CUSTOMER, from_=SENDER, body=f"n{n}")
    response = requests.get(url(fresh, sid), params={"PageSize": 2}, auth=(sid, token), timeout=5)
    page = check_answer("GET", f"/2010-04-01/Accounts/{sid}/Messages.json", response)
    assert [m["body"] for m in page["messages"]] == ["n4", "n3"] and page["next_page_uri"]
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
    # The library follows next_page_uri on its own: every message, newest first, once.
    assert [m.body for m in api.messages.list(page_size=2)] == ["n4", "n3", "n2", "n1", "n0"]
    assert [m.body for m in api.messages.list(to=CUSTOMER, limit=3)] == ["n4", "n3", "n2"]
    assert api.messages.list(to="+4915199999999") == []


def test_it_answers_the_account_resource_as_described(fresh, account):
    sid, token = account
    response = requests.get(url(fresh, sid, "").rstrip("/") + ".json", auth=(sid, token), timeout=5)
    body = check_answer("GET", f"/2010-04-01/Accounts/{sid}.json", response)
    assert body["status"] == "active" and body["auth_token"] != token


@pytest.mark.parametrize(
    ("auth", "path_sid"), [(None, None), (("AC" + "0" * 32, "wrong"), None), ("own", "AC" + "1" * 32)]
)
def test_it_refuses_bad_basic_auth_with_twilios_error_body(fresh, account, auth, path_sid):
    sid, token = account
    if auth == "own":
        auth = (sid, token)
    response = requests.post(url(fresh, path_sid or sid), data={"To": CUSTOMER, "From": SENDER, "Body": "x"},
                             auth=auth, timeout=5)  # fmt: skip
    assert response.status_code == 401
    assert response.json() == {"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}  # fmt: skip


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": SENDER, "Body": "x"}, 21604),
        ({"To": CUSTOMER, "Body": "x"}, 21603),
        ({"To": CUSTOMER, "From": SENDER}, 21602),
        ({"To": "12345", "From": SENDER, "Body": "x"}, 21211),
        ({"To": CUSTOMER, "From": SENDER, "Body": "x" * 1601}, 21617),
        ({"To": CUSTOMER, "From": SENDER, "ContentSid": "HX" + "0" * 32}, 21655),
        ({"To": CUSTOMER, "MessagingServiceSid": "MGnope", "Body": "x"}, 21701),
    ],
)
def test_it_refuses_bad_messages_with_twilios_error_codes(fresh, account, form, code):
    sid, token = account
    response = requests.post(url(fresh, sid), data=form, auth=(sid, token), timeout=5)
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["status"]) == (code, 400) and body["more_info"].endswith(str(code))
    assert fresh.messages == {}


def test_it_raises_its_errors_in_the_library_as_twilio_rest_exceptions(fresh, account):
    sid, token = account
    with pytest.raises(TwilioRestException) as caught:
        library(fresh, sid, token).messages.create(to="12345", from_=SENDER, body="x")
    assert (caught.value.status, caught.value.code) == (400, 21211)
    with pytest.raises(TwilioRestException) as caught:
        library(fresh, sid, token).messages("SM" + "f" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_it_keeps_each_accounts_messages_to_itself(fresh, account):
    sid, token = account
    other_sid, other_token = fresh.add_account()
    sent = library(fresh, sid, token).messages.create(to=CUSTOMER, from_=SENDER, body="x")
    with pytest.raises(TwilioRestException) as caught:
        library(fresh, other_sid, other_token).messages(sent.sid).fetch()
    assert caught.value.status == 404
    assert library(fresh, other_sid, other_token).messages.list() == []


def test_it_refuses_a_recipient_who_sent_stop_to_that_sender(fresh, account):
    sid, token = account
    fresh.sink = lambda *args: None
    fresh.send_inbound("https://example.com/in", sid, SENDER, CUSTOMER, "STOP")
    with pytest.raises(TwilioRestException) as caught:
        library(fresh, sid, token).messages.create(to=CUSTOMER, from_=SENDER, body="x")
    assert caught.value.code == 21610
    fresh.send_inbound("https://example.com/in", sid, SENDER, CUSTOMER, "START")
    assert library(fresh, sid, token).messages.create(to=CUSTOMER, from_=SENDER, body="x").status == "queued"


# --- lifecycle and signed webhooks ---


def test_it_runs_the_lifecycle_and_posts_signed_status_callbacks(fresh, account):
    sid, token = account
    seen: list[tuple[str, dict[str, str], bytes]] = []
    fresh.sink = lambda u, h, b: seen.append((u, h, b))
    callback = "https://askpro.example.com/webhooks/twilio?tenant=acme"
    sent = library(fresh, sid, token).messages.create(
        to=CUSTOMER, from_=SENDER, body="x", status_callback=callback
    )
    while fresh.advance(sent.sid):
        pass
    statuses = [parse_form(body)["MessageStatus"] for _, _, body in seen]
    assert statuses == ["sending", "sent", "delivered"]
    validator = RequestValidator(token)
    for target, headers, body in seen:
        assert target == callback
        assert validator.validate(target, parse_form(body), headers["X-Twilio-Signature"])
        assert not RequestValidator("another token").validate(
            target, parse_form(body), headers["X-Twilio-Signature"]
        )
    fetched = library(fresh, sid, token).messages(sent.sid).fetch()
    assert fetched.status == "delivered" and fetched.price == "-0.07900" and fetched.price_unit == "USD"


def test_it_fails_numbers_told_to_fail_with_their_error_code(fresh, account):
    sid, token = account
    fresh.fail_numbers[CUSTOMER] = ("undelivered", 30003)
    sent = library(fresh, sid, token).messages.create(to=CUSTOMER, from_=SENDER, body="x")
    while fresh.advance(sent.sid):
        pass
    fetched = library(fresh, sid, token).messages(sent.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)


def test_it_fails_free_whatsapp_text_outside_the_window_with_63016(fresh, account):
    sid, token = account
    api = library(fresh, sid, token)
    outside = api.messages.create(to=f"whatsapp:{CUSTOMER}", from_=f"whatsapp:{SENDER}", body="x")
    while fresh.advance(outside.sid):
        pass
    assert api.messages(outside.sid).fetch().error_code == 63016
    fresh.sink = lambda *args: None
    fresh.send_inbound("https://example.com/in", sid, SENDER, CUSTOMER, "Hallo", whatsapp=True)
    inside = api.messages.create(to=f"whatsapp:{CUSTOMER}", from_=f"whatsapp:{SENDER}", body="x")
    while fresh.advance(inside.sid):
        pass
    assert api.messages(inside.sid).fetch().status == "delivered"


def test_it_delivers_signed_inbound_messages_over_http(fresh, account):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sid, token = account
    got: list[tuple[str, dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = f"http://127.0.0.1:{server.server_address[1]}/in?tenant=acme"
        fresh.send_inbound(target, sid, SENDER, CUSTOMER, "Hallo", whatsapp=True)
    finally:
        server.shutdown()
        server.server_close()
    [(path, headers, body)] = got
    form = parse_form(body)
    assert (form["From"], form["To"], form["Body"]) == (f"whatsapp:{CUSTOMER}", f"whatsapp:{SENDER}", "Hallo")
    assert RequestValidator(token).validate(target, form, headers["X-Twilio-Signature"])


def test_it_answers_injected_faults_with_twilios_error_body(fresh, account):
    sid, token = account
    fresh.inject_fault(status=429, count=1)
    response = requests.get(url(fresh, sid), auth=(sid, token), timeout=5)
    assert response.status_code == 429 and response.json()["code"] == 20429


def test_it_starts_as_run_sandbox_starts_it_with_the_demo_account():
    from mcp_servers.messaging.sandbox import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN

    server = SANDBOX_CLASS(host="127.0.0.1", port=0).start()
    try:
        response = requests.get(f"{server.url}/2010-04-01/Accounts/{DEMO_ACCOUNT_SID}.json",
                                auth=(DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN), timeout=5)  # fmt: skip
        assert response.status_code == 200 and server.service in settings.SANDBOX_PORTS
    finally:
        server.stop()


def test_it_detects_an_answer_or_form_that_breaks_the_description(fresh, account):
    sid, token = account
    response = requests.post(
        url(fresh, sid), data={"To": CUSTOMER, "From": SENDER, "Body": "x"}, auth=(sid, token), timeout=5
    )
    path = f"/2010-04-01/Accounts/{sid}/Messages.json"
    broken = response.json() | {"status": "teleported"}
    response._content = json.dumps(broken).encode()
    with pytest.raises(jsonschema.ValidationError):
        check_answer("POST", path, response)
    response._content = json.dumps(broken | {"status": "queued", "invented": 1}).encode()
    with pytest.raises(AssertionError):
        check_answer("POST", path, response)
    with pytest.raises(AssertionError):
        check_form("POST", path, {"To": CUSTOMER, "ContentSid": "not-a-sid"})
