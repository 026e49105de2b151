#!/usr/bin/env bash
# `make serve`: the production process layout (Procfile: web, stream, worker, beat; the sandboxes too with
# SANDBOX=1) on this machine with honcho, against PostgreSQL and Redis, DEBUG off: the release steps
# an operator runs (migrate, periodic tasks, collectstatic), then the processes (docs/deployment.md).
#
#   scripts/serve.sh                   release steps, then honcho start; Ctrl-C or SIGTERM stops all
#   scripts/serve.sh manage ARGS...    manage.py in the same environment (createsuperuser, create_api_key)
#
# Anything already set in the environment wins over the defaults below. Secrets are made once into
# var/serve.env (SERVE_SECRETS_FILE) and kept: sessions and stored credentials depend on them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
PY="$BIN/python"

export DEBUG=0  # the production layout: never the development settings
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-askpro.settings}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/askpro_serve}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-$REDIS_URL}"
export CACHE_KEY_PREFIX="${CACHE_KEY_PREFIX:-askpro-serve}"
export CELERY_KEY_PREFIX="${CELERY_KEY_PREFIX:-askpro-serve-celery:}"
export ALLOWED_HOSTS="${ALLOWED_HOSTS:-127.0.0.1,localhost}"
export STATIC_ROOT="${STATIC_ROOT:-$PWD/var/staticfiles}"
export PORT="${PORT:-8000}"
# The stream process (live events) on the next port. Without a reverse proxy routing its path, the
# pages open it by its own URL, from the web port's origin (docs/deployment.md#make-serve).
export STREAM_PORT="${STREAM_PORT:-$((PORT + 1))}"
export LIVE_STREAM_URL="${LIVE_STREAM_URL:-http://127.0.0.1:${STREAM_PORT}/admin/live/events}"
export LIVE_STREAM_ALLOWED_ORIGINS="${LIVE_STREAM_ALLOWED_ORIGINS:-http://127.0.0.1:${PORT}}"
# One metrics directory for the web and Celery processes (docs/observability.md), emptied below.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/prometheus}"
export PATH="$PWD/$BIN:$PATH"  # the Procfile names gunicorn, celery and python

mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

case "$DATABASE_URL" in
    postgres://* | postgresql://*) ;;
    *) echo "make serve runs on PostgreSQL: DATABASE_URL must be a postgres:// URL" >&2; exit 2 ;;
esac

secrets="${SERVE_SECRETS_FILE:-var/serve.env}"
if [ ! -f "$secrets" ]; then
    mkdir -p "$(dirname "$secrets")"
    (umask 077 && "$PY" - >"$secrets" <<'EOF'
import secrets

from cryptography.fernet import Fernet

print("# Made once by scripts/serve.sh (make serve). Keep it: sessions and stored credentials depend on it.")
print(f"SECRET_KEY={secrets.token_urlsafe(50)}")
print(f"CREDENTIALS_ENCRYPTION_KEY={Fernet.generate_key().decode()}")
EOF
    )
fi
while IFS='=' read -r name value; do
    case "$name" in '' | \#*) continue ;; esac
    if [ -z "${!name:-}" ]; then export "$name=$value"; fi
done <"$secrets"

SKIP_RABBITMQ=1 ./scripts/ensure_services.sh

# The database, created on first use (by name, on the server DATABASE_URL points at).
"$PY" - <<'EOF'
import os
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

parts = urlsplit(os.environ["DATABASE_URL"])
name = parts.path.lstrip("/")
admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
with psycopg.connect(admin, autocommit=True) as conn:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
EOF

if [ "${1:-}" = "manage" ]; then
    shift
    exec "$PY" manage.py "$@"
fi

# The release steps (docs/deployment.md, "Release steps").
"$PY" manage.py migrate --noinput
"$PY" manage.py setup_periodic_tasks
"$PY" manage.py collectstatic --noinput -v0

# A new start: the previous run's metric files would otherwise be summed in.
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -type f -delete

processes=(web stream worker beat)
case "${SANDBOX:-0}" in
    1 | true | yes | on) processes+=(sandbox) ;;
esac
echo "Serving on http://127.0.0.1:${PORT}/ (live events from :${STREAM_PORT}) with ${processes[*]} (DEBUG off). Admin user and API keys:" \
    "scripts/serve.sh manage createsuperuser | create_api_key ..." >&2
# --env /dev/null: honcho would otherwise load ./.env over the environment set above.
exec "$BIN/honcho" start --procfile Procfile --env /dev/null --port "$PORT" "${processes[@]}"
