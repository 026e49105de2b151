#!/usr/bin/env bash
# Make sure PostgreSQL (DATABASE_URL) and Redis (REDIS_URL) answer; start them where they are
# installed but stopped; otherwise fail with a message that says what is missing.
set -euo pipefail

db_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/askpro}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379/0}"

hostport() {  # scheme://[user@]host:port/... -> "host port"
  local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"
  local host="${rest%%:*}" port="${rest##*:}"
  [ "$port" = "$rest" ] && port="$2"
  echo "$host $port"
}

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {  # name host port
  for _ in $(seq 1 30); do listening "$2" "$3" && return 0; sleep 1; done
  echo "ERROR: $1 did not come up on $2:$3" >&2; return 1
}

read -r pg_host pg_port <<<"$(hostport "$db_url" 5432)"
if ! listening "$pg_host" "$pg_port"; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is not answering on $pg_host:$pg_port; starting the installed cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    wait_for PostgreSQL "$pg_host" "$pg_port"
  else
    echo "ERROR: PostgreSQL is not reachable at $pg_host:$pg_port (DATABASE_URL) and is not installed here." >&2
    echo "       Install it (apt-get install postgresql) or point DATABASE_URL at a server." >&2
    exit 1
  fi
fi

read -r redis_host redis_port <<<"$(hostport "$redis_url" 6379)"
if ! listening "$redis_host" "$redis_port"; then
  if command -v redis-server >/dev/null; then
    echo "Redis is not answering on $redis_host:$redis_port; starting redis-server" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis "$redis_host" "$redis_port"
  else
    echo "ERROR: Redis is not reachable at $redis_host:$redis_port (REDIS_URL) and is not installed here." >&2
    echo "       Install it (apt-get install redis-server) or point REDIS_URL at a server." >&2
    exit 1
  fi
fi
if [ "${SKIP_RABBITMQ:-0}" = "1" ]; then  # make serve: its broker is Redis
  echo "PostgreSQL ($pg_host:$pg_port) and Redis ($redis_host:$redis_port) are reachable." >&2
  exit 0
fi
# RabbitMQ: the runtime-install test runs a worker and beat on it (tests/install), tests/cluster a
# worker with quorum queues.
rabbit_url="${TEST_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672//}"
read -r rabbit_host rabbit_port <<<"$(hostport "$rabbit_url" 5672)"
if ! listening "$rabbit_host" "$rabbit_port"; then
  if command -v rabbitmq-server >/dev/null; then
    echo "RabbitMQ is not answering on $rabbit_host:$rabbit_port; starting rabbitmq-server" >&2
    rabbitmq-server -detached
    wait_for RabbitMQ "$rabbit_host" "$rabbit_port"
  else
    echo "ERROR: RabbitMQ is not reachable at $rabbit_host:$rabbit_port (TEST_RABBITMQ_URL) and is not installed here." >&2
    echo "       Install it (apt-get install rabbitmq-server) or point TEST_RABBITMQ_URL at a server." >&2
    exit 1
  fi
fi
echo "PostgreSQL ($pg_host:$pg_port), Redis ($redis_host:$redis_port) and RabbitMQ ($rabbit_host:$rabbit_port) are reachable." >&2
