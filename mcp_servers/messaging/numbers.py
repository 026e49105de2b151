"""Customers' phone numbers: validated and written in E.164 by `phonenumbers` (libphonenumber's
rules per country), with the tenant's country as the region for numbers given without +."""

from __future__ import annotations

import phonenumbers

from mcp_core.contracts import ErrorCode, MCPError

MAX_INPUT_CHARS = 40


def to_e164(raw: str, country: str, *, field: str = "to") -> str:
    """+4915112345678 from "0151 1234 5678" (country DE), "+49 151 …" or "0049151…"; anything
    that is not a valid number for its country is refused naming the field."""
    text = (raw or "").strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:") :].strip()
    if not text:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, f"{field}: a phone number is required", details={"field": field}
        )
    if len(text) > MAX_INPUT_CHARS:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{field}: longer than {MAX_INPUT_CHARS} characters; not a phone number",
            details={"field": field},
        )
    try:
        parsed = phonenumbers.parse(text, (country or "DE").upper())
    except phonenumbers.NumberParseException as exc:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR, f"{field}: not a phone number ({exc._msg})", details={"field": field}
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{field}: not a valid number for {phonenumbers.region_code_for_number(parsed) or 'any country'}",
            details={"field": field},
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_e164(value: str) -> bool:
    try:
        return to_e164(value, "DE") == value
    except MCPError:
        return False
