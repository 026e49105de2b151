"""Consent: the keywords a carrier expects (STOP, START, HELP and their German equivalents),
and the rule that an opted-out customer is never messaged.

Twilio's Advanced Opt-Out already answers its own English keywords (STOP, START, HELP, …) and
blocks further messages to an opted-out number itself; we record them so that our own refusal
comes first and says why. The German keywords are ours alone: we record them and send the
confirmation a carrier would, once.
"""

from __future__ import annotations

import re

from django.utils import timezone

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError

from .models import OptOut

OPT_OUT = "opt_out"
OPT_IN = "opt_in"
HELP = "help"

# Twilio's default Advanced Opt-Out keywords (answered by Twilio itself).
TWILIO_KEYWORDS = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), OPT_OUT),
    **dict.fromkeys(("START", "YES", "UNSTOP"), OPT_IN),
    **dict.fromkeys(("HELP", "INFO"), HELP),
}
# German equivalents: we answer these ourselves.
GERMAN_KEYWORDS = {
    **dict.fromkeys(("STOPP", "ABMELDEN", "ABBESTELLEN", "KÜNDIGEN", "BEENDEN", "AUSTRAGEN"), OPT_OUT),
    **dict.fromkeys(("ANMELDEN", "JA", "WEITER"), OPT_IN),
    **dict.fromkeys(("HILFE",), HELP),
}
KEYWORDS = {**TWILIO_KEYWORDS, **GERMAN_KEYWORDS}
_EDGE_PUNCTUATION = re.compile(r"^[\s\W_]+|[\s\W_]+$")


def keyword_of(body: str) -> tuple[str, str] | None:
    """(KEYWORD, action) when the whole message is one keyword (case, surrounding spaces and
    punctuation ignored, as carriers do: "Stop." is STOP, "stop sending me ads" is not)."""
    word = _EDGE_PUNCTUATION.sub("", (body or "")[:40]).upper()
    action = KEYWORDS.get(word)
    return (word, action) if action else None


def reply_for(company: Company, word: str, action: str) -> str | None:
    """Our confirmation for a German keyword (Twilio answers its own English ones)."""
    if word not in GERMAN_KEYWORDS:
        return None
    if action == OPT_OUT:
        return (
            f"{company.name}: Sie erhalten keine Nachrichten mehr von uns. "
            "Mit START oder ANMELDEN melden Sie sich wieder an."
        )
    if action == OPT_IN:
        return f"{company.name}: Sie erhalten wieder Nachrichten von uns. Abmelden mit STOPP."
    return f"{company.name}: Hilfe erhalten Sie unter unserer Rufnummer. Abmelden mit STOPP."


def set_consent(
    company: Company, number: str, *, opted_out: bool, keyword: str, source: str, note: str = ""
) -> OptOut:
    """Record the customer's consent now (one row per tenant and number)."""
    row, _ = OptOut.objects.update_or_create(
        company=company,
        number=number,
        defaults={
            "opted_out": opted_out,
            "keyword": keyword[:20],
            "source": source,
            "note": note[:200],
            "changed_at": timezone.now(),
        },
    )
    return row


def opt_out_of(company: Company, number: str) -> OptOut | None:
    return OptOut.objects.filter(company=company, number=number, opted_out=True).first()


def opted_out_among(company: Company, numbers: set[str]) -> dict[str, OptOut]:
    """The opt-outs of these numbers, in one query (a batch's consent check)."""
    rows = OptOut.objects.filter(company=company, number__in=numbers, opted_out=True)
    return {row.number: row for row in rows}


def opted_out_error(company: Company, row: OptOut, *, field: str = "to") -> MCPError:
    """The refusal to message a customer who opted out, saying when and how."""
    how = f"sent {row.keyword}" if row.source == "keyword" and row.keyword else f"set by {row.source}"
    return MCPError(
        ErrorCode.CONFLICT,
        f"{field}: {row.number} opted out of messages from {company.name} ({how} on "
        f"{timezone.localtime(row.changed_at):%Y-%m-%d %H:%M}); they must send START to receive messages again",
        details={"field": field, "reason": "opted_out"},
    )


def ensure_may_message(company: Company, number: str, *, field: str = "to") -> None:
    """Refuse, saying why, to message a customer who opted out."""
    row = opt_out_of(company, number)
    if row is not None:
        raise opted_out_error(company, row, field=field)
