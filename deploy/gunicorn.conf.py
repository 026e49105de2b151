"""gunicorn's settings for the web process: the Procfile's `web` line and the systemd unit in
docs/deployment.md run `gunicorn --config deploy/gunicorn.conf.py`.

Each value can be set from the environment, so one file serves every machine. A bad value
stops gunicorn at start-up with the variable's name. The file is not at the repository root on
purpose: gunicorn reads ./gunicorn.conf.py on its own when no --config is given, which would
silently change every test and benchmark server started from a checkout.

Sizing (docs/deployment.md, "Sizing"): sync workers, one process per core. A /mcp call spends
most of its time in Python, and each sync worker takes a connection only when it is free, so the
kernel spreads the load evenly; GUNICORN_THREADS > 1 switches to gthread workers (long-lived
responses, many slow upstream calls) at the price measured there.
"""

import os


def _int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"gunicorn.conf.py: {name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"gunicorn.conf.py: {name}: must be at least {minimum}, got {value}")
    return value


_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

wsgi_app = "askpro.wsgi:application"
proc_name = "askpro-web"

# Behind a reverse proxy on the same host by default; GUNICORN_BIND takes any gunicorn address
# (0.0.0.0:8000 for a proxy on another machine, unix:/run/askpro/web.sock). honcho sets PORT.
bind = [os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{_int('PORT', 8000, 1)}"]

# WEB_CONCURRENCY is the variable gunicorn itself and most platforms use for the process count.
workers = _int("WEB_CONCURRENCY", _cores, 1)
threads = _int("GUNICORN_THREADS", 1, 1)
# gthread workers accept connections while their threads are busy and keep kept-alive ones for
# good, so load can pile up on one worker (bench_production measured it); sync workers cannot
# be unbalanced that way. gthread is for long-lived responses and many slow upstream calls.
worker_class = "sync" if threads == 1 else "gthread"

# A sync worker busy with one request this long is killed and replaced: longer than
# MCP_DEFAULT_TIMEOUT (30 s), the deadline of one orchestrated call. (gthread: a hung worker.)
timeout = _int("GUNICORN_TIMEOUT", 60, 1)
# SIGTERM / a reload: requests in flight get this long to finish, again longer than
# MCP_DEFAULT_TIMEOUT. The service manager's stop timeout must be longer still (systemd:
# TimeoutStopSec).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 35, 1)
# gthread only (sync workers close each connection after its answer).
keepalive = _int("GUNICORN_KEEPALIVE", 5, 0)

# Replace a worker after this many requests (plus up to 10 % at random, so that workers do not
# restart together): a bound on slow memory growth. A restart costs one Django start-up in the
# new worker (about 1 s of CPU here), so at 3,000 requests/s on 2 cores 50,000 costs about 3 %
# of the CPU; 0 turns it off.
max_requests = _int("GUNICORN_MAX_REQUESTS", 50_000, 0)
max_requests_jitter = max_requests // 10

# The heartbeat file is touched constantly: keep it in memory, not on a disk that may stall.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs by design

# Trust X-Forwarded-* (scheme, client address) only from the proxy's address.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Logs go to stdout/stderr: journald (systemd) or honcho collect them. The access log is off
# unless asked for (GUNICORN_ACCESS_LOG=-): the proxy logs every request already, and this one
# cost about 8 % of /mcp throughput here.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# Client (as forwarded by the proxy), request line, status, bytes, duration in ms, user agent.
access_log_format = '%({x-forwarded-for}i)s %(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# gunicorn >= 25 opens a control socket at a fixed default path per user, which two instances
# on one host would share; only where asked for (GUNICORN_CONTROL_SOCKET=/run/askpro/web.ctl).
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or None
control_socket_disable = control_socket is None


def child_exit(server, worker):
    """A worker left (a stop, a reload, max_requests): with Prometheus's multiprocess files
    (PROMETHEUS_MULTIPROC_DIR, docs/observability.md), drop its live gauges from the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
