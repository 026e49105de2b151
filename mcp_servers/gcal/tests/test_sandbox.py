"""The sandbox's contract test against the discovery document the client library ships
(`calendar.v3.json`): every request the library sent in a run of every operation names a
method of the document with parameters it declares, every answer of the API matches the
method's response schema, and the sandbox refuses what Google refuses, in Google's envelope."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from mcp_servers.gcal import discovery
from mcp_servers.gcal.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

from .conftest import ALICE_USER

T0 = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def api(sandbox):
    """A fresh sandbox state, one user, and a requests session with its access token."""
    sandbox.reset()
    refresh = sandbox.state.add_user(ALICE_USER)
    token = requests.post(
        sandbox.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": DEMO_CLIENT_ID,
              "client_secret": DEMO_CLIENT_SECRET},
        timeout=5,
    ).json()["access_token"]  # fmt: skip
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.base = sandbox.url + "/calendar/v3/"  # type: ignore[attr-defined]
    yield session
    session.close()


def call(session, method: str, path: str, name: str, **kwargs):
    """One API call; its answer is checked against the method's response schema."""
    answer = session.request(method, session.base + path, timeout=5, **kwargs)
    found = discovery.match(method, path.split("?")[0])
    assert found is not None and found[0] == name, (method, path)
    response_schema = found[1].get("response")
    if answer.ok and response_schema:
        assert discovery.schema_problems(answer.json(), response_schema) == [], name
    return answer


def event_body(**extra):
    return {
        "summary": "x",
        "start": {"dateTime": T0.isoformat()},
        "end": {"dateTime": (T0 + HOUR).isoformat()},
        **extra,
    }


def test_it_answers_every_method_it_serves_in_the_documents_shapes(api):
    listed = call(api, "GET", "users/me/calendarList", "calendarList.list").json()
    assert listed["items"][0]["id"] == ALICE_USER
    cal = ALICE_USER.replace("@", "%40")
    made = call(
        api, "POST", f"calendars/{cal}/events", "events.insert", json=event_body(id="abcde12345")
    ).json()
    call(api, "GET", f"calendars/{cal}/events/abcde12345", "events.get")
    full = call(api, "GET", f"calendars/{cal}/events?maxResults=10", "events.list").json()
    assert full["nextSyncToken"] and [e["id"] for e in full["items"]] == ["abcde12345"]
    put = call(api, "PUT", f"calendars/{cal}/events/abcde12345", "events.update", json=event_body(summary="y"),
               headers={"If-Match": made["etag"]}).json()  # fmt: skip
    call(api, "PATCH", f"calendars/{cal}/events/abcde12345", "events.patch", json={"location": "here"},
         headers={"If-Match": put["etag"]})  # fmt: skip
    changes = call(
        api, "GET", f"calendars/{cal}/events?syncToken={full['nextSyncToken']}", "events.list"
    ).json()
    assert [e["id"] for e in changes["items"]] == ["abcde12345"]
    busy = call(api, "POST", "freeBusy", "freebusy.query", json={
        "timeMin": T0.isoformat(), "timeMax": (T0 + 2 * HOUR).isoformat(), "items": [{"id": ALICE_USER}, {"id": "x@y"}],
    }).json()  # fmt: skip
    assert (
        busy["calendars"][ALICE_USER]["busy"]
        and busy["calendars"]["x@y"]["errors"][0]["reason"] == "notFound"
    )
    channel = call(api, "POST", f"calendars/{cal}/events/watch", "events.watch",
                   json={"id": "chan1", "type": "web_hook", "address": "https://example.com/hook", "token": "t"}).json()  # fmt: skip
    assert call(api, "POST", "channels/stop", "channels.stop",
                json={"id": "chan1", "resourceId": channel["resourceId"]}).status_code == 204  # fmt: skip
    assert call(api, "DELETE", f"calendars/{cal}/events/abcde12345", "events.delete").status_code == 204
    gone = call(
        api, "GET", f"calendars/{cal}/events?syncToken={changes['nextSyncToken']}", "events.list"
    ).json()
    assert gone["items"][0]["status"] == "cancelled"


def test_it_sends_only_requests_the_document_declares_when_the_library_calls_it(world):
    """Every operation once through google-api-python-client; each request it sent is a
    method of the document with declared, valid parameters."""
    cal = world.alice_staff_calendar
    world.sandbox.add_event(cal, start=T0, end=T0 + HOUR)
    made = world.call("create_event", {"calendar_id": cal, "summary": "A", "start": T0.isoformat(),
                                       "end": (T0 + HOUR).isoformat()}, idempotency_key="c1")  # fmt: skip
    event = made.data["event"]
    world.call("create_event", {"calendar_id": cal, "summary": "A", "start": T0.isoformat(),
                                "end": (T0 + HOUR).isoformat()}, idempotency_key="c1")  # fmt: skip
    calls = [
        ("list_calendars", {}),
        ("list_events", {"calendar_id": cal, "time_min": T0.isoformat()}),
        (
            "get_free_busy",
            {"calendar_ids": [cal], "time_min": T0.isoformat(), "time_max": (T0 + HOUR).isoformat()},
        ),
        (
            "update_event",
            {"calendar_id": cal, "event_id": event["event_id"], "etag": event["etag"], "summary": "B"},
        ),
        ("sync_calendar", {"calendar_id": cal}),
        ("watch_calendar", {"calendar_id": cal}),
        ("sync_calendar", {"calendar_id": cal}),
        ("delete_event", {"calendar_id": cal, "event_id": event["event_id"]}),
        ("test_connection", {}),
    ]
    for operation, params in calls:
        assert world.call(operation, params).success, operation
    channel = world.sandbox.state.channels
    assert world.call("stop_watch", {"channel_id": next(iter(channel))}).success
    names = set()
    for request in world.sandbox.requests_to(r"^/calendar/v3/"):
        found = discovery.match(request.method, request.path[len("/calendar/v3/") :])
        assert found is not None, (request.method, request.path)
        names.add(found[0])
        assert discovery.parameter_problem(found[1], request.query) is None, (found[0], request.query)
        if request.body:
            assert found[1].get("request"), found[0]
            assert discovery.schema_problems(json.loads(request.body), found[1]["request"]) == [], found[0]
    assert names == {"calendarList.list", "events.list", "events.insert", "events.get", "events.patch",
                     "events.delete", "events.watch", "channels.stop", "freebusy.query"}  # fmt: skip


@pytest.mark.parametrize(
    ("query", "reason"),
    [("maxResults=0", "invalidParameter"), ("nonsense=1", "invalidParameter"), ("orderBy=title", "invalidParameter"),
     ("showDeleted=yes", "invalidParameter"), ("singleEvents=false&orderBy=startTime", "invalid")],
)  # fmt: skip
def test_it_refuses_parameters_the_document_does_not_allow(api, query, reason):
    answer = api.get(api.base + f"calendars/{ALICE_USER}/events?{query}", timeout=5)
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["errors"][0]["reason"] == reason and error["code"] == 400


def test_it_refuses_a_sync_token_with_a_time_filter_and_answers_410_for_an_expired_one(sandbox, api):
    token = api.get(api.base + f"calendars/{ALICE_USER}/events", timeout=5).json()["nextSyncToken"]
    mixed = api.get(
        api.base
        + f"calendars/{ALICE_USER}/events?syncToken={token}&timeMin={T0.isoformat()}".replace("+", "%2B"),
        timeout=5,
    )
    assert mixed.status_code == 400
    sandbox.expire_sync_tokens(ALICE_USER)
    gone = api.get(api.base + f"calendars/{ALICE_USER}/events?syncToken={token}", timeout=5)
    assert gone.status_code == 410 and gone.json()["error"]["errors"][0]["reason"] == "fullSyncRequired"


def test_it_answers_conflicts_and_preconditions_as_google_does(api):
    base = api.base + f"calendars/{ALICE_USER}/events"
    first = api.post(base, json=event_body(id="abcde12345"), timeout=5).json()
    duplicate = api.post(base, json=event_body(id="abcde12345"), timeout=5)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["errors"][0]["reason"] == "duplicate"
    assert api.post(base, json=event_body(id="UPPER_case!"), timeout=5).status_code == 400
    assert (
        api.post(base, json={"summary": "no times"}, timeout=5).json()["error"]["errors"][0]["reason"]
        == "required"
    )
    api.patch(f"{base}/abcde12345", json={"summary": "moved"}, timeout=5)
    stale = api.put(f"{base}/abcde12345", json=event_body(), headers={"If-Match": first["etag"]}, timeout=5)
    assert stale.status_code == 412 and stale.json()["error"]["errors"][0]["reason"] == "conditionNotMet"
    assert api.delete(f"{base}/abcde12345", headers={"If-Match": first["etag"]}, timeout=5).status_code == 412
    assert api.delete(f"{base}/abcde12345", timeout=5).status_code == 204
    assert api.delete(f"{base}/abcde12345", timeout=5).status_code == 410


def test_it_refuses_calls_without_a_valid_token_and_calendars_not_shared(sandbox, api):
    anonymous = requests.get(api.base + "users/me/calendarList", timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["status"] == "UNAUTHENTICATED"
    other = sandbox.state.add_calendar("someone@else.example")
    assert api.get(api.base + f"calendars/{other}/events", timeout=5).status_code == 404
    assert api.post(api.base + f"calendars/{ALICE_USER}/events/watch", json={
        "id": "c", "type": "web_hook", "address": "http://plain.example/hook"}, timeout=5).status_code == 400  # fmt: skip


def test_it_grants_tokens_for_codes_refresh_tokens_and_service_account_jwts(sandbox):
    sandbox.reset()
    sandbox.state.add_user(ALICE_USER)
    consent = requests.get(sandbox.url + "/o/oauth2/v2/auth", params={
        "client_id": DEMO_CLIENT_ID, "redirect_uri": "https://askpro.example.com/back", "response_type": "code",
        "scope": "https://www.googleapis.com/auth/calendar", "state": "s1", "access_type": "offline",
    }, allow_redirects=False, timeout=5)  # fmt: skip
    back = parse_qs(urlsplit(consent.headers["Location"]).query)
    assert consent.status_code == 302 and back["state"] == ["s1"]
    form = {"grant_type": "authorization_code", "code": back["code"][0], "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET, "redirect_uri": "https://askpro.example.com/back"}  # fmt: skip
    granted = requests.post(sandbox.url + "/token", data=form, timeout=5).json()
    assert granted["refresh_token"] and granted["token_type"] == "Bearer"
    assert (
        requests.post(sandbox.url + "/token", data=form, timeout=5).json()["error"] == "invalid_grant"
    )  # used once
    wrong_client = requests.post(sandbox.url + "/token", data={**form, "client_secret": "nope"}, timeout=5)
    assert wrong_client.status_code == 401
    key = sandbox.state.add_service_account("sa@p.iam.gserviceaccount.com")
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": key["client_email"], "scope": "https://www.googleapis.com/auth/calendar",
              "aud": sandbox.url + "/token", "iat": now, "exp": now + 3600}  # fmt: skip
    signed = jwt.encode(claims, key["private_key"], algorithm="RS256")
    jwt_grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": signed}
    assert requests.post(sandbox.url + "/token", data=jwt_grant, timeout=5).json()["access_token"]
    forged = jwt.encode(
        {**claims, "iss": key["client_email"]}, "not-the-service-accounts-key-at-all", algorithm="HS256"
    )
    refused = requests.post(sandbox.url + "/token", data={**jwt_grant, "assertion": forged}, timeout=5)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    delegated = jwt.encode({**claims, "sub": ALICE_USER}, key["private_key"], algorithm="RS256")
    not_allowed = requests.post(sandbox.url + "/token", data={**jwt_grant, "assertion": delegated}, timeout=5)
    assert not_allowed.status_code == 401 and not_allowed.json()["error"] == "unauthorized_client"


def test_it_answers_injected_rate_limits_in_googles_shape(api, sandbox):
    sandbox.inject_fault(status=403, count=1)
    answer = api.get(api.base + "users/me/calendarList", timeout=5)
    assert answer.status_code == 403 and answer.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"
