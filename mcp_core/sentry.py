"""Sentry initialisation with a before_send hook that scrubs secrets from every event."""

from __future__ import annotations

from typing import Any

from .redaction import REDACTED, redact, redact_text


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Redact secret-looking keys and values in request data, headers, extras and frame vars."""
    request = event.get("request")
    if isinstance(request, dict):
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: (
                    REDACTED
                    if k.lower()
                    in {
                        "authorization",
                        "cookie",
                        "stripe-signature",
                        "x-cal-signature-256",
                        "x-retell-signature",
                    }
                    else v
                )
                for k, v in headers.items()
            }
        for key in ("data", "cookies", "query_string"):
            if key in request:
                request[key] = redact(request[key]) if isinstance(request[key], dict | list) else REDACTED
    for key in ("extra", "contexts"):
        if isinstance(event.get(key), dict):
            event[key] = redact(event[key])
    for exception in (event.get("exception") or {}).get("values", []) or []:
        for frame in (exception.get("stacktrace") or {}).get("frames", []) or []:
            if isinstance(frame.get("vars"), dict):
                frame["vars"] = redact(frame["vars"])
            for key in ("pre_context", "post_context"):
                if isinstance(frame.get(key), list):
                    frame[key] = [redact_text(line) if isinstance(line, str) else line for line in frame[key]]
            if isinstance(frame.get("context_line"), str):
                frame["context_line"] = redact_text(frame["context_line"])
        if isinstance(exception.get("value"), str):
            exception["value"] = redact_text(exception["value"])
    return event


def init_sentry(*, dsn: str, environment: str, traces_sample_rate: float = 0.0) -> None:
    """Errors always; performance traces only when traces_sample_rate > 0 (SENTRY_TRACES_SAMPLE_RATE)."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        before_send=scrub_event,
        # None, not 0.0: with 0.0 the SDK still builds (unsampled) transactions on every request.
        traces_sample_rate=traces_sample_rate or None,
    )
