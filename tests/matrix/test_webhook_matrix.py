"""The webhook matrix (issue 11 §2): every webhook endpoint (one per provider a server declares
in the registry, mcp_core.webhooks) x every input class. Payload classes are sent *signed with the right
secret*, so it is the body itself that is refused, not the signature. Each gets a 4xx JSON
answer that says why (a `reason`, or the `field` refused at the door); nothing is stored
(no WebhookEvent); refusals past the door are counted per reason (RejectedDelivery).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from mcp_core.registry import get_registry
from mcp_core.tenancy import forget_tenant_secrets
from mcp_core.webhooks import SignatureError, WebhookDelivery, verified_json
from mcp_servers.retell.sandbox import sign_webhook as retell_sign
from mcp_servers.retell.webhooks import verify_retell
from mcp_servers.webhooks.models import RejectedDelivery, WebhookEvent

WEBHOOKS = get_registry().webhooks
VERIFIERS = {provider: hook.verify for provider, hook in WEBHOOKS.items()}
SIGNATURE_HEADERS = {provider: hook.signature_header for provider, hook in WEBHOOKS.items()}

SECRETS = {provider: f"matrix-secret-{provider}" for provider in WEBHOOKS}
TOLERANCE_S = {"stripe": 300, "retell": 300}  # Cal.com signs no timestamp
# How each timestamped provider's sandbox signer takes the signing time.
SIGNED_AT = {
    "stripe": lambda at: {"timestamp": int(at)},
    "retell": lambda at: {"timestamp_ms": int(at * 1000)},
}
# int() refuses more than 4,300 digits with a ValueError (it was a 500).
HUGE_TIMESTAMP = {
    "stripe": f"t={'1' * 4301},v1=" + "a" * 64,
    "retell": f"v={'1' * 4301},d=" + "a" * 64,
    "calcom": "1" * 4301,
}


@pytest.fixture(autouse=True)
def _secrets(settings):
    for provider, hook in WEBHOOKS.items():
        setattr(settings, hook.secret.platform_setting, SECRETS[provider])
    forget_tenant_secrets()
    yield
    forget_tenant_secrets()


def sign(provider: str, body: bytes, *, at: float | None = None) -> dict[str, str]:
    """The provider's own signature headers for `body` (signed `at` a Unix time, where it has one)."""
    signer = import_string(WEBHOOKS[provider].sandbox_signer)
    at_kwargs = SIGNED_AT[provider](at) if at is not None and provider in SIGNED_AT else {}
    headers = signer(body, SECRETS[provider], **at_kwargs)
    return {k: v for k, v in headers.items() if k.lower() == SIGNATURE_HEADERS[provider].lower()}


@dataclass
class Case:
    provider: str
    klass: str
    body: bytes
    headers: dict[str, str] | None  # None: signed with the right secret when the test runs
    status: int
    reason: str | None = None  # refused by verification: counted under this reason
    field: str | None = None  # refused at the door (middleware or view): names this field
    query: str = ""
    sign_offset: float = 0.0  # sign at now + this many seconds (cases are collected minutes early)

    def headers_now(self) -> dict[str, str]:
        if self.headers is not None:
            return self.headers
        return sign(self.provider, self.body, at=time.time() + self.sign_offset)

    @property
    def id(self) -> str:
        return f"{self.provider}: {self.klass}"


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _cases() -> list[Case]:
    cases: list[Case] = []
    depth = settings.REQUEST_MAX_JSON_DEPTH
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    for provider in VERIFIERS:
        header = SIGNATURE_HEADERS[provider]
        good = b'{"event": "x", "id": "evt_1", "triggerEvent": "PING"}'

        def add(
            klass,
            body,
            status,
            *,
            reason=None,
            field=None,
            headers=None,
            query="",
            offset=0.0,
            provider=provider,
        ):
            cases.append(Case(provider, klass, body, headers, status, reason, field, query, offset))

        # Payloads, correctly signed: authentic, but not a JSON object that can be stored as it is.
        add("not UTF-8", b'{"event": "\xff\xfe"}', 400, reason="bad_payload")
        add("lone surrogate in a string", b'{"event": "\\ud800"}', 400, reason="bad_payload")
        add("lone surrogate in a key", b'{"\\udfff": 1}', 400, reason="bad_payload")
        add("NUL in a string", b'{"event": "a\\u0000b"}', 400, reason="bad_payload")
        add("NUL in a key", b'{"a\\u0000": 1}', 400, reason="bad_payload")
        add("number out of range", b'{"event": "x", "amount": 1e400}', 400, reason="bad_payload")
        add("NaN", b'{"event": "x", "amount": NaN}', 400, reason="bad_payload")
        add("not JSON", b"event=x", 400, reason="bad_payload")
        for kind, text in (("array", b"[]"), ("string", b'"x"'), ("number", b"1"), ("null", b"null")):
            add(f"top level {kind}", text, 400, reason="bad_payload")
        # At the door (signed or not, the body is never parsed).
        add("nesting too deep", f'{{"event": {_deep(depth)}}}'.encode(), 400, field="body")
        add("over the size limit", b'{"event": "' + b"e" * limit + b'"}', 413, field="body")
        # Signature headers of absurd length or shape.
        add("signature header of absurd length", good, 400, field=header, headers={header: "a" * 5000})
        for label, value in (("NUL", "a\x00b"), ("lone surrogate", "a\ud800"), ("control character", "\x1b")):
            add(f"signature header with {label}", good, 400, field=header, headers={header: value})
        absurd = {
            "stripe": "t=" + "1" * 900 + ",v1=" + "a" * 64,
            "retell": "v=" + "1" * 150 + ",d=" + "a" * 64,
            "calcom": "sha256:" + "z" * 57,
        }[provider]
        add(
            "signature header of absurd shape",
            good,
            401,
            reason="malformed_signature",
            headers={header: absurd},
        )
        add("4,301-digit timestamp", good, 400, field=header, headers={header: HUGE_TIMESTAMP[provider]})
        add("no signature", good, 401, reason="missing_signature", headers={})
        # Timestamps outside the tolerance, in both directions.
        if provider in TOLERANCE_S:
            beyond = TOLERANCE_S[provider] + 60
            add(
                "timestamp too old",
                good,
                401,
                reason="stale_timestamp",
                offset=-beyond,
            )
            add(
                "timestamp in the future",
                good,
                401,
                reason="future_timestamp",
                offset=beyond,
            )
        # The tenant hint of a tenant's own account.
        for label, query in (
            ("NUL", "tenant=a%00"),
            ("not UTF-8", "tenant=%ED%A0%80"),
            ("too long", "tenant=" + "t" * 101),
        ):
            add(f"tenant hint with {label}", good, 400, field="tenant", query=query)
    return cases


CASES = _cases()


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_it_refuses_hostile_deliveries_saying_why_and_stores_nothing(case, client):
    path = f"/webhooks/{case.provider}" + (f"?{case.query}" if case.query else "")
    response = client.post(path, data=case.body, content_type="application/json", headers=case.headers_now())
    assert response.status_code == case.status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    answer = response.json()
    if case.reason:
        assert answer["reason"] == case.reason, answer
        assert answer["message"] and answer["error"] in ("invalid signature", "invalid payload")
        counted = {r.reason: r.count for r in RejectedDelivery.objects.filter(provider=case.provider)}
        assert counted == {case.reason: 1}
    else:
        assert answer["field"] == case.field, answer
        assert answer["error"].startswith(f"{case.field}:"), answer
        assert not RejectedDelivery.objects.exists()
    if case.status == 413:
        assert answer["limit"] == settings.WEBHOOK_MAX_BODY_BYTES
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("provider", list(VERIFIERS))
def test_it_accepts_the_matrix_baseline(provider, client):
    """A well-formed, signed delivery of the same shape is stored: the refusals above are the
    hostile part's doing."""
    body = b'{"event": "x", "id": "evt_1", "triggerEvent": "PING"}'
    response = client.post(
        f"/webhooks/{provider}", data=body, content_type="application/json", headers=sign(provider, body)
    )
    assert response.status_code in (200, 202), response.content
    assert WebhookEvent.objects.filter(provider=provider).count() == 1


@pytest.mark.parametrize("direction", [-1, 1])
def test_it_refuses_retell_timestamps_outside_the_tolerance_in_either_direction(direction):
    body = b'{"event": "x"}'
    now_ms = 1_800_000_000_000
    stamp = now_ms + direction * 300_001
    headers = retell_sign(body, "k", timestamp_ms=stamp)
    with pytest.raises(SignatureError) as refused:
        verify_retell(body, headers["x-retell-signature"], "k", now_ms=now_ms)
    assert refused.value.reason == ("future_timestamp" if direction > 0 else "stale_timestamp")
    ok = retell_sign(body, "k", timestamp_ms=now_ms + direction * 299_000)
    assert verify_retell(body, ok["x-retell-signature"], "k", now_ms=now_ms) == {"event": "x"}


@pytest.mark.parametrize("provider", list(VERIFIERS))
def test_it_refuses_a_4301_digit_timestamp_in_the_verifier_itself(provider):
    """In-process callers skip the middleware: the verifier bounds the shape before int()."""
    with pytest.raises(SignatureError) as refused:
        VERIFIERS[provider](WebhookDelivery(b"{}", {}, "", HUGE_TIMESTAMP[provider]), "secret")
    assert refused.value.reason == "malformed_signature"


def test_it_parses_a_signed_payload_no_deeper_than_the_limit():
    depth = settings.REQUEST_MAX_JSON_DEPTH
    assert verified_json(json.dumps({"a": json.loads("[" * (depth - 1) + "]" * (depth - 1))}).encode())
    with pytest.raises(SignatureError) as refused:
        verified_json(("[" * 100_000).encode())
    assert refused.value.reason == "bad_payload" and "deeper" in refused.value.message
