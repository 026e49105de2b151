"""One handler module per provider: `handle(event) -> str` applies a verified event to our
records idempotently (the same event twice leaves the same state) and returns a short note of
what it did. Raising means "try again later" (the service retries, then dead-letters)."""


class HandlerError(Exception):
    """The event cannot be applied (yet): retried with backoff, then dead-lettered."""
