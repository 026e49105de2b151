"""Settings for the AskPro control plane, read from the environment (every variable: docs/configuration.md).

With nothing set, the project runs on embedded defaults: a SQLite file, the in-process
cache and eager Celery, so that `make run` works on a bare machine.
"""

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from .env import (
    check_redis_url,
    check_sentinel_master,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    parse_database_url,
    parse_host_ports,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY: required when DEBUG is off (set DEBUG=1 for development)")
    SECRET_KEY = "askpro-insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Key for tenant credentials at rest (Fernet, 32 url-safe base64 bytes). Without it, a key
# is derived from SECRET_KEY, which is only acceptable for development.
CREDENTIALS_ENCRYPTION_KEY = env_secret("CREDENTIALS_ENCRYPTION_KEY")

INSTALLED_APPS = [
    "dashboard.apps.AskproAdminConfig",  # replaces django.contrib.admin with our AdminSite
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as our own static files (no CDN)
    "django_celery_beat",
    "health_check",  # /health/ (its templates)
    "askpro",
    "mcp_core",
    "mcp_servers.database",
    "mcp_servers.calcom",
    "mcp_servers.webhooks",
    "mcp_servers.queue",
    "mcp_servers.sentry",
    "mcp_servers.ui_audit",
    "mcp_servers.retell",
    "mcp_servers.stripe",
    "mcp_servers.messaging",
    "mcp_servers.mail",
    "mcp_servers.gcal",
    "mcp_servers.analytics",
    "mcp_servers.federation",
    # Appointment confirmations and reminders: a workflow over the messaging, email and Cal.com
    # operations (through the pipeline only); after askpro, whose Appointment admin it extends.
    "notifications",
    "dashboard",
    # OAuth 2.1 for MCP clients (Claude.ai connectors): django-oauth-toolkit's models and views,
    # configured and extended by mcp_core.oauth (docs/oauth.md).
    "oauth2_provider",
    "mcp_core.oauth",
]

MIDDLEWARE = [
    # Outermost: counts every answer for /metrics, refusals by the middleware below included.
    "mcp_core.prometheus.PrometheusMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Oversized bodies, over-deep JSON and malformed headers are refused as JSON before any
    # view or parser sees them (docs/input-limits.md).
    "mcp_core.limits.RequestLimitsMiddleware",
    # Static files from the process itself (docs/deployment.md, "Static files"): before anything
    # that reads a session or a database.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "askpro.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "askpro.middleware.AuthenticationMiddleware",
    "askpro.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Endpoints authenticated by API key alone: no session, user or messages middleware there
# (askpro/middleware.py). The admin, the API docs and the dashboard keep all of it.
SESSIONLESS_PATH_PREFIXES = ("/mcp", "/api/v1/", "/metrics")

ROOT_URLCONF = "askpro.urls"
WSGI_APPLICATION = "askpro.wsgi.application"
ASGI_APPLICATION = "askpro.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---
DATABASE_URL = env_str("DATABASE_URL", "sqlite:///var/askpro.sqlite3")
DATABASES = {"default": parse_database_url("DATABASE_URL", DATABASE_URL, base_dir=BASE_DIR)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
else:
    # psycopg 3 connection pool (Django >= 5.1). Persistent connections must stay off with it.
    DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 2, minimum=0)
    DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 10, minimum=1)
    if env_bool("DB_POOL", True):
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": DB_POOL_MIN_SIZE,
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1),
        }
        if env_bool("DB_POOL_CHECK", True):
            # Each pooled connection is checked on checkout (one empty round trip); connections
            # the server dropped (a restart, a failover, pg_terminate_backend) are replaced
            # instead of failing requests (askpro/pgbackend, docs/high-availability.md#postgresql).
            DATABASES["default"]["ENGINE"] = "askpro.pgbackend"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis (Sentinel: docs/high-availability.md#redis-sentinel) ---
REDIS_URL = env_str("REDIS_URL")
REDIS_SENTINELS = parse_host_ports("REDIS_SENTINELS", env_str("REDIS_SENTINELS"), default_port=26379)
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER")
_redis_timeouts = {
    "SOCKET_CONNECT_TIMEOUT": env_float("REDIS_CONNECT_TIMEOUT", 1.0, minimum=0.01),
    "SOCKET_TIMEOUT": env_float("REDIS_SOCKET_TIMEOUT", 1.0, minimum=0.01),
}
_sentinel_password = env_secret("REDIS_SENTINEL_PASSWORD")  # the sentinels' own requirepass
_redis_password = env_secret("REDIS_PASSWORD")  # the master's (with REDIS_URL: in the URL)
_redis_db = env_int("REDIS_DB", 0, minimum=0)
_sentinel_kwargs = {
    "socket_connect_timeout": _redis_timeouts["SOCKET_CONNECT_TIMEOUT"],
    "socket_timeout": _redis_timeouts["SOCKET_TIMEOUT"],
    **({"password": _sentinel_password} if _sentinel_password else {}),
}
if not REDIS_SENTINELS and (_redis_password or env_str("REDIS_DB")):
    raise ImproperlyConfigured(
        "REDIS_PASSWORD and REDIS_DB apply with REDIS_SENTINELS only; with REDIS_URL put them in the URL"
    )
if _sentinel_password and not REDIS_SENTINEL_MASTER:
    raise ImproperlyConfigured("REDIS_SENTINEL_PASSWORD: set REDIS_SENTINEL_MASTER too (and the sentinels)")
if REDIS_SENTINELS:
    if REDIS_URL:
        raise ImproperlyConfigured("REDIS_URL and REDIS_SENTINELS are both set: set one of them")
    if not REDIS_SENTINEL_MASTER:
        raise ImproperlyConfigured(
            "REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS (the name in `sentinel monitor <name>`)"
        )
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            # The master's name stands where a host would. One location, no replica: every read
            # and write goes to the master the sentinels name (a replica may lag behind).
            "LOCATION": [f"redis://{REDIS_SENTINEL_MASTER}/{_redis_db}"],
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "askpro"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": REDIS_SENTINELS,
                "SENTINEL_KWARGS": _sentinel_kwargs,
                **({"PASSWORD": _redis_password} if _redis_password else {}),
                **_redis_timeouts,
            },
        }
    }
elif REDIS_URL:
    check_redis_url("REDIS_URL", REDIS_URL)
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "askpro"),
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", **_redis_timeouts},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
# Without a broker (a bare `make run`), tasks run eagerly in the calling process.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL is None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Pool processes per worker; 0 (unset): one per core, Celery's own default.
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 0, minimum=0) or None
CELERY_TIMEZONE = "UTC"
# DatabaseScheduler that dispatches only while it holds a database lock: one beat at a time
# (askpro/beat.py). last_run_at is written after every dispatch, so a beat that takes over
# continues where the other left off.
CELERY_BEAT_SCHEDULER = "askpro.beat:SingleBeatScheduler"
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
# RabbitMQ: "quorum" queues are replicated across the cluster's nodes (docs/high-availability.md).
# Delayed tasks (countdown, the webhook retries) then use RabbitMQ's native delayed delivery,
# which needs a topic exchange; publishes are confirmed by the broker.
CELERY_TASK_DEFAULT_QUEUE_TYPE = env_str("CELERY_TASK_DEFAULT_QUEUE_TYPE", "classic")
if CELERY_TASK_DEFAULT_QUEUE_TYPE not in {"classic", "quorum"}:
    raise ImproperlyConfigured(
        f"CELERY_TASK_DEFAULT_QUEUE_TYPE: expected classic or quorum, got {CELERY_TASK_DEFAULT_QUEUE_TYPE!r}"
    )
if CELERY_TASK_DEFAULT_QUEUE_TYPE == "quorum":
    if not (CELERY_BROKER_URL or "").startswith(("amqp://", "amqps://", "pyamqp://")):
        raise ImproperlyConfigured(
            "CELERY_TASK_DEFAULT_QUEUE_TYPE: quorum queues need a RabbitMQ broker (amqp://)"
        )
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
# Redis broker: a key prefix isolates deployments (and test runs) sharing one Redis; unacked
# messages of a dead worker come back after the visibility timeout.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1),
    **({"global_keyprefix": env_str("CELERY_KEY_PREFIX")} if env_str("CELERY_KEY_PREFIX") else {}),
}
if CELERY_TASK_DEFAULT_QUEUE_TYPE == "quorum":
    CELERY_BROKER_TRANSPORT_OPTIONS["confirm_publish"] = True
# sentinel://host:26379;sentinel://host:26379/<db>: the broker (and a sentinel:// result backend)
# follow the master the sentinels name (REDIS_SENTINEL_MASTER).
_sentinel_urls = [
    name
    for name, url in (
        ("CELERY_BROKER_URL", CELERY_BROKER_URL),
        ("CELERY_RESULT_BACKEND", CELERY_RESULT_BACKEND),
    )
    if url and url.startswith("sentinel://")
]
if _sentinel_urls and not REDIS_SENTINEL_MASTER:
    raise ImproperlyConfigured(f"REDIS_SENTINEL_MASTER: required with a sentinel:// {_sentinel_urls[0]}")
if REDIS_SENTINEL_MASTER:
    if not (REDIS_SENTINELS or _sentinel_urls):
        raise ImproperlyConfigured(
            "REDIS_SENTINEL_MASTER: set but unused; set REDIS_SENTINELS or a sentinel:// CELERY_BROKER_URL"
        )
    check_sentinel_master("REDIS_SENTINEL_MASTER", REDIS_SENTINEL_MASTER)
    _sentinel_transport = {"master_name": REDIS_SENTINEL_MASTER, "sentinel_kwargs": _sentinel_kwargs}
    if "CELERY_BROKER_URL" in _sentinel_urls:
        CELERY_BROKER_TRANSPORT_OPTIONS.update(_sentinel_transport)
    if "CELERY_RESULT_BACKEND" in _sentinel_urls:
        CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _sentinel_transport

# --- Webhooks (mcp_servers.webhooks) ---
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 5, minimum=1, maximum=50)
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 30.0, minimum=0.0)
WEBHOOK_RETRY_MAX_SECONDS = env_float("WEBHOOK_RETRY_MAX_SECONDS", 3600.0, minimum=0.0)
# A claimed event whose worker died is taken over after this lease (see webhooks/services.py).
WEBHOOK_LEASE_SECONDS = env_float("WEBHOOK_LEASE_SECONDS", 300.0, minimum=0.5)
WEBHOOK_INBOUND_CACHE_SECONDS = env_int("WEBHOOK_INBOUND_CACHE_SECONDS", 3600, minimum=1)
# Agent for inbound calls to a number we do not know (empty: Retell's own number config).
RETELL_DEFAULT_AGENT_ID = env_str("RETELL_DEFAULT_AGENT_ID", "")
# Per-provider handler overrides (dotted paths, tests), in place of the handler the provider's
# server declares with @webhook (mcp_core.webhooks).
WEBHOOK_HANDLERS: dict[str, str] = {}

# --- Input limits (docs/input-limits.md): what a caller may send, on every entry point ---
# Bodies: larger is 413 (JSON naming the limit). Webhook payloads (Retell transcripts) run larger.
REQUEST_MAX_BODY_BYTES = env_int("REQUEST_MAX_BODY_BYTES", 1_048_576, minimum=1024)
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 5_242_880, minimum=1024)
# Django's own check must never answer first (with its HTML page): ours reads at most these.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(REQUEST_MAX_BODY_BYTES, WEBHOOK_MAX_BODY_BYTES)
# JSON nesting (arrays and objects) in any body, stdio line or params; parsers recurse, so
# this stays far below Python's recursion limit.
REQUEST_MAX_JSON_DEPTH = env_int("REQUEST_MAX_JSON_DEPTH", 64, minimum=8, maximum=200)
# Longest value of a header the project reads (Authorization; others have tighter limits).
REQUEST_MAX_HEADER_CHARS = env_int("REQUEST_MAX_HEADER_CHARS", 4096, minimum=256, maximum=65536)
# Operation params, on top of each schema's own bounds: any string, any array or object,
# and the years a date may have (operations compute with dates; year 1 or 9999 overflow).
MCP_PARAMS_MAX_STRING_CHARS = env_int("MCP_PARAMS_MAX_STRING_CHARS", 65_536, minimum=1024)
MCP_PARAMS_MAX_ITEMS = env_int("MCP_PARAMS_MAX_ITEMS", 1000, minimum=50)
# Nesting inside params: below the body's limit, so a deep param is refused naming the field.
MCP_PARAMS_MAX_DEPTH = env_int("MCP_PARAMS_MAX_DEPTH", 32, minimum=4, maximum=200)
MCP_PARAMS_MIN_YEAR = env_int("MCP_PARAMS_MIN_YEAR", 1900, minimum=1, maximum=9000)
MCP_PARAMS_MAX_YEAR = env_int("MCP_PARAMS_MAX_YEAR", 2200, minimum=1, maximum=9000)
if MCP_PARAMS_MIN_YEAR >= MCP_PARAMS_MAX_YEAR:
    raise ImproperlyConfigured("MCP_PARAMS_MIN_YEAR: must be below MCP_PARAMS_MAX_YEAR")

# --- Internationalisation ---
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# With DEBUG off, collectstatic writes every file under a content-hashed name plus a gzip copy,
# and WhiteNoise serves the hashed names with a far-future, immutable Cache-Control. Pages link
# the hashed names from collectstatic's manifest, so it is a release step (docs/deployment.md).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- DRF and OpenAPI ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mcp_core.api.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AskPro MCP control plane API",
    "DESCRIPTION": "Call MCP server operations through the orchestrator, discover them, check health.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # /api/docs/ loads Swagger UI from drf-spectacular-sidecar's static files, never a CDN:
    # it renders on a machine without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No badge from the public validator service either: nothing leaves this host.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    # 3.1: schema objects are JSON Schema 2020-12, what the operations' declarations generate.
    "OAS_VERSION": "3.1.0",
    # One path per operation, with its params and result schemas (docs/install.md).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mcp_core.api.openapi.add_operation_paths",
    ],
}

# --- MCP orchestrator ---
# The registry: one dotted path per server class. Plugins add to it (issue: discovery).
MCP_SERVERS = env_list(
    "MCP_SERVERS",
    [
        "mcp_servers.database.server.DatabaseServer",
        "mcp_servers.calcom.server.CalcomServer",
        "mcp_servers.webhooks.server.WebhookServer",
        "mcp_servers.queue.server.QueueServer",
        "mcp_servers.sentry.server.SentryServer",
        "mcp_servers.ui_audit.server.UIAuditServer",
        "mcp_servers.retell.server.RetellServer",
        "mcp_servers.stripe.server.StripeServer",
        "mcp_servers.messaging.server.MessagingServer",
        "mcp_servers.mail.server.EmailServer",
        "mcp_servers.gcal.server.GoogleCalendarServer",
        "mcp_servers.analytics.server.AnalyticsServer",
        "mcp_servers.federation.server.FederationServer",
    ],
)
MCP_DEFAULT_TIMEOUT = env_float("MCP_DEFAULT_TIMEOUT", 30.0, minimum=0.1)
MCP_AUDIT_RETENTION_DAYS = env_int("MCP_AUDIT_RETENTION_DAYS", 90, minimum=1)
# The API, /mcp and mcp_stdio remember an authenticated key this many seconds per process (0:
# look it up on every call). A revoked or expired key keeps working at most this long.
MCP_AUTH_CACHE_SECONDS = env_float("MCP_AUTH_CACHE_SECONDS", 2.0, minimum=0.0)

# --- OAuth 2.1 for MCP clients (docs/oauth.md) ---
# The public origin clients reach this server at (https://askpro.example.com): the issuer, and
# with /mcp the resource tokens are bound to. Empty: taken from each request's Host.
OAUTH_PUBLIC_URL = (env_str("OAUTH_PUBLIC_URL", "") or "").rstrip("/")
OAUTH_ACCESS_TOKEN_SECONDS = env_int("OAUTH_ACCESS_TOKEN_SECONDS", 3600, minimum=60)
# A refresh token dies this long after its last access token expired (rotation renews it).
OAUTH_REFRESH_TOKEN_SECONDS = env_int("OAUTH_REFRESH_TOKEN_SECONDS", 30 * 86400, minimum=300)
# Access tokens are JWTs signed with this key (HS256): a forged or altered one is refused before
# any database lookup. Default: derived from SECRET_KEY (changing either ends every token).
OAUTH_TOKEN_SIGNING_KEY = (
    env_secret("OAUTH_TOKEN_SIGNING_KEY")
    or hmac.new(SECRET_KEY.encode(), b"askpro.oauth.access-token", hashlib.sha256).hexdigest()
)
# RFC 7591 dynamic client registration (deprecated by MCP 2026-07-28, used by 2025-11-25 clients).
OAUTH_DYNAMIC_REGISTRATION = env_bool("OAUTH_DYNAMIC_REGISTRATION", True)
# Client ID Metadata Documents: fetched from the client's https URL, bounded and cached.
OAUTH_CIMD_ENABLED = env_bool("OAUTH_CIMD_ENABLED", True)
OAUTH_CIMD_TIMEOUT_SECONDS = env_float("OAUTH_CIMD_TIMEOUT_SECONDS", 5.0, minimum=0.1)
OAUTH_CIMD_MAX_BYTES = env_int("OAUTH_CIMD_MAX_BYTES", 16 * 1024, minimum=512)
# Private, link-local and loopback addresses are never fetched; this allows loopback only
# (development, tests).
OAUTH_CIMD_ALLOW_LOOPBACK = env_bool("OAUTH_CIMD_ALLOW_LOOPBACK", False)
OAUTH2_PROVIDER = {
    "SCOPES_BACKEND_CLASS": "mcp_core.oauth.scopes.RegistryScopes",
    "OAUTH2_VALIDATOR_CLASS": "mcp_core.oauth.validators.AskproValidator",
    "ACCESS_TOKEN_GENERATOR": "mcp_core.oauth.tokens.generate_access_token",
    "ACCESS_TOKEN_EXPIRE_SECONDS": OAUTH_ACCESS_TOKEN_SECONDS,
    "REFRESH_TOKEN_EXPIRE_SECONDS": OAUTH_REFRESH_TOKEN_SECONDS,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "PKCE_REQUIRED": True,
    # OAuth 2.1 / RFC 9700: S256 only, no implicit or password grant, tokens only in the header,
    # `iss` on the authorization response (RFC 9207), tokens stored as hashes only.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # Redirect URIs match exactly, loopback ports included.
    "ALLOW_URI_WILDCARDS": False,
    "ALLOW_LOCALHOST_LOOPBACK": False,
    "REQUEST_APPROVAL_PROMPT": "force",
    "OIDC_ISS_ENDPOINT": OAUTH_PUBLIC_URL,
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["none", "client_secret_post", "client_secret_basic"],
    "OAUTH2_PROTECTED_RESOURCE_NAME": "AskPro control plane",
    "DCR_ENABLED": OAUTH_DYNAMIC_REGISTRATION,
    # Anyone may register a client (MCP clients register before anyone signs in); a client gets
    # nothing until a signed-in user consents, and never more than that user's rights.
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    # The RFC 7592 management token a registration returns (its default, year 9999, is past what
    # the admin can show in a time zone east of UTC).
    "DCR_REGISTRATION_TOKEN_EXPIRE_SECONDS": 30 * 86400,
    "CIMD_ENABLED": OAUTH_CIMD_ENABLED,
    "CIMD_METADATA_FETCHER": "mcp_core.oauth.cimd.MetadataFetcher",
    "CIMD_FETCH_TIMEOUT_SECONDS": OAUTH_CIMD_TIMEOUT_SECONDS,
    "CIMD_MAX_DOCUMENT_SIZE": OAUTH_CIMD_MAX_BYTES,
}
# The consent page and "my MCP clients" ask for a sign-in through the admin's login page.
LOGIN_URL = "admin:login"
# Audit rows and metrics of read-only calls over these transports are written in batches by a
# per-process thread every MCP_AUDIT_FLUSH_MS (0: every call's row is written before its answer).
# Calls that can change something are always written before their answer (docs/operations.md).
MCP_AUDIT_FLUSH_MS = env_int("MCP_AUDIT_FLUSH_MS", 200, minimum=0)
MCP_AUDIT_MAX_PENDING = env_int("MCP_AUDIT_MAX_PENDING", 10_000, minimum=1)
MCP_AUDIT_BATCHED_TRANSPORTS = env_list("MCP_AUDIT_BATCHED_TRANSPORTS", ["mcp", "api"])
# Health (docs/health.md): a stored health run this young is served instead of running the
# checks again; one run at a time across processes (a lock in the default cache).
MCP_HEALTH_REUSE_SECONDS = env_float("MCP_HEALTH_REUSE_SECONDS", 5.0, minimum=0.0)
# Services added at run time (federated remote MCP servers, mcp_core/registry.py): each process
# looks at the shared registry version at most this often, so an approval reaches every
# instance within this many seconds.
MCP_REGISTRY_RECHECK_SECONDS = env_float("MCP_REGISTRY_RECHECK_SECONDS", 2.0, minimum=0.0)

# --- Resilience (docs/operations.md, "Resilience"): guards around every execution, in this order ---
# "none" turns both off (an empty variable counts as unset, so it cannot).
MCP_PIPELINE_GUARDS = [
    path
    for path in env_list(
        "MCP_PIPELINE_GUARDS", ["mcp_core.ratelimit.RateLimitGuard", "mcp_core.breaker.BreakerGuard"]
    )
    if path.lower() != "none"
]
# Limits for a tenant without a Plan (a plan's own limits win). Reported as policy "default".
MCP_RATE_LIMIT_DEFAULT_PER_MINUTE = env_int("MCP_RATE_LIMIT_DEFAULT_PER_MINUTE", 60, minimum=0)
MCP_RATE_LIMIT_DEFAULT_CONCURRENCY = env_int("MCP_RATE_LIMIT_DEFAULT_CONCURRENCY", 10, minimum=0)
# A plan edit reaches other processes within this many seconds.
MCP_RATE_LIMIT_PLAN_CACHE_SECONDS = env_float("MCP_RATE_LIMIT_PLAN_CACHE_SECONDS", 5.0, minimum=0.0)
# The cache alias whose Redis holds limiter and breaker state (process memory if not django-redis).
MCP_RESILIENCE_CACHE = env_str("MCP_RESILIENCE_CACHE", "default")
# After a Redis failure, fail open without asking Redis for this long; log at most once per interval.
MCP_RESILIENCE_REDIS_RETRY_SECONDS = env_float("MCP_RESILIENCE_REDIS_RETRY_SECONDS", 5.0, minimum=0.0)
MCP_RESILIENCE_LOG_INTERVAL = env_float("MCP_RESILIENCE_LOG_INTERVAL", 60.0, minimum=0.0)
# Circuit breakers: "default" applies to every service; a service's entry overrides single keys.
MCP_BREAKERS = {
    "default": {
        "enabled": env_bool("MCP_BREAKER_ENABLED", True),
        "failure_rate_threshold": env_float("MCP_BREAKER_FAILURE_RATE", 50.0, minimum=0.0),  # %
        "slow_call_rate_threshold": env_float("MCP_BREAKER_SLOW_CALL_RATE", 100.0, minimum=0.0),  # %
        "slow_call_duration": env_float("MCP_BREAKER_SLOW_CALL_SECONDS", 10.0, minimum=0.0),
        "minimum_calls": env_int("MCP_BREAKER_MINIMUM_CALLS", 10, minimum=1),
        "window": env_float("MCP_BREAKER_WINDOW_SECONDS", 60.0, minimum=0.1),
        "open_duration": env_float("MCP_BREAKER_OPEN_SECONDS", 30.0, minimum=0.01),
        "half_open_calls": env_int("MCP_BREAKER_HALF_OPEN_CALLS", 3, minimum=1),
        "half_open_max_wait": env_float("MCP_BREAKER_HALF_OPEN_MAX_WAIT", 120.0, minimum=0.1),
    },
    # Stripe bills: give it longer to recover before trying again (as the original did).
    "stripe": {"open_duration": 60.0},
}

# Database server: which tables `query` and `get_schema` may see, and which columns never.
MCP_DATABASE_ALLOWED_TABLES = env_list(
    "MCP_DATABASE_ALLOWED_TABLES",
    [
        "askpro_company",
        "askpro_branch",
        "askpro_staff",
        "askpro_service",
        "askpro_customer",
        "askpro_appointment",
        "askpro_call",
        "askpro_phonenumber",
        "askpro_invoice",
    ],
)
MCP_DATABASE_MAX_ROWS = env_int("MCP_DATABASE_MAX_ROWS", 1000, minimum=1, maximum=100_000)
MCP_DATABASE_STATEMENT_TIMEOUT_MS = env_int("MCP_DATABASE_STATEMENT_TIMEOUT_MS", 5000, minimum=10)
# Byte cap of one database_query answer (its rows as JSON); rows past it are left out and the
# value that crosses it is cut, and the database never sends much more (docs/database-server.md).
MCP_DATABASE_MAX_BYTES = env_int(
    "MCP_DATABASE_MAX_BYTES", 1024 * 1024, minimum=1024, maximum=256 * 1024 * 1024
)
# Statements at least this slow are captured (by shape) for database_optimize_queries.
MCP_SLOW_QUERY_MS = env_int("MCP_SLOW_QUERY_MS", 200, minimum=1)

# --- The analytics server (docs/servers/analytics.md) ---
# The longest period one analytics call may cover (its previous period is as long again).
ANALYTICS_MAX_PERIOD_DAYS = env_int("ANALYTICS_MAX_PERIOD_DAYS", 366, minimum=7, maximum=3660)
# The most rows one analytics_export_csv answer holds (a bigger export is cut and says so).
ANALYTICS_CSV_MAX_ROWS = env_int("ANALYTICS_CSV_MAX_ROWS", 10_000, minimum=10, maximum=100_000)

# --- ImprovementEngine (docs/admin.md): its analyzers, their thresholds, what may heal itself ---
# Dotted paths of Analyzer subclasses (checked by dashboard.E001); another app appends its own.
IMPROVEMENT_ANALYZERS = [
    "dashboard.engine.analyzers.metrics.SlowOperations",
    "dashboard.engine.analyzers.metrics.ErrorRateRise",
    "dashboard.engine.analyzers.metrics.BreakerFlapping",
    "dashboard.engine.analyzers.metrics.BreakerStuckHalfOpen",
    "dashboard.engine.analyzers.metrics.RateLimitSaturation",
    "dashboard.engine.analyzers.metrics.NotConfiguredCalls",
    "dashboard.engine.analyzers.metrics.CallerErrorRate",
    "dashboard.engine.analyzers.operations.QueueBacklog",
    "dashboard.engine.analyzers.operations.WebhookFailures",
    "dashboard.engine.analyzers.database.SlowQueries",
    "dashboard.engine.analyzers.database.MissingIndexes",
    "dashboard.engine.analyzers.database.UnusedIndexes",
    "dashboard.engine.analyzers.database.CacheHitRate",
    "dashboard.engine.analyzers.business.UnbookedCalls",
    "dashboard.engine.analyzers.analytics.MissedCallsByWeekday",
    "dashboard.engine.analyzers.analytics.StaffFullyBooked",
    "dashboard.engine.analyzers.quality.UIAccessibility",
]
# Per-analyzer threshold overrides, e.g. {"slow_operations": {"p95_ms": 800}}.
IMPROVEMENT_THRESHOLDS: dict[str, dict] = {}
# Analyzers allowed to act on their own findings (off unless named).
IMPROVEMENT_SELF_HEALING = env_list("IMPROVEMENT_SELF_HEALING", [])
IMPROVEMENT_DISMISS_SNOOZE_DAYS = env_int("IMPROVEMENT_DISMISS_SNOOZE_DAYS", 7, minimum=0)

# --- Sandboxes: local fakes of the upstream APIs (manage.py run_sandbox) ---
# With SANDBOX=1 the servers talk to the sandboxes with demo credentials, so every
# operation can be tried without accounts.
SANDBOX = env_bool("SANDBOX", False)
SANDBOX_HOST = "127.0.0.1"
SANDBOX_PORTS = {
    "calcom": env_int("SANDBOX_CALCOM_PORT", 8701, minimum=1, maximum=65535),
    "retell": env_int("SANDBOX_RETELL_PORT", 8702, minimum=1, maximum=65535),
    "stripe": env_int("SANDBOX_STRIPE_PORT", 8703, minimum=1, maximum=65535),
    "sentry": env_int("SANDBOX_SENTRY_PORT", 8704, minimum=1, maximum=65535),
    "messaging": env_int("SANDBOX_MESSAGING_PORT", 8705, minimum=1, maximum=65535),
    # The email sandbox is an SMTP server (aiosmtpd), not HTTP: tenants' SMTP host 127.0.0.1.
    "email": env_int("SANDBOX_EMAIL_PORT", 8706, minimum=1, maximum=65535),
    "gcal": env_int("SANDBOX_GCAL_PORT", 8708, minimum=1, maximum=65535),
    "federation": env_int("SANDBOX_FEDERATION_PORT", 8710, minimum=1, maximum=65535),
}


def _upstream(name: str, real: str, service: str) -> str:
    default = f"http://{SANDBOX_HOST}:{SANDBOX_PORTS[service]}" if SANDBOX else real
    return env_str(name, default)


# --- Upstream endpoints and credentials (global fallbacks; tenants may carry their own) ---
CALCOM_BASE_URL = _upstream("CALCOM_BASE_URL", "https://api.cal.com", "calcom")
RETELL_BASE_URL = _upstream("RETELL_BASE_URL", "https://api.retellai.com", "retell")
STRIPE_API_BASE = _upstream("STRIPE_API_BASE", "https://api.stripe.com", "stripe")
SENTRY_BASE_URL = _upstream("SENTRY_BASE_URL", "https://sentry.io", "sentry")
# Twilio (the messaging server): the twilio library's requests to api.twilio.com go here instead.
TWILIO_API_BASE = _upstream("TWILIO_API_BASE", "https://api.twilio.com", "messaging")
SENTRY_ORG = env_str("SENTRY_ORG", "askpro")
SENTRY_PROJECT = env_str("SENTRY_PROJECT", "control-plane")
# Optional numeric project id: narrows the Sentry server's issue lists to that project.
SENTRY_PROJECT_ID = env_str("SENTRY_PROJECT_ID")
CALCOM_API_KEY = env_secret("CALCOM_API_KEY", "cal_test_sandbox_key" if SANDBOX else None)
RETELL_API_KEY = env_secret("RETELL_API_KEY", "key_sandbox_retell_demo" if SANDBOX else None)
STRIPE_SECRET_KEY = env_secret("STRIPE_SECRET_KEY", "sk_test_sandbox_demo" if SANDBOX else None)
SENTRY_AUTH_TOKEN = env_secret("SENTRY_AUTH_TOKEN", "sntrys_sandbox_demo" if SANDBOX else None)
STRIPE_WEBHOOK_SECRET = env_secret("STRIPE_WEBHOOK_SECRET", "whsec_sandbox_demo" if SANDBOX else None)
CALCOM_WEBHOOK_SECRET = env_secret(
    "CALCOM_WEBHOOK_SECRET", "calcom_sandbox_webhook_secret" if SANDBOX else None
)

# --- Messaging (mcp_servers.messaging): SMS and WhatsApp through each tenant's Twilio account ---
# The address Twilio reaches this deployment at (scheme and host, as the proxy in front shows
# it), e.g. https://askpro.example.com. Status callbacks are asked for at this address, and
# X-Twilio-Signature is checked over it: Twilio signs the URL it called, not the one a proxy
# forwarded to. Empty: no status callbacks are requested; signatures are checked over the URL
# of the request as it arrived.
MESSAGING_PUBLIC_URL = (env_str("MESSAGING_PUBLIC_URL", "") or "").rstrip("/")
if MESSAGING_PUBLIC_URL and not MESSAGING_PUBLIC_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(
        f"MESSAGING_PUBLIC_URL: expected an http(s):// address, got {MESSAGING_PUBLIC_URL!r}"
    )
# Deferred messages (quiet hours) due for sending are picked up this many at a time per run.
MESSAGING_DEFERRED_BATCH = env_int("MESSAGING_DEFERRED_BATCH", 100, minimum=1, maximum=10_000)
# messaging.send_batch: requests to Twilio in flight at once per batch (kept-alive connections).
MESSAGING_BATCH_CONCURRENCY = env_int("MESSAGING_BATCH_CONCURRENCY", 16, minimum=1, maximum=200)
# --- Google Calendar (mcp_servers.gcal): each tenant's calendars, two-way with appointments ---
# Google's API origin (the client library appends /calendar/v3/), its OAuth token endpoint
# (refresh tokens, service-account JWT grants, authorization codes) and its consent page; all
# three point at the sandbox with SANDBOX=1.
GCAL_API_BASE = _upstream("GCAL_API_BASE", "https://www.googleapis.com", "gcal").rstrip("/")
GCAL_TOKEN_URI = env_str(
    "GCAL_TOKEN_URI",
    f"http://{SANDBOX_HOST}:{SANDBOX_PORTS['gcal']}/token"
    if SANDBOX
    else "https://oauth2.googleapis.com/token",
)
GCAL_AUTH_URI = env_str(
    "GCAL_AUTH_URI",
    f"http://{SANDBOX_HOST}:{SANDBOX_PORTS['gcal']}/o/oauth2/v2/auth"
    if SANDBOX
    else "https://accounts.google.com/o/oauth2/v2/auth",
)
# The platform's OAuth client (Google Cloud console) for the admin's "connect Google Calendar".
GCAL_OAUTH_CLIENT_ID = env_str(
    "GCAL_OAUTH_CLIENT_ID", "sandbox-client.apps.googleusercontent.com" if SANDBOX else ""
)
GCAL_OAUTH_CLIENT_SECRET = env_secret(
    "GCAL_OAUTH_CLIENT_SECRET", "sandbox-client-secret" if SANDBOX else None
)
# The https address Google reaches this deployment at: push channels are opened to
# <GCAL_PUBLIC_URL>/webhooks/gcal?tenant=<slug>. Empty: watch_calendar is refused.
GCAL_PUBLIC_URL = (env_str("GCAL_PUBLIC_URL", "") or "").rstrip("/")
if GCAL_PUBLIC_URL and not GCAL_PUBLIC_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(f"GCAL_PUBLIC_URL: expected an http(s):// address, got {GCAL_PUBLIC_URL!r}")
# 403 rateLimitExceeded / 429 answers are retried this many times, waiting base * 2^n seconds
# (or Retry-After), never past the call's deadline.
GCAL_MAX_RETRIES = env_int("GCAL_MAX_RETRIES", 4, minimum=0, maximum=10)
GCAL_RETRY_BASE_SECONDS = env_float("GCAL_RETRY_BASE_SECONDS", 0.5, minimum=0.0)
# Push channels are asked to live this long (Google caps them, typically at 7 days).
GCAL_CHANNEL_TTL_SECONDS = env_int("GCAL_CHANNEL_TTL_SECONDS", 7 * 24 * 3600, minimum=60)
# --- Appointment confirmations and reminders (notifications app, docs/reminders.md) ---
# Due reminders are handed from planned to queued this many per claim (one UPDATE each batch).
REMINDERS_SWEEP_BATCH = env_int("REMINDERS_SWEEP_BATCH", 1000, minimum=1, maximum=50_000)
# Queued reminders go to the workers in tasks of this many.
REMINDERS_SEND_CHUNK = env_int("REMINDERS_SEND_CHUNK", 50, minimum=1, maximum=10_000)
# A sweep hands out due reminders for at most this long, then leaves the rest to the next run.
REMINDERS_SWEEP_SECONDS = env_int("REMINDERS_SWEEP_SECONDS", 50, minimum=1, maximum=3600)
# A reminder claimed by a worker that has not finished it after this long (the worker died) is
# handed out again; its idempotency key keeps the retry from sending twice.
REMINDERS_CLAIM_LEASE_SECONDS = env_int("REMINDERS_CLAIM_LEASE_SECONDS", 120, minimum=1, maximum=86_400)
# A queued reminder whose task never ran (a lost task) is queued again after this long.
REMINDERS_QUEUE_LEASE_SECONDS = env_int("REMINDERS_QUEUE_LEASE_SECONDS", 600, minimum=1, maximum=86_400)
# Attempts per reminder while the channels fail for a passing reason (rate limit, breaker,
# timeout), this many seconds apart; the last attempt falls back to the next channel instead.
REMINDERS_MAX_ATTEMPTS = env_int("REMINDERS_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
REMINDERS_RETRY_SECONDS = env_int("REMINDERS_RETRY_SECONDS", 300, minimum=1, maximum=86_400)
# A customer's "confirm"/"cancel" answers the newest reminder sent to them this many hours back.
REMINDERS_REPLY_WINDOW_HOURS = env_int("REMINDERS_REPLY_WINDOW_HOURS", 72, minimum=1, maximum=720)
# --- Federation: remote MCP servers and the marketplace (docs/servers/federation.md) ---
# The MCP Registry the marketplace browses (the sandbox registry with SANDBOX=1).
FEDERATION_REGISTRY_URL = _upstream(
    "FEDERATION_REGISTRY_URL", "https://registry.modelcontextprotocol.io", "federation"
)
# Remote servers may only be reached on public addresses, except inside these networks (CIDR,
# e.g. 10.1.2.0/24 for an internal MCP server; 127.0.0.0/8 in tests). Private, loopback,
# link-local (cloud metadata) and other special ranges are refused otherwise.
# With SANDBOX=1 the sandbox registry's remote servers listen on 127.0.0.1.
FEDERATION_ALLOWED_NETWORKS = env_list("FEDERATION_ALLOWED_NETWORKS", ["127.0.0.1/32"] if SANDBOX else [])
for _network in FEDERATION_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"FEDERATION_ALLOWED_NETWORKS: {_network!r} is not an IP network (e.g. 10.0.0.0/8)"
        ) from None
# A remote answer larger than this is refused (bytes, headers excluded).
FEDERATION_MAX_RESPONSE_BYTES = env_int("FEDERATION_MAX_RESPONSE_BYTES", 1_048_576, minimum=1024)
# The deadline of one remote tool call unless its registration says otherwise.
FEDERATION_DEFAULT_TIMEOUT = env_float("FEDERATION_DEFAULT_TIMEOUT", 30.0, minimum=0.1)
# Kept client sessions to remote servers, per process: at most this many (0: a new session
# for every call), each closed after this many idle seconds.
FEDERATION_SESSION_POOL_SIZE = env_int("FEDERATION_SESSION_POOL_SIZE", 32, minimum=0, maximum=1000)
FEDERATION_SESSION_IDLE_SECONDS = env_float("FEDERATION_SESSION_IDLE_SECONDS", 300.0, minimum=1.0)

# --- Sentry ---
SENTRY_DSN = env_secret("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")

# --- Observability (docs/observability.md) ---
# /metrics is off (404) until one of these is set; either one admits a scraper.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", [])
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS: {_network!r} is not an IP address or network (e.g. 10.0.0.0/8)"
        ) from None
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not os.access(
    os.environ["PROMETHEUS_MULTIPROC_DIR"], os.W_OK
):
    raise ImproperlyConfigured(
        "PROMETHEUS_MULTIPROC_DIR: must be an existing directory this process can write"
    )
# Live push (docs/observability.md#live-push): events on Redis pub/sub, streamed to the admin's
# pages by the `stream` process (mcp_core.live_stream) as Server-Sent Events.
LIVE_EVENTS = env_bool("LIVE_EVENTS", True)
# This many upstream failures of one service within the window raise one error_spike event (0: off).
LIVE_ERROR_SPIKE_THRESHOLD = env_int("LIVE_ERROR_SPIKE_THRESHOLD", 10, minimum=0)
LIVE_ERROR_SPIKE_WINDOW_SECONDS = env_float("LIVE_ERROR_SPIKE_WINDOW_SECONDS", 60.0, minimum=1.0)
# Where the pages open the stream: a path on the same site (the proxy routes it to the stream
# process), or a full URL of the stream process (then list the pages' origin below).
LIVE_STREAM_URL = env_str("LIVE_STREAM_URL", "/admin/live/events")
if not LIVE_STREAM_URL.startswith(("/", "http://", "https://")) or LIVE_STREAM_URL.startswith("//"):
    raise ImproperlyConfigured(
        f"LIVE_STREAM_URL: expected a path (/admin/live/events) or an http(s):// URL, got {LIVE_STREAM_URL!r}"
    )
# Origins (scheme://host:port) of pages allowed to open the stream from another origin.
LIVE_STREAM_ALLOWED_ORIGINS = env_list("LIVE_STREAM_ALLOWED_ORIGINS", [])
for _origin in LIVE_STREAM_ALLOWED_ORIGINS:
    if not _origin.startswith(("http://", "https://")) or _origin.count("/") != 2:
        raise ImproperlyConfigured(
            f"LIVE_STREAM_ALLOWED_ORIGINS: {_origin!r} is not an origin (scheme://host[:port], no path)"
        )
# The dashboard pages poll this often when the stream is unavailable (10 times less often while
# it is up, for the figures that no event announces).
DASHBOARD_POLL_SECONDS = env_float("DASHBOARD_POLL_SECONDS", 10.0, minimum=0.5)
# Per stream process: open streams at most (more get 503 and the page polls instead).
LIVE_STREAM_MAX_CLIENTS = env_int("LIVE_STREAM_MAX_CLIENTS", 1000, minimum=1)
# A comment line this often keeps proxies and browsers from closing a quiet stream.
LIVE_STREAM_HEARTBEAT_SECONDS = env_float("LIVE_STREAM_HEARTBEAT_SECONDS", 15.0, minimum=0.1)
# A stream ends after this long and the browser reconnects at once (resuming by Last-Event-ID):
# a signed-out user or a withdrawn permission loses the stream within this time.
LIVE_STREAM_MAX_AGE_SECONDS = env_float("LIVE_STREAM_MAX_AGE_SECONDS", 300.0, minimum=1.0)
# Sentry performance tracing: the share of transactions sent (0 = off).
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0)
if SENTRY_TRACES_SAMPLE_RATE > 1:
    raise ImproperlyConfigured(
        f"SENTRY_TRACES_SAMPLE_RATE: must be between 0 and 1, got {SENTRY_TRACES_SAMPLE_RATE}"
    )
# LOG_FORMAT=json: one JSON object per line on stderr (docs/observability.md#logs).
LOG_FORMAT = (env_str("LOG_FORMAT", "text") or "text").lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT: expected text or json, got {LOG_FORMAT!r}")
# A Celery worker otherwise replaces the root handler with its own text format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"

# OpenTelemetry traces (docs/observability.md#opentelemetry-traces): on when OTEL_TRACES_EXPORTER
# names an exporter and OTEL_SDK_DISABLED is not true. Unlike the SDK's own default (otlp), the
# project's default is none: nothing is traced until an operator asks.
OTEL_SDK_DISABLED = env_bool("OTEL_SDK_DISABLED", False)
OTEL_TRACES_EXPORTER = [name.lower() for name in env_list("OTEL_TRACES_EXPORTER", ["none"])]
for _exporter in OTEL_TRACES_EXPORTER:
    if _exporter not in {"otlp", "console", "none"}:
        raise ImproperlyConfigured(
            f"OTEL_TRACES_EXPORTER: expected otlp, console or none (comma-separated), got {_exporter!r}"
        )
if "none" in OTEL_TRACES_EXPORTER and len(OTEL_TRACES_EXPORTER) > 1:
    raise ImproperlyConfigured("OTEL_TRACES_EXPORTER: none cannot be combined with an exporter")
OTEL_TRACING = not OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER != ["none"]
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "askpro")
OTEL_TRACES_SAMPLER = (env_str("OTEL_TRACES_SAMPLER", "parentbased_always_on") or "").lower()
if OTEL_TRACES_SAMPLER not in {
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
}:
    raise ImproperlyConfigured(
        "OTEL_TRACES_SAMPLER: expected always_on, always_off, traceidratio, parentbased_always_on, "
        f"parentbased_always_off or parentbased_traceidratio, got {OTEL_TRACES_SAMPLER!r}"
    )
OTEL_TRACES_SAMPLER_ARG = env_float("OTEL_TRACES_SAMPLER_ARG", 1.0, minimum=0.0)
if OTEL_TRACES_SAMPLER_ARG > 1:
    raise ImproperlyConfigured(
        f"OTEL_TRACES_SAMPLER_ARG: must be between 0 and 1, got {OTEL_TRACES_SAMPLER_ARG}"
    )
# The OTLP exporter reads these itself; they are checked here so that a typo stops start-up
# instead of losing every span. Only OTLP over HTTP (protobuf) is installed.
for _name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
    if env_str(_name, "http/protobuf") != "http/protobuf":
        raise ImproperlyConfigured(f"{_name}: only http/protobuf is supported, got {env_str(_name)!r}")
for _name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
    _endpoint = env_str(_name)
    if _endpoint is not None and urlsplit(_endpoint).scheme not in {"http", "https"}:
        raise ImproperlyConfigured(f"{_name}: expected an http:// or https:// URL, got {_endpoint!r}")
# Requests to these URLs (comma-separated regular expressions) get no span: scrapes and probes.
OTEL_PYTHON_DJANGO_EXCLUDED_URLS = env_str(
    "OTEL_PYTHON_DJANGO_EXCLUDED_URLS", r"/metrics$,/health/live/?$,/health/ready/?$"
)

# --- Logging: everything to stderr, so stdout stays clean for commands like mcp_stdio ---
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL: expected DEBUG/INFO/WARNING/ERROR/CRITICAL, got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "mcp_core.logs.ContextFilter"}},
    "formatters": {
        "plain": {"()": "mcp_core.logs.PlainFormatter"},
        "json": {"()": "mcp_core.logs.JsonFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    # The stripe library logs two INFO lines per request (with URLs); mcp_servers/stripe/client.py
    # logs one line per call itself, without query strings.
    "loggers": {
        "stripe": {"level": "WARNING"},
        # The MCP SDK's HTTP stack logs every request's full URL at INFO: a remote server's URL
        # may carry a key in its query string, and one line per remote call is noise anyway.
        "httpx2": {"level": "WARNING"},
        "mcp": {"level": "WARNING"},
        # Only through the root handler: Django's own console handler (DEBUG) would print a
        # second, plain copy of each line, which breaks LOG_FORMAT=json.
        "django": {"handlers": [], "propagate": True},
    },
}

if SENTRY_DSN:
    from mcp_core.sentry import init_sentry

    init_sentry(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)

# Behind a TLS-terminating proxy in production.
if not DEBUG and env_bool("SECURE_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askpro.settings")
