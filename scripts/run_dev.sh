#!/usr/bin/env bash
# `make run` helper: with SANDBOX=1, start the upstream sandboxes (manage.py run_sandbox) in the
# background; run the first health check and analysis (manage.py prime_dashboard); then Django's
# runserver. Stop both by pid when this script exits (Ctrl-C, SIGTERM, or either process ending).
set -uo pipefail
PY="${PY:-.venv/bin/python}"
PORT="${PORT:-8000}"
export DEBUG="${DEBUG:-1}"

sandbox_pid=""
server_pid=""
cleanup() {
    for pid in $server_pid $sandbox_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in $server_pid $sandbox_pid; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "${SANDBOX:-0}" in
    1 | true | yes | on)
        "$PY" manage.py run_sandbox &
        sandbox_pid=$!
        sleep 1
        kill -0 "$sandbox_pid" 2>/dev/null || { echo "run_sandbox failed to start" >&2; exit 1; }
        ;;
esac

# The first health check and improvements analysis, so the dashboard has data on the first
# visit. After the sandboxes (SANDBOX=1), whose upstreams the checks call; a failure is shown
# and serving goes on.
"$PY" manage.py prime_dashboard || echo "prime_dashboard failed; the dashboard fills on the schedule or its button" >&2

# In the background so that a signal to this script interrupts `wait` at once.
"$PY" manage.py runserver "127.0.0.1:${PORT}" &
server_pid=$!
wait "$server_pid"
