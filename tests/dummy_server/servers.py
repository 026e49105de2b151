"""Test servers: one valid, and one for each mistake the system check must catch."""

from __future__ import annotations

import datetime as dt

from mcp_core.contracts import OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams, Params, Result
from mcp_core.server import MCPServer, operation


class EchoParams(Params):
    text: str


class EchoResult(Result):
    text: str


class EchoServer(MCPServer):
    """A correct server: the check has nothing to say about it."""

    name = "echo"
    description = "Echoes text."

    @operation(
        description="Echo the text back.", params=EchoParams, result=EchoResult, scope="read", read_only=True
    )
    def echo(self, ctx: OperationContext, params: EchoParams) -> EchoResult:
        return EchoResult(text=params.text)

    def health(self) -> HealthResult:
        return HealthResult(HealthStatus.HEALTHY)


class DuplicateDatabaseServer(EchoServer):
    """Claims the name of the real database server."""

    name = "database"


class ArrayResult(Result, array_like=True):
    """Encoded as a JSON array, so its schema is not an object."""

    value: int


class ArrayResultServer(EchoServer):
    name = "array_result"

    @operation(
        description="Answers with an array.",
        params=NoParams,
        result=ArrayResult,
        scope="read",
        read_only=True,
    )
    def as_array(self, ctx: OperationContext, params: NoParams) -> ArrayResult:
        return ArrayResult(value=1)


class NotAParamsStruct:
    """A plain class, not an mcp_core.schemas.Params."""


class PlainParamsServer(EchoServer):
    name = "plain_params"

    @operation(
        description="Takes a plain class.",
        params=NotAParamsStruct,
        result=EchoResult,
        scope="read",
        read_only=True,
    )
    def plain(self, ctx: OperationContext, params) -> EchoResult:
        return EchoResult(text="")


class Unschemable(Params):
    """A field type msgspec cannot describe in JSON Schema."""

    zone: dt.tzinfo


class UnschemableServer(EchoServer):
    name = "unschemable"

    @operation(
        description="Has a field without a schema.",
        params=Unschemable,
        result=EchoResult,
        scope="read",
        read_only=True,
    )
    def odd(self, ctx: OperationContext, params) -> EchoResult:
        return EchoResult(text="")


class WritesWithReadScopeServer(EchoServer):
    name = "sneaky"

    @operation(description="Writes but asks only for read.", params=NoParams, result=EchoResult, scope="read")
    def write_something(self, ctx: OperationContext, params: NoParams) -> EchoResult:
        return EchoResult(text="")


class NotAServer:
    name = "not_a_server"


class BadName(EchoServer):
    name = "Bad-Name"


class EchoWebhookServer(EchoServer):
    """Receives the `echohook` provider's webhooks."""

    name = "echowebhook"
    webhooks = "tests.dummy_server.webhooks"


class StripeAgainWebhookServer(EchoServer):
    """Declares webhooks of a provider the Stripe server already declares."""

    name = "stripeagain"
    webhooks = "tests.dummy_server.bad_webhooks.stripe_again"


class NoDeclarationWebhookServer(EchoServer):
    """Names a webhooks module that declares nothing."""

    name = "nodeclaration"
    webhooks = "tests.dummy_server.bad_webhooks.nothing"


class BadProviderWebhookServer(EchoServer):
    """Declares a provider whose name is no lower-case identifier."""

    name = "badprovider"
    webhooks = "tests.dummy_server.bad_webhooks.bad_name"


class MissingWebhooksModuleServer(EchoServer):
    """Names a webhooks module that does not exist."""

    name = "missingwebhooks"
    webhooks = "tests.dummy_server.no_such_webhooks"
