"""gunicorn's settings for the web process: the Procfile's `web` line and the systemd unit in
docs/deployment.md run `gunicorn --config deploy/gunicorn.conf.py`.

Each value can be set from the environment, so one file serves every machine. A bad value
stops gunicorn at start-up with the variable's name. The file is not at the repository root on
purpose: gunicorn reads ./gunicorn.conf.py on its own when no --config is given, which would
silently change every test and benchmark server started from a checkout.

Sizing (docs/deployment.md, "Sizing"): gthread workers, WEB_CONCURRENCY processes of
GUNICORN_THREADS threads. A /mcp call mostly waits on PostgreSQL, Redis or an upstream API,
so threads keep a core busy while one call waits; separate processes use every core.
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
threads = _int("GUNICORN_THREADS", 4, 1)
# gthread also for one thread: the master's heartbeat is not tied to a request's length, so a
# long-lived response (the admin's live event stream) does not get its worker killed.
worker_class = "gthread"

# A worker silent this long is killed and replaced. With gthread the heartbeat comes from the
# worker's main loop, not from a request, so this bounds a hung worker, not a slow call.
timeout = _int("GUNICORN_TIMEOUT", 30, 1)
# SIGTERM / a reload: requests in flight get this long to finish. Longer than
# MCP_DEFAULT_TIMEOUT (30 s), the deadline of one orchestrated call. The service manager's
# stop timeout must be longer still (systemd: TimeoutStopSec).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 35, 1)
# Idle keep-alive connections from the proxy are kept this long; longer than the proxy's own
# idle timeout for upstream connections (nginx: keepalive_timeout 60s in the upstream block),
# so that gunicorn never closes a connection the proxy is about to reuse.
keepalive = _int("GUNICORN_KEEPALIVE", 75, 0)

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

# Logs go to stdout/stderr: journald (systemd) or honcho collect them.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
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
