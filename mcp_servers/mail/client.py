"""Sending through Django's email framework: one connection per tenant account, SMTP
(django.core.mail's backend) or a provider's API through django-anymail, within the call's
deadline, every failure mapped to an MCP error that names no credential.

The backend is chosen per tenant and passed to get_connection() explicitly, so the
deployment's own EMAIL_BACKEND (the site's mails to operators) is not involved.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from django.core.mail import BadHeaderError, EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from mcp_core.contracts import ErrorCode, MCPError, OperationContext

from .models import PROVIDERS, EmailAccount

logger = logging.getLogger(__name__)

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
SEND_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Transport:
    """How one tenant sends: its backend's dotted path and keyword arguments (secrets never
    in repr)."""

    name: str  # "smtp" or the provider
    backend: str
    options: dict[str, Any]

    def __repr__(self) -> str:
        return f"Transport({self.name!r})"


def transport_for(account: EmailAccount) -> Transport:
    if account.provider:
        backend, key_name = PROVIDERS[account.provider]
        options: dict[str, Any] = {key_name: account.api_key}
        if account.provider == "mailgun" and account.sender_domain:
            options["sender_domain"] = account.sender_domain
        return Transport(account.provider, backend, options)
    security = account.smtp_security
    return Transport(
        "smtp",
        SMTP_BACKEND,
        {
            "host": account.smtp_host,
            "port": account.smtp_port,
            "username": account.smtp_username or "",
            "password": account.smtp_password or "",
            "use_tls": security == EmailAccount.Security.STARTTLS,
            "use_ssl": security == EmailAccount.Security.SSL,
        },
    )


def _timeout(ctx: OperationContext | None, what: str) -> float:
    if ctx is None:
        return SEND_TIMEOUT_S
    remaining = ctx.remaining()
    if remaining <= 0:
        raise MCPError(ErrorCode.TIMEOUT, f"email: the call's deadline passed before {what}")
    return min(SEND_TIMEOUT_S, remaining)


def connection(transport: Transport, timeout: float) -> BaseEmailBackend:
    options = dict(transport.options)
    if transport.name == "smtp":
        options["timeout"] = timeout
    return get_connection(transport.backend, fail_silently=False, **options)


def send(ctx: OperationContext | None, transport: Transport, message: EmailMessage) -> str:
    """Send one message; the provider's message id where it gives one ("" for SMTP)."""
    started, status = time.perf_counter(), "ok"
    try:
        backend = connection(transport, _timeout(ctx, "sending"))
        message.connection = backend
        sent = message.send(fail_silently=False)
        if not sent:
            status = "refused"
            raise MCPError(ErrorCode.UPSTREAM_ERROR, f"email: {transport.name} did not accept the message")
        anymail = getattr(message, "anymail_status", None)
        return str(getattr(anymail, "message_id", "") or "") if anymail is not None else ""
    except MCPError:
        raise
    except Exception as exc:  # every backend failure, mapped below
        status = type(exc).__name__
        raise map_error(exc, transport.name, "sending") from None
    finally:
        logger.info(
            "upstream email %s send -> %s in %.1f ms",
            transport.name,
            status,
            (time.perf_counter() - started) * 1000,
        )


def check_smtp(ctx: OperationContext | None, transport: Transport, *, timeout: float | None = None) -> str:
    """Connect, EHLO, STARTTLS/log in as configured, NOOP and quit: the server's greeting."""
    options = transport.options
    limit = timeout if timeout is not None else _timeout(ctx, "connecting")
    try:
        cls = smtplib.SMTP_SSL if options["use_ssl"] else smtplib.SMTP
        with cls(timeout=limit) as smtp:
            _, greeting = smtp.connect(options["host"], options["port"])
            smtp.ehlo()
            if options["use_tls"]:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if options["username"]:
                smtp.login(options["username"], options["password"])
            smtp.noop()
            return (greeting or b"").decode("utf-8", "replace").split("\n")[0][:200]
    except Exception as exc:
        raise map_error(exc, "smtp", "connecting") from None


def map_error(exc: BaseException, transport: str, what: str) -> MCPError:
    """A backend's exception -> an MCP error. The SMTP server's reply is passed on (it names
    no credential); an authentication failure says only that."""
    details: dict[str, Any] = {"transport": transport}
    if isinstance(exc, BadHeaderError):  # Django refuses a line break in a header value
        return MCPError(
            ErrorCode.VALIDATION_ERROR,
            "email: a header value (sender name, subject) contains a line break",
            details=details,
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        details["smtp_code"] = exc.smtp_code
        return MCPError(
            ErrorCode.UPSTREAM_ERROR,
            f"email: the SMTP server rejected the username or password ({what}, {exc.smtp_code})",
            details=details,
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (None, b""))
        details["smtp_code"] = code
        return MCPError(
            ErrorCode.UPSTREAM_ERROR,
            f"email: the SMTP server refused the recipient ({code} {_reply(reply)})",
            details=details,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        details["smtp_code"] = exc.smtp_code
        return MCPError(
            ErrorCode.UPSTREAM_ERROR,
            f"email: the SMTP server refused it ({what}, {exc.smtp_code} {_reply(exc.smtp_error)})",
            details=details,
        )
    # Before OSError: anymail's HTTP errors are also requests exceptions (IOError).
    if isinstance(exc, AnymailRecipientsRefused):
        return MCPError(
            ErrorCode.UPSTREAM_ERROR, f"email: {transport} refused the recipient", details=details
        )
    if isinstance(exc, AnymailError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        details["upstream_status"] = status
        return MCPError(
            ErrorCode.UPSTREAM_ERROR, f"email: {transport} failed ({what}, HTTP {status})", details=details
        )
    if isinstance(exc, socket.timeout | TimeoutError):
        return MCPError(ErrorCode.UPSTREAM_ERROR, f"email: the {transport} server did not answer in time ({what})", details=details)  # fmt: skip
    if isinstance(exc, smtplib.SMTPException | OSError):
        return MCPError(
            ErrorCode.UPSTREAM_ERROR,
            f"email: the {transport} server cannot be reached ({what}: {type(exc).__name__})",
            details=details,
        )
    logger.warning("email: unexpected %s from the %s backend", type(exc).__name__, transport)
    return MCPError(ErrorCode.UPSTREAM_ERROR, f"email: {transport} failed ({what})", details=details)


def _reply(reply: Any) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:200]
