"""Test settings: the real PostgreSQL and Redis on this machine, unless the environment says otherwise."""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/askpro")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
# Every test run gets its own cache namespace so that concurrent runs never see each other's keys;
# under pytest-xdist each worker its own too (workers inherit the controller's environment, so the
# worker's name is appended to whatever prefix was inherited).
os.environ.setdefault("CACHE_KEY_PREFIX", f"askpro-test-{os.getpid()}")
if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ["CACHE_KEY_PREFIX"].endswith(
    "-" + os.environ["PYTEST_XDIST_WORKER"]
):
    os.environ["CACHE_KEY_PREFIX"] += "-" + os.environ["PYTEST_XDIST_WORKER"]
# pytest-django runs with DEBUG off, where tenant credentials need a real key: a fixed test-only one.
os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEY", "End74mnnIlAcXaUnHm5cCb0erJJmlxvz7l8CQ8Li4aM=")

from .settings import *  # noqa: E402, F403
from .settings import DATABASES  # noqa: E402

# A per-process test database so that concurrent runs on one machine do not collide.
DATABASES["default"].setdefault("TEST", {})
DATABASES["default"]["TEST"]["NAME"] = os.environ.get("TEST_DATABASE_NAME", f"test_askpro_{os.getpid()}")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = None
# Tests look a key up on every call, so revoking one takes effect at once; the cache has its own test.
MCP_AUTH_CACHE_SECONDS = 0
# Tests read the audit right after a call; batched recording has its own tests (which set
# MCP_AUDIT_FLUSH_MS in a server process's environment, or override the setting).
if "MCP_AUDIT_FLUSH_MS" not in os.environ:
    MCP_AUDIT_FLUSH_MS = 0
# pytest-django runs with DEBUG off but the suite never runs collectstatic: WhiteNoise finds
# static files through the app finders as in development, instead of warning that STATIC_ROOT
# is empty (tests/production serves collectstatic's output with the production settings).
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
# Tests never reach the public MCP Registry: the marketplace's own tests start the sandbox
# registry; elsewhere (admin pages visited in bulk) a refused local port answers at once.
if "FEDERATION_REGISTRY_URL" not in os.environ:
    FEDERATION_REGISTRY_URL = "http://127.0.0.1:9"
