"""Strict readers for settings that come from the environment.

Every reader raises ImproperlyConfigured naming the variable when its value cannot be
used, so a typo stops start-up instead of silently falling back to a default.
"""

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_str(name: str, default: str | None = None) -> str | None:
    """Return the variable, or default when unset. An empty value counts as unset."""
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_secret(name: str, default: str | None = None) -> str | None:
    """Like env_str, but also reads NAME_FILE (Docker/Kubernetes secrets)."""
    path = env_str(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or default
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path!r} ({exc.strerror})") from None
    return env_str(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected true/false (or 1/0, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}: must be at most {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma- or whitespace-separated list."""
    raw = env_str(name)
    if raw is None:
        return list(default)
    return [item for item in raw.replace(",", " ").split() if item]


def parse_database_url(name: str, url: str, *, base_dir: Path) -> dict:
    """Turn postgres://user:pass@host:port/db or sqlite:///path into a DATABASES entry."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them
        raw_path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not raw_path:
            raise ImproperlyConfigured(f"{name}: sqlite URL needs a file path, got {url!r}")
        path = Path(raw_path)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path if path.is_absolute() else base_dir / path),
        }
    if scheme in {"postgres", "postgresql", "pgsql"}:
        db_name = unquote(parts.path.lstrip("/"))
        if not db_name:
            raise ImproperlyConfigured(f"{name}: PostgreSQL URL needs a database name, got {url!r}")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name}: invalid port in {url!r}") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db_name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(f"{name}: unsupported scheme {scheme!r}; use postgres://… or sqlite:///…")


def check_redis_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name}: expected redis://host:port/db, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise ImproperlyConfigured(f"{name}: invalid port in {url!r}") from None
    return url


_SENTINEL_MASTER = re.compile(r"[a-z0-9][a-z0-9._-]*")


def check_sentinel_master(name: str, value: str) -> str:
    # django-redis reads the master's name from a URL's host part, which is lower-cased.
    if not _SENTINEL_MASTER.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name}: use lower-case letters, digits, '.', '_' or '-' (got {value!r}); "
            "rename the master in the sentinels' configuration if needed"
        )
    return value


def parse_host_ports(name: str, raw: str | None, *, default_port: int) -> list[tuple[str, int]]:
    """ "host:port, host:port" (comma- or whitespace-separated; [v6]:port) -> [(host, port)]."""
    if raw is None:
        return []
    pairs = []
    for item in raw.replace(",", " ").split():
        try:
            parts = urlsplit(f"//{item}")
            host, port = parts.hostname, parts.port or default_port
        except ValueError:
            raise ImproperlyConfigured(f"{name}: invalid port in {item!r}; expected host:port") from None
        if not host or parts.path or parts.query or "@" in item:
            raise ImproperlyConfigured(f"{name}: expected host:port, got {item!r}")
        pairs.append((host, port))
    return pairs


def load_env_file(path: Path) -> list[str]:
    """Put the file's NAME=value lines into os.environ for variables the environment leaves unset.

    manage.py reads var/dev.env this way (`make run` writes it; docs/configuration.md). Blank
    lines and # comments are skipped, one pair of surrounding quotes is removed. A variable the
    environment sets, even to something else, always wins. Returns the names it set.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ImproperlyConfigured(f"{path}: cannot read it ({exc.strerror})") from None
    applied = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            # The line is not echoed: it may hold a secret.
            raise ImproperlyConfigured(f"{path}: line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if env_str(name) is None:
            os.environ[name] = value
            applied.append(name)
    return applied
