"""Declares a provider that the Stripe server already declares."""

from ..webhooks import _declare


@_declare("stripe")
def handle(event) -> str:
    return "never"
