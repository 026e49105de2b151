"""What the SMS and WhatsApp messages say, in the customer's language (German or English), and
the replies a customer may send to a reminder. Email has its own templates on the email server.

"CANCEL" is also one of Twilio's opt-out keywords: a customer who answers it is opted out by
Twilio as well; the reminder therefore suggests NO / ABSAGEN, and still accepts CANCEL.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

LANGUAGES = ("de", "en")

TEXTS = {
    "de": {
        "confirmation": "{company}: Ihr Termin am {date} um {time} Uhr ist gebucht. Wir freuen uns auf Sie!",
        "rescheduled": "{company}: Ihr Termin wurde verlegt auf {date} um {time} Uhr.",
        "cancellation": "{company}: Ihr Termin am {date} um {time} Uhr wurde abgesagt.",
        "reminder": "{company}: Erinnerung an Ihren Termin am {date} um {time} Uhr. "
        "Antworten Sie JA zum Bestätigen oder ABSAGEN zum Absagen.",
        "confirmed": "{company}: Danke, Ihr Termin am {date} um {time} Uhr ist bestätigt.",
    },
    "en": {
        "confirmation": "{company}: your appointment on {date} at {time} is booked. See you then!",
        "rescheduled": "{company}: your appointment has been moved to {date} at {time}.",
        "cancellation": "{company}: your appointment on {date} at {time} has been cancelled.",
        "reminder": "{company}: a reminder of your appointment on {date} at {time}. "
        "Reply YES to confirm or NO to cancel.",
        "confirmed": "{company}: thank you, your appointment on {date} at {time} is confirmed.",
    },
}
DATE_FORMAT = {"de": "%d.%m.%Y", "en": "%Y-%m-%d"}
TIME_FORMAT = {"de": "%H:%M", "en": "%H:%M"}

CONFIRM = "confirm"
CANCEL = "cancel"
REPLY_WORDS = {
    **dict.fromkeys(("CONFIRM", "YES", "Y", "OK", "JA", "J", "BESTÄTIGEN", "BESTAETIGEN"), CONFIRM),
    **dict.fromkeys(("CANCEL", "NO", "N", "NEIN", "ABSAGEN", "STORNIEREN"), CANCEL),
}
_EDGE = re.compile(r"^[\s\W_]+|[\s\W_]+$")


def reply_action(body: str) -> str | None:
    """CONFIRM or CANCEL when the whole reply is one of the words (case and punctuation ignored)."""
    word = _EDGE.sub("", (body or "")[:40]).upper()
    return REPLY_WORDS.get(word)


def language_of(customer_language: str, company_language: str) -> str:
    for code in (customer_language, company_language):
        code = (code or "").lower()[:2]
        if code in LANGUAGES:
            return code
    return "de"


def render(kind: str, language: str, *, company: str, starts_at: dt.datetime, zone: str) -> str:
    try:
        tz = ZoneInfo(zone or "Europe/Berlin")
    except (KeyError, ValueError):
        tz = ZoneInfo("Europe/Berlin")
    local = starts_at.astimezone(tz)
    return TEXTS[language][kind].format(
        company=company,
        date=local.strftime(DATE_FORMAT[language]),
        time=local.strftime(TIME_FORMAT[language]),
    )


def template_variables(language: str, *, name: str, starts_at: dt.datetime, zone: str) -> dict[str, str]:
    """The variables of an approved WhatsApp template: 1 name, 2 date, 3 time (local)."""
    try:
        tz = ZoneInfo(zone or "Europe/Berlin")
    except (KeyError, ValueError):
        tz = ZoneInfo("Europe/Berlin")
    local = starts_at.astimezone(tz)
    return {
        "1": name or "-",
        "2": local.strftime(DATE_FORMAT[language]),
        "3": local.strftime(TIME_FORMAT[language]),
    }
