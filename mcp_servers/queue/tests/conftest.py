from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from tests.celery_worker import (
    celery_worker_factory,  # noqa: F401
)


def call_server(key, operation, params=None):
    return call_operation("queue", operation, params or {}, principal=api_key_authenticate(key))
