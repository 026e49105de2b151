"""The documented rules update_agent_prompt applies before anything is sent to Retell."""

from __future__ import annotations

from mcp_servers.retell.prompt_rules import MAX_LENGTH, MIN_LENGTH, validate_prompt

from .conftest import VALID_PROMPT


def _problems(prompt: str) -> set[str]:
    return {error["problem"] for error in validate_prompt(prompt)}


def test_it_accepts_a_complete_prompt():
    assert validate_prompt(VALID_PROMPT) == []


def test_it_accepts_an_english_prompt():
    prompt = (
        "Greeting: welcome every caller warmly on behalf of the practice. Services: explain our service "
        "offering briefly. Appointment: book, move or cancel appointments for {{ caller_name }}."
    )
    assert validate_prompt(prompt) == []


def test_it_bounds_the_length():
    assert "too_short" in _problems("Begrüßung Service Termin")
    assert "too_short" in _problems(" " * 500 + "Begrüßung Service Termin")  # spaces do not count
    assert "too_long" in _problems(VALID_PROMPT + "x" * MAX_LENGTH)
    assert len(VALID_PROMPT.strip()) >= MIN_LENGTH


def test_it_names_each_missing_topic():
    assert _problems("Hallo. " * 30) >= {"missing_greeting", "missing_services", "missing_appointments"}
    assert _problems(VALID_PROMPT.replace("Termin", "Zeit").replace("Termine", "Zeiten")) == {
        "missing_appointments"
    }


def test_it_refuses_broken_placeholders():
    assert _problems(VALID_PROMPT + " {{}}") == {"bad_placeholder"}
    assert _problems(VALID_PROMPT + " {{first name}}") == {"bad_placeholder"}
    assert _problems(VALID_PROMPT + " {{name") == {"bad_placeholder"}


def test_it_refuses_credentials_in_a_prompt():
    for secret in ("key_a1b2c3d4e5f60718293a", "sk_live_abcdefgh12345678", "cal_live_0123456789abcdef01"):
        assert _problems(f"{VALID_PROMPT} {secret}") == {"contains_secret"}, secret
