"""The rules an agent prompt must pass before update_agent_prompt sends it to Retell.

A receptionist prompt that is too short, lacks the parts every AskPro agent needs, breaks a
dynamic-variable placeholder or carries a credential would go live on real phone lines, so
it is refused with every problem listed (field `prompt`, one entry per rule):

- length: at least MIN_LENGTH and at most MAX_LENGTH characters (after trimming);
- required content: it must mention a greeting, the services, and appointment booking —
  each in German or English (Begrüßung/greeting, Service/Leistung, Termin/appointment);
- placeholders: Retell dynamic variables are `{{name}}` with a plain identifier; an empty,
  unbalanced or malformed placeholder is refused;
- secrets: text that looks like an API key (Retell `key_…`, Stripe `sk_…`/`rk_…`, Cal.com
  `cal_…`) is refused — a prompt is read aloud and logged by Retell.
"""

from __future__ import annotations

import re

MIN_LENGTH = 100
MAX_LENGTH = 32_000

REQUIRED_TOPICS: dict[str, tuple[str, ...]] = {
    "greeting": ("begrüßung", "begrüß", "greeting", "greet", "willkommen", "welcome"),
    "services": ("service", "leistung", "dienstleistung"),
    "appointments": ("termin", "appointment", "booking", "buchung"),
}

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_IDENTIFIER = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*$")
_SECRET = re.compile(r"\b(key_[0-9a-f]{16,}|(sk|rk)_(live|test)_[0-9A-Za-z]{8,}|cal_(live_)?[0-9a-f]{16,})\b")


def validate_prompt(prompt: str) -> list[dict[str, str]]:
    """Every rule the prompt breaks, as {field, problem, message}; empty when it passes."""
    errors: list[dict[str, str]] = []

    def fail(problem: str, message: str) -> None:
        errors.append({"field": "prompt", "problem": problem, "message": f"prompt: {message}"})

    text = prompt.strip()
    if len(text) < MIN_LENGTH:
        fail("too_short", f"has {len(text)} characters; at least {MIN_LENGTH} are required")
    if len(text) > MAX_LENGTH:
        fail("too_long", f"has {len(text)} characters; at most {MAX_LENGTH} are allowed")
    lowered = text.lower()
    for topic, words in REQUIRED_TOPICS.items():
        if not any(word in lowered for word in words):
            fail(
                f"missing_{topic}",
                f"must cover {topic} (mention one of: {', '.join(words[:3])})",
            )
    for match in _PLACEHOLDER.finditer(text):
        if not _IDENTIFIER.match(match.group(1)):
            fail("bad_placeholder", f"placeholder {match.group(0)[:40]!r} is not {{{{identifier}}}}")
    if text.count("{{") != text.count("}}"):
        fail("bad_placeholder", "has unbalanced {{ }} braces")
    if _SECRET.search(text):
        fail("contains_secret", "contains what looks like an API key; remove it")
    return errors
