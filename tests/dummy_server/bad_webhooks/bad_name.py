"""A provider name that cannot be a URL segment and a 10-character column."""

from ..webhooks import _declare


@_declare("Not-A-Provider")
def handle(event) -> str:
    return "never"
