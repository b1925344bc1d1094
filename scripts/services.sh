#!/usr/bin/env bash
# Makes sure the services run-notifier needs are running on 127.0.0.1, installing them with
# apt-get (Debian, Ubuntu) when missing:
#   scripts/services.sh            RabbitMQ and PostgreSQL (what `cargo test` needs)
#   scripts/services.sh rabbitmq   RabbitMQ only (what the worker needs)
#   scripts/services.sh promtool   promtool (what CI's alert-rule check needs)
#   scripts/services.sh python3    python3 (what CI's docs check, scripts/check-docs, needs)
# RabbitMQ: 127.0.0.1:5672, guest/guest. PostgreSQL: 127.0.0.1:5432, user `postgres` with trust
# auth on local connections, database `test`. Does nothing for a service already listening.
set -euo pipefail

log() { printf '== %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "$name did not open port $port within 120 s" >&2
  exit 1
}

# Root for installing and starting services: directly, or through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "installing or starting a service needs root (or sudo): $*" >&2
    exit 1
  fi
}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "apt-get not found: install $* yourself (see README, Run it)" >&2
    exit 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

ensure_rabbitmq() {
  if port_open 5672; then
    log "RabbitMQ is running"
    return
  fi
  command -v rabbitmq-server >/dev/null || { log "installing RabbitMQ"; apt_install rabbitmq-server; }
  log "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
  wait_for_port 5672 RabbitMQ
  # The broker accepts connections a moment before it serves them.
  as_root rabbitmqctl await_startup >/dev/null 2>&1 || true
}

ensure_postgresql() {
  if port_open 5432; then
    log "PostgreSQL is running"
    # The TLS tests start private clusters of their own from the server binaries.
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      log "installing PostgreSQL's server binaries (for the TLS tests' private clusters)"
      apt_install postgresql
    fi
  else
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      log "installing PostgreSQL"
      apt_install postgresql
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    # The tests connect as `postgres` over TCP without a password.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! as_root grep -q "run-notifier tests" "$hba"; then
      as_root sh -c "{ echo '# run-notifier tests: trust local connections'
        echo 'local all all trust'
        echo 'host all all 127.0.0.1/32 trust'
        echo 'host all all ::1/128 trust'
        cat '$hba'; } > '$hba.new' && mv '$hba.new' '$hba'"
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start \
      || as_root pg_ctlcluster "$version" main start
    wait_for_port 5432 PostgreSQL
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -qc 'select 1' >/dev/null 2>&1; then
    log "creating the database test"
    psql -h 127.0.0.1 -U postgres -qc 'create database test' || true
  fi
}

# promtool (CI checks the alert rules with it) comes with Debian's `prometheus` package (about
# 19 MB; the server it also installs is not started). Without recommends it pulls in no
# exporters.
ensure_promtool() {
  if command -v promtool >/dev/null; then
    return
  fi
  log "installing promtool (Debian's prometheus package)"
  apt_install --no-install-recommends prometheus
}

# scripts/check-docs needs only python3's standard library.
ensure_python3() {
  if command -v python3 >/dev/null; then
    return
  fi
  log "installing python3"
  apt_install --no-install-recommends python3
}

case "${1:-all}" in
  rabbitmq) ensure_rabbitmq ;;
  postgresql) ensure_postgresql ;;
  promtool) ensure_promtool ;;
  python3) ensure_python3 ;;
  all) ensure_rabbitmq; ensure_postgresql ;;
  *) echo "usage: $0 [all|rabbitmq|postgresql|promtool|python3]" >&2; exit 2 ;;
esac
