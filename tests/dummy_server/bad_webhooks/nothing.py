"""Named as a webhooks module, but declares no @webhook."""


def handle(event) -> str:
    return "undeclared"
