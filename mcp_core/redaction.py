"""Redaction of secrets in anything we store or send (audit params, Sentry events).

No Django models here: settings import this module (through mcp_core.sentry) before apps load.
"""

from __future__ import annotations

import math
import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|credential|private|signature|card|cvc|iban)",
    re.IGNORECASE,
)
# Values that are secrets whatever their key is called: our keys, Stripe keys, webhook secrets.
_EMBEDDED_SECRET = re.compile(r"(askp_[0-9a-f]{10}_\S+|(sk|rk)_(live|test)_\w+|whsec_\w+)")
_SECRET_VALUE = re.compile(
    r"^(askp_[0-9a-f]{10}_|sk_(live|test)_|rk_(live|test)_|whsec_|key_[A-Za-z0-9]{16,})"
)
MAX_PARAM_CHARS = 2000


def redact(value: Any, *, depth: int = 0) -> Any:
    """A copy of params with secret-looking keys and values replaced; long strings cut."""
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        return {
            _no_nul(str(k)): REDACTED if _SECRET_NAME.search(str(k)) else redact(v, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, depth=depth + 1) for v in value[:100]]
    if isinstance(value, str):
        if _SECRET_VALUE.match(value):
            return REDACTED
        value = _no_nul(value)
        return value if len(value) <= MAX_PARAM_CHARS else value[:MAX_PARAM_CHARS] + "…"
    if isinstance(value, float) and not math.isfinite(value):
        # JSON (and PostgreSQL's jsonb) has no Infinity/NaN; `1e400` parses to inf and
        # would otherwise make the audit insert fail, losing the row.
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:MAX_PARAM_CHARS]


def _no_nul(text: str) -> str:
    """Text every column and JSON encoder accepts: jsonb and text columns refuse NUL, and UTF-8
    has no lone surrogates (JSON input may carry "\\udc80"); either would lose the audit row."""
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


storable_text = _no_nul


def redact_text(text: str) -> str:
    """Replace secret-looking tokens embedded in free text (log lines, source context)."""
    return _EMBEDDED_SECRET.sub(REDACTED, text)
