"""Settings for benchmark processes: production settings plus a bench-only URLconf and a trivial server."""

from askpro.settings import *  # noqa: F403
from askpro.settings import MCP_SERVERS

ROOT_URLCONF = "tests.bench.urls"
MCP_SERVERS = [*MCP_SERVERS, "tests.bench.echo_server.EchoServer"]
# Benchmark processes run with DEBUG off but without collectstatic (bench_admin renders admin
# pages in process): plain storage, which needs no manifest. bench_production serves the real
# thing (askpro.settings after collectstatic).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
