"""Settings for the Celery worker subprocess of the tests: the real settings, plus a quick
redelivery sweep (so a low visibility timeout shows in seconds) and test-only handlers."""

import json
import os

from askpro.settings import *  # noqa: F403
from askpro.settings import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
WEBHOOK_HANDLERS = json.loads(os.environ.get("TEST_WEBHOOK_HANDLERS", "{}"))
