"""High-availability settings: what REDIS_SENTINELS, a sentinel:// broker and quorum queues turn
into, and the combinations that stop start-up with a message naming the variable (the failover
and the RabbitMQ worker themselves: tests/cluster/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from askpro import env

PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "caches": s.CACHES,
    "broker": s.CELERY_BROKER_TRANSPORT_OPTIONS,
    "backend": getattr(s, "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS", None),
    "exchange_type": getattr(s, "CELERY_TASK_DEFAULT_EXCHANGE_TYPE", None),
    "queue_type": s.CELERY_TASK_DEFAULT_QUEUE_TYPE,
}))
"""


def settings_with(variables: dict[str, str], script: str = PRINT_SETTINGS) -> subprocess.Popen:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "askpro.settings", "DEBUG": "1"}
    for name in (
        "REDIS_URL",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
        "CELERY_BROKER_URL",
        "CELERY_TASK_DEFAULT_QUEUE_TYPE",
    ):
        environment.pop(name, None)
    environment.update(variables)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_it_points_the_cache_and_celery_at_the_sentinels_master():
    child = settings_with(
        {
            "REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2 [fd00::3]:26380",
            "REDIS_SENTINEL_MASTER": "askpro-main",
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
            "REDIS_PASSWORD": "master-secret",
            "REDIS_DB": "2",
            "REDIS_SOCKET_TIMEOUT": "0.5",
            "CELERY_BROKER_URL": "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379/3",
            "CELERY_RESULT_BACKEND": "sentinel://10.0.0.1:26379/4",
        }
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    result = json.loads(out)
    cache = result["caches"]["default"]
    assert cache["LOCATION"] == ["redis://askpro-main/2"]  # one location: the master only
    options = cache["OPTIONS"]
    assert options["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
    assert options["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert options["SENTINELS"] == [["10.0.0.1", 26379], ["10.0.0.2", 26379], ["fd00::3", 26380]]
    assert options["PASSWORD"] == "master-secret"
    sentinel_kwargs = {"socket_connect_timeout": 1.0, "socket_timeout": 0.5, "password": "sentinel-secret"}
    assert options["SENTINEL_KWARGS"] == sentinel_kwargs
    assert result["broker"]["master_name"] == "askpro-main"
    assert result["broker"]["sentinel_kwargs"] == sentinel_kwargs
    assert result["backend"] == {"master_name": "askpro-main", "sentinel_kwargs": sentinel_kwargs}


def test_it_keeps_the_default_client_for_a_plain_redis_url():
    child = settings_with(
        {"REDIS_URL": "redis://127.0.0.1:6379/0", "CELERY_BROKER_URL": "redis://127.0.0.1/1"}
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    result = json.loads(out)
    assert result["caches"]["default"]["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.DefaultClient"
    assert "master_name" not in result["broker"]


BAD = [
    ({"REDIS_SENTINELS": "10.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
    ({"REDIS_SENTINELS": "10.0.0.1:port", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "10.0.0.1", "REDIS_SENTINEL_MASTER": "m", "REDIS_URL": "redis://x/0"}, "REDIS_URL"),
    ({"REDIS_SENTINELS": "10.0.0.1", "REDIS_SENTINEL_MASTER": "MyMaster"}, "REDIS_SENTINEL_MASTER"),
    ({"REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINEL_MASTER"),
    ({"CELERY_BROKER_URL": "sentinel://10.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
    ({"REDIS_URL": "redis://x/0", "REDIS_PASSWORD": "p"}, "REDIS_PASSWORD"),
    ({"REDIS_SENTINEL_PASSWORD": "p"}, "REDIS_SENTINEL_PASSWORD"),
    (
        {"CELERY_BROKER_URL": "amqp://h//", "CELERY_TASK_DEFAULT_QUEUE_TYPE": "stream"},
        "CELERY_TASK_DEFAULT_QUEUE_TYPE",
    ),
    (
        {"CELERY_BROKER_URL": "redis://h/1", "CELERY_TASK_DEFAULT_QUEUE_TYPE": "quorum"},
        "CELERY_TASK_DEFAULT_QUEUE_TYPE",
    ),
]


def test_it_stops_start_up_on_a_sentinel_setting_that_cannot_work():
    children = [
        (variable, settings_with(values, "import django; django.setup()")) for values, variable in BAD
    ]
    for variable, child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode != 0, variable
        last = err.strip().splitlines()[-1]
        assert "ImproperlyConfigured" in last and variable in last, (variable, last)
        assert "secret" not in last


def test_it_gives_quorum_queues_a_topic_exchange_and_confirmed_publishes():
    child = settings_with(
        {"CELERY_BROKER_URL": "amqp://u:p@h:5672/v", "CELERY_TASK_DEFAULT_QUEUE_TYPE": "quorum"}
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    result = json.loads(out)
    assert (result["queue_type"], result["exchange_type"]) == ("quorum", "topic")
    assert result["broker"]["confirm_publish"] is True


@pytest.mark.parametrize("value", ["h:1/x", "user@h:1", "h:99999", ":26379"])
def test_it_names_the_variable_for_a_bad_sentinel_address(value):
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINELS"):
        env.parse_host_ports("REDIS_SENTINELS", value, default_port=26379)
