#!/usr/bin/env bash
# `make serve-prod` / `make stop-prod`: the production topology on ONE machine, for testing.
#
#   PostgreSQL (tracker store + scan answers) <- action server <- 2 Rasa servers <- nginx
#   Redis (lock store)                        <-----------------/
#
# nginx has two doors (deploy/nginx.conf): PROD_HTTP_PORT is the public one (Teams with PROD_TEAMS=1,
# the Telegram webhook; the REST channel and Rasa's API answer 404 there), PROD_INTERNAL_PORT the
# internal one (the REST channel for the Telegram bridge and the load test; /status).
#
# scripts/prod.sh start [SERVICE...]   start what is not running (all by default), wait for health
# scripts/prod.sh stop  [SERVICE...]   stop exactly the processes in $PROD_DIR/*.pid (all by default)
# scripts/prod.sh status               one line per service
# scripts/prod.sh destroy              stop everything, then delete its state: databases (also a PostgreSQL
#                                      directory outside $PROD_DIR, see below), secrets, logs, $PROD_DIR
# scripts/prod.sh env                  the environment the servers run with (export lines, secrets!)
# SERVICE: postgres redis actions rasa-<port> nginx
#
# Everything listens on 127.0.0.1. State, logs, generated secrets (mode 600) and pid files live
# in $PROD_DIR (default var/prod, never committed). PostgreSQL's data and password file live in
# $PROD_DIR/pg when PostgreSQL's OS user can reach that directory; when it cannot (a checkout inside
# a private 0700 directory, e.g. from `mktemp -d` or a home directory), in a directory of their own,
# /var/tmp/mentorwijzer-pg.XXXXXX (owned by that user, mode 700), whose path is kept in
# $PROD_DIR/pg.location; `destroy` deletes it. No Unix sockets (TCP on 127.0.0.1 only).
# Settings (environment):
#   PROD_DIR (var/prod)  PROD_PG_DIR (see above)  PROD_PG_PORT (55432)  PROD_REDIS_PORT (56379)  PROD_ACTIONS_PORT (5055)
#   PROD_RASA_PORTS ("5006 5007")  PROD_HTTP_PORT (8080, public)  PROD_INTERNAL_PORT (8081, internal)
#   PROD_MODEL (models/mentorwijzer.tar.gz)
#   PROD_LOCK_LIFETIME (60: Rasa's TICKET_LOCK_LIFETIME)  PROD_PG_BIN (/usr/lib/postgresql/15/bin)
#   PROD_TEAMS (unset; 1 = also serve /webhooks/teams/ with a dummy app id, token checks against an
#   unused local port, so the fuzz can check that it refuses everything without a valid token)
# When run as root, PostgreSQL runs as the `postgres` system user (created by the Debian package),
# or as a `mentorwijzer` system user created here when that does not exist.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SQLALCHEMY_SILENCE_UBER_WARNING=1 PYTHONDONTWRITEBYTECODE=1

PROD_DIR=${PROD_DIR:-var/prod}
case $PROD_DIR in /*) ;; *) PROD_DIR=$ROOT/$PROD_DIR ;; esac
PG_PORT=${PROD_PG_PORT:-55432}
REDIS_PORT=${PROD_REDIS_PORT:-56379}
ACTIONS_PORT=${PROD_ACTIONS_PORT:-5055}
RASA_PORTS=${PROD_RASA_PORTS:-5006 5007}
HTTP_PORT=${PROD_HTTP_PORT:-8080}
INTERNAL_PORT=${PROD_INTERNAL_PORT:-8081}
MODEL=${PROD_MODEL:-$ROOT/models/mentorwijzer.tar.gz}
LOCK_LIFETIME=${PROD_LOCK_LIFETIME:-60}
PG_BIN=${PROD_PG_BIN:-/usr/lib/postgresql/15/bin}
REDIS_SERVER=${PROD_REDIS_SERVER:-/usr/bin/redis-server}
NGINX=${PROD_NGINX:-/usr/sbin/nginx}
VENV=$ROOT/.venv/bin
LOGS=$PROD_DIR/logs
PG_LOCATION=$PROD_DIR/pg.location
PG_OUTSIDE_PREFIX=/var/tmp/mentorwijzer-pg.
SECRETS=$PROD_DIR/secrets.env
ENV_FILE=$PROD_DIR/prod.env

say() { echo ">> $*" >&2; }
die() { echo "prod.sh: $*" >&2; exit 1; }

# --- where PostgreSQL's files live ---------------------------------------------------------

outside_pg_dir() { # the directory named in $PG_LOCATION, if prod.sh made it (never rm -rf anything else)
  local dir
  [ -s "$PG_LOCATION" ] || return 1
  dir=$(head -n1 "$PG_LOCATION")
  if [[ $dir != "$PG_OUTSIDE_PREFIX"* || ! ${dir#"$PG_OUTSIDE_PREFIX"} =~ ^[A-Za-z0-9]+$ ]]; then
    echo "prod.sh: ignoring $PG_LOCATION: $dir is not a directory prod.sh made" >&2
    return 1
  fi
  echo "$dir"
}

set_pg_paths() { # PGROOT: PROD_PG_DIR, else the recorded directory outside PROD_DIR, else $PROD_DIR/pg
  if [ -n "${PROD_PG_DIR:-}" ]; then
    PGROOT=$PROD_PG_DIR
    case $PGROOT in /*) ;; *) PGROOT=$ROOT/$PGROOT ;; esac
  else
    PGROOT=$(outside_pg_dir) || PGROOT=$PROD_DIR/pg
  fi
  PGDATA=$PGROOT/data
}
set_pg_paths

# --- processes by pid file -----------------------------------------------------------------

pid_of() { # service -> pid if its pid file names a live process that is what we started
  local file=$PROD_DIR/$1.pid pid
  [ -s "$file" ] || return 1
  pid=$(head -n1 "$file" | tr -cd '0-9')
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$(signature "$1")" || return 1
  echo "$pid"
}

signature() { # what the command line of each service contains (guards against recycled pids)
  case $1 in
    postgres) echo "-D $PGDATA " ;;
    redis) echo "127.0.0.1:$REDIS_PORT " ;;
    actions) echo "actions.server --port $ACTIONS_PORT " ;;
    rasa-*) echo "--port ${1#rasa-} " ;;
    nginx) echo "nginx: master" ;;
  esac
}

launch() { # service logfile command... : own session (setsid), detached, pid file = process
  local name=$1 log=$2
  shift 2
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $! > "$PROD_DIR/$name.pid"
}

log_of() { case $1 in nginx) echo "$LOGS/nginx-error.log" ;; postgres) echo "$PGROOT/postgres.log" ;; *) echo "$LOGS/$1.log" ;; esac; }

wait_http() { # service url seconds
  local name=$1 url=$2 deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null; do
    pid_of "$name" >/dev/null || die "$name exited during start-up; see $(log_of "$name")"
    [ $SECONDS -lt $deadline ] || die "$name not healthy after $3 s (${url%%\?*}); see $(log_of "$name")"
    sleep 1
  done
}

alive() { local state; state=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${state:0:1}" != Z ]; }

stop_pid() { # service [signal] : signal the process group, wait up to 30 s, then SIGKILL
  local name=$1 sig=${2:-TERM} pid i
  pid=$(pid_of "$name") || { rm -f "$PROD_DIR/$name.pid"; return 0; }
  say "stopping $name (pid $pid)"
  kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "$name did not stop in 30 s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PROD_DIR/$name.pid"
}

# --- secrets and environment ---------------------------------------------------------------

random_hex() { head -c "${1:-24}" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Every secret in $SECRETS. A key missing from an existing file (a PROD_DIR made by an older prod.sh)
# is added; existing values are never changed (the database passwords are already in use).
SECRET_KEYS="PG_SUPERUSER_PASSWORD PG_APP_PASSWORD REDIS_PASSWORD RASA_AUTH_TOKEN
MENTORWIJZER_CHANNEL_SECRET MENTORWIJZER_ACTION_SECRET MENTORWIJZER_LOG_KEY"

ensure_secrets() {
  local key
  mkdir -p "$PROD_DIR" "$LOGS"
  chmod 755 "$PROD_DIR"
  (
    # One writer at a time: the load test starts and stops services concurrently.
    flock 9
    if [ ! -s "$SECRETS" ]; then
      [ ! -e "$PGDATA/PG_VERSION" ] || die "$SECRETS is missing but $PGDATA exists: restore the file or remove $PROD_DIR"
    fi
    umask 077
    touch "$SECRETS"
    for key in $SECRET_KEYS; do
      grep -q "^$key=" "$SECRETS" || echo "$key=$(random_hex 32)" >> "$SECRETS"
    done
  ) 9>"$PROD_DIR/secrets.lock"
  # shellcheck disable=SC1090
  . "$SECRETS"
  umask 077
  # Written to a temporary file and renamed: concurrent `prod.sh start X` calls never read half a file.
  cat > "$ENV_FILE.$$" <<EOF
# Generated by scripts/prod.sh from $SECRETS; the servers' environment (contains secrets).
MENTORWIJZER_DB_URL=postgresql://mentorwijzer:$PG_APP_PASSWORD@127.0.0.1:$PG_PORT/mentorwijzer
MENTORWIJZER_TRACKER_DB_URL=postgresql://mentorwijzer:$PG_APP_PASSWORD@127.0.0.1:$PG_PORT/rasa_tracker
MENTORWIJZER_TRACKER_DB_HOST=127.0.0.1
MENTORWIJZER_TRACKER_DB_PORT=$PG_PORT
MENTORWIJZER_TRACKER_DB_NAME=rasa_tracker
MENTORWIJZER_TRACKER_DB_USER=mentorwijzer
MENTORWIJZER_TRACKER_DB_PASSWORD=$PG_APP_PASSWORD
MENTORWIJZER_REDIS_HOST=127.0.0.1
MENTORWIJZER_REDIS_PORT=$REDIS_PORT
MENTORWIJZER_REDIS_PASSWORD=$REDIS_PASSWORD
MENTORWIJZER_ACTION_URL=http://127.0.0.1:$ACTIONS_PORT/webhook
MENTORWIJZER_ACTION_SECRET=$MENTORWIJZER_ACTION_SECRET
MENTORWIJZER_CHANNEL_SECRET=$MENTORWIJZER_CHANNEL_SECRET
MENTORWIJZER_LOG_KEY=$MENTORWIJZER_LOG_KEY
MENTORWIJZER_RASA_URL=http://127.0.0.1:$INTERNAL_PORT
MENTORWIJZER_HOST=127.0.0.1
MENTORWIJZER_VAR_DIR=$PROD_DIR/var
RASA_AUTH_TOKEN=$RASA_AUTH_TOKEN
TICKET_LOCK_LIFETIME=$LOCK_LIFETIME
SQL_POOL_SIZE=10
SQL_MAX_OVERFLOW=20
EOF
  if [ "${PROD_TEAMS:-}" = 1 ]; then
    printf 'MICROSOFT_APP_ID=prod-test-app\nMICROSOFT_APP_PASSWORD=%s\n' "$RASA_AUTH_TOKEN" >> "$ENV_FILE.$$"
  fi
  mv -f "$ENV_FILE.$$" "$ENV_FILE"
  umask 022
  set -a
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  set +a
}

# --- PostgreSQL ----------------------------------------------------------------------------

pg_os_user() {
  if [ "$(id -u)" != 0 ]; then id -un; return; fi
  if id postgres >/dev/null 2>&1; then echo postgres; return; fi
  id mentorwijzer >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mentorwijzer
  echo mentorwijzer
}

as_pg() { # run a command as the PostgreSQL OS user (from /: it may not be allowed into the checkout)
  local user
  user=$(pg_os_user)
  if [ "$user" = "$(id -un)" ]; then "$@"; else (cd / && runuser -u "$user" -- "$@"); fi
}

place_pg_dir() { # user : before initdb, move PGROOT out of PROD_DIR when the PostgreSQL user cannot reach it
  local user=$1 outside
  [ -z "${PROD_PG_DIR:-}" ] || return 0
  if outside=$(outside_pg_dir 2>/dev/null); then
    # Still ours? (/var/tmp is shared: a vanished directory's name is never reused)
    [ -d "$outside" ] && [ ! -L "$outside" ] && [ "$(stat -c %U "$outside")" = "$user" ] && return 0
  else
    [ ! -e "$PGDATA/PG_VERSION" ] || return 0
    [ "$user" != "$(id -un)" ] || return 0
    ! as_pg test -x "$PROD_DIR" 2>/dev/null || return 0
  fi
  PGROOT=$(mktemp -d "${PG_OUTSIDE_PREFIX}XXXXXXXX")
  echo "$PGROOT" > "$PG_LOCATION"
  PGDATA=$PGROOT/data
  say "$user cannot reach $PROD_DIR: PostgreSQL's files go to $PGROOT (scripts/prod.sh destroy deletes it)"
}

psql_super() {
  PGPASSWORD=$PG_SUPERUSER_PASSWORD "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
    -U postgres -d postgres "$@"
}

start_postgres() {
  [ -x "$PG_BIN/postgres" ] || die "PostgreSQL not found in $PG_BIN (apt-get install -y postgresql)"
  local user
  user=$(pg_os_user)
  place_pg_dir "$user"
  mkdir -p "$PGROOT"
  chown "$user" "$PGROOT"
  chmod 700 "$PGROOT"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    say "initdb $PGDATA (as $user)"
    (umask 077; printf '%s\n' "$PG_SUPERUSER_PASSWORD" > "$PGROOT/pwfile")
    chown "$user" "$PGROOT/pwfile"
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$PGROOT/pwfile" --auth-host=scram-sha-256 \
      --auth-local=peer --encoding=UTF8 --locale=C >"$LOGS/initdb.log" 2>&1 || die "initdb failed; see $LOGS/initdb.log"
    rm -f "$PGROOT/pwfile"
    echo "include_if_exists = 'mentorwijzer.conf'" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
  fi
  as_pg tee "$PGDATA/mentorwijzer.conf" >/dev/null <<EOF
# Written by scripts/prod.sh at every start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
EOF
  if pid_of postgres >/dev/null; then return 0; fi
  rm -f "$PROD_DIR/postgres.pid"
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGROOT/postgres.log" -w -t 60 start >/dev/null \
    || die "PostgreSQL did not start; see $PGROOT/postgres.log"
  head -n1 "$PGDATA/postmaster.pid" > "$PROD_DIR/postgres.pid"
  if [ -z "$(psql_super -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'mentorwijzer'")" ]; then
    # On stdin, not -c: a command line is visible to every local user.
    printf "CREATE ROLE mentorwijzer LOGIN PASSWORD '%s';\n" "$PG_APP_PASSWORD" | psql_super -f -
  fi
  local db
  for db in mentorwijzer rasa_tracker; do
    if [ -z "$(psql_super -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      psql_super -c "CREATE DATABASE $db OWNER mentorwijzer"
    fi
  done
}

stop_postgres() {
  local pid
  if pid=$(pid_of postgres); then
    say "stopping PostgreSQL (pid $pid, fast)"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 || stop_pid postgres
  fi
  rm -f "$PROD_DIR/postgres.pid"
}

migrate() {
  say "database schema: upgrade to the newest revision"
  "$VENV/python" -c "from bot import db_migrate; print('schema at revision', db_migrate.upgrade())" \
    >>"$LOGS/migrate.log" 2>&1 || die "migration failed; see $LOGS/migrate.log"
}

# --- Redis ---------------------------------------------------------------------------------

start_redis() {
  [ -x "$REDIS_SERVER" ] || die "redis-server not found (apt-get install -y redis-server)"
  pid_of redis >/dev/null && return 0
  mkdir -p "$PROD_DIR/redis"
  (umask 077; cat > "$PROD_DIR/redis/redis.conf" <<EOF
# Written by scripts/prod.sh. Lock store only: nothing worth persisting.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $PROD_DIR/redis.pid
logfile $LOGS/redis.log
dir $PROD_DIR/redis
save ""
appendonly no
requirepass $REDIS_PASSWORD
EOF
)
  say "starting Redis on 127.0.0.1:$REDIS_PORT"
  "$REDIS_SERVER" "$PROD_DIR/redis/redis.conf" || die "Redis did not start; see $LOGS/redis.log"
  local deadline=$((SECONDS + 20))
  until REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
    [ $SECONDS -lt $deadline ] || die "Redis not answering; see $LOGS/redis.log"
    sleep 0.2
  done
}

# --- action server, Rasa servers, nginx ----------------------------------------------------

start_actions() {
  pid_of actions >/dev/null && return 0
  say "starting the action server on 127.0.0.1:$ACTIONS_PORT"
  # Binds MENTORWIJZER_HOST (127.0.0.1, prod.env); refuses calls without MENTORWIJZER_ACTION_SECRET.
  launch actions "$LOGS/actions.log" "$VENV/python" -m actions.server --port "$ACTIONS_PORT"
  wait_http actions "http://127.0.0.1:$ACTIONS_PORT/health" 120
}

render_credentials() { # deploy/credentials.yml, with the Teams channel switched on when PROD_TEAMS=1
  if [ "${PROD_TEAMS:-}" = 1 ]; then
    sed 's|^# bot.channels.teams.TeamsInput:$|bot.channels.teams.TeamsInput:\
  open_id_metadata_url: "http://127.0.0.1:9/openid"\
  oauth_base_url: "http://127.0.0.1:9"|' deploy/credentials.yml > "$PROD_DIR/credentials.yml"
  else
    cp deploy/credentials.yml "$PROD_DIR/credentials.yml"
  fi
}

start_rasa() { # port... : start in parallel, then wait for each
  local port started=() log
  local -A offset=()
  [ -s "$MODEL" ] || die "no model at $MODEL (make install trains it)"
  render_credentials
  for port in "$@"; do
    pid_of "rasa-$port" >/dev/null && continue
    say "starting Rasa on 127.0.0.1:$port"
    log=$LOGS/rasa-$port.log
    offset[$port]=$(stat -c %s "$log" 2>/dev/null || echo 0)
    launch "rasa-$port" "$log" "$VENV/rasa" run --model "$MODEL" --interface 127.0.0.1 \
      --port "$port" --endpoints deploy/endpoints.yml --credentials "$PROD_DIR/credentials.yml" \
      --enable-api --auth-token "$RASA_AUTH_TOKEN"
    started+=("$port")
  done
  for port in "${started[@]}"; do
    wait_http "rasa-$port" "http://127.0.0.1:$port/status?token=$RASA_AUTH_TOKEN" 600
    # Rasa falls back to an in-memory tracker store (a warning only) when it cannot import the
    # tracker store class of deploy/endpoints.yml: conversations would then live in one process.
    if tail -c "+$((offset[$port] + 1))" "$LOGS/rasa-$port.log" | grep -q "InMemoryTrackerStore"; then
      stop_pid "rasa-$port"
      die "rasa-$port fell back to the in-memory tracker store (tracker_store type in deploy/endpoints.yml not importable); see $LOGS/rasa-$port.log"
    fi
  done
}

render_nginx() {
  local servers="" port
  for port in $RASA_PORTS; do
    servers+="        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
  done
  mkdir -p "$PROD_DIR/nginx"
  NGINX_LISTEN="127.0.0.1:$HTTP_PORT" NGINX_INTERNAL_LISTEN="127.0.0.1:$INTERNAL_PORT" NGINX_RUN_DIR="$PROD_DIR/nginx" \
    NGINX_LOG_DIR="$LOGS" RASA_UPSTREAM_SERVERS="$servers" "$VENV/python" - deploy/nginx.conf "$PROD_DIR/nginx.conf" <<'EOF'
import os, re, sys
names = ("NGINX_LISTEN", "NGINX_INTERNAL_LISTEN", "NGINX_RUN_DIR", "NGINX_LOG_DIR", "RASA_UPSTREAM_SERVERS")
text = open(sys.argv[1], encoding="utf-8").read()
text = re.sub(r"\$\{(%s)\}" % "|".join(names), lambda m: os.environ[m.group(1)].rstrip("\n"), text)
open(sys.argv[2], "w", encoding="utf-8").write(text)
EOF
}

start_nginx() {
  [ -x "$NGINX" ] || die "nginx not found (apt-get install -y nginx)"
  [ "$HTTP_PORT" != "$INTERNAL_PORT" ] || die "PROD_HTTP_PORT and PROD_INTERNAL_PORT must differ (public and internal doors)"
  render_nginx
  if pid_of nginx >/dev/null; then return 0; fi
  # nginx writes the pid file itself; prod.sh reads it as nginx.pid like the others.
  "$NGINX" -t -q -e "$LOGS/nginx-error.log" -p "$PROD_DIR/nginx" -c "$PROD_DIR/nginx.conf" \
    || die "nginx configuration invalid ($PROD_DIR/nginx.conf)"
  say "starting nginx on 127.0.0.1:$HTTP_PORT (public) and 127.0.0.1:$INTERNAL_PORT (internal)"
  "$NGINX" -e "$LOGS/nginx-error.log" -p "$PROD_DIR/nginx" -c "$PROD_DIR/nginx.conf"
  ln -sf nginx/nginx.pid "$PROD_DIR/nginx.pid"
  wait_http nginx "http://127.0.0.1:$INTERNAL_PORT/webhooks/rest/" 30
  local public
  public=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$HTTP_PORT/webhooks/rest/" || true)
  [ "$public" = 404 ] || die "nginx's public port $HTTP_PORT answers $public for /webhooks/rest/ (must be 404); see $PROD_DIR/nginx.conf"
}

# --- commands ------------------------------------------------------------------------------

all_services() { printf "%s\n" postgres redis actions; for p in $RASA_PORTS; do echo "rasa-$p"; done; echo nginx; }

cmd_start() {
  local services=("$@") s rasa=()
  [ ${#services[@]} -gt 0 ] || mapfile -t services < <(all_services)
  ensure_secrets
  for s in "${services[@]}"; do
    case $s in
      postgres) start_postgres; migrate ;;
      redis) start_redis ;;
      actions) start_actions ;;
      rasa-*) rasa+=("${s#rasa-}") ;;
      nginx) [ ${#rasa[@]} -eq 0 ] || { start_rasa "${rasa[@]}"; rasa=(); }; start_nginx ;;
      *) die "unknown service $s (postgres redis actions rasa-<port> nginx)" ;;
    esac
  done
  [ ${#rasa[@]} -eq 0 ] || start_rasa "${rasa[@]}"
  cmd_status
}

cmd_stop() {
  local services=("$@") s
  [ ${#services[@]} -gt 0 ] || mapfile -t services < <(all_services | tac)
  for s in "${services[@]}"; do
    case $s in
      postgres) stop_postgres ;;
      nginx) stop_pid nginx QUIT ;;
      redis|actions|rasa-*) stop_pid "$s" ;;
      *) die "unknown service $s" ;;
    esac
  done
}

cmd_destroy() { # stop everything, then remove what prod.sh made (a PROD_DIR with other files in it stays)
  local outside
  cmd_stop
  outside=$(outside_pg_dir) || outside=""
  if [ -n "$outside" ]; then
    say "deleting $outside"
    rm -rf -- "$outside"
  fi
  if [ -n "${PROD_PG_DIR:-}" ]; then
    say "keeping PROD_PG_DIR=$PGROOT (yours to delete)"
  fi
  say "deleting the state in $PROD_DIR"
  rm -rf -- "$PROD_DIR/pg" "$PROD_DIR/redis" "$PROD_DIR/nginx" "$PROD_DIR/var" "$LOGS" "$SECRETS" "$ENV_FILE" \
    "$PROD_DIR/secrets.lock" "$PROD_DIR/credentials.yml" "$PROD_DIR/nginx.conf" "$PG_LOCATION"
  rm -f -- "$PROD_DIR"/*.pid
  rmdir -- "$PROD_DIR" 2>/dev/null || true
}

cmd_status() {
  local s pid
  for s in $(all_services); do
    if pid=$(pid_of "$s"); then echo "$s running pid=$pid"; else echo "$s stopped"; fi
  done
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) cmd_status ;;
  destroy) cmd_destroy ;;
  env) ensure_secrets >/dev/null; sed -n 's/^\([A-Z_]*=.*\)/export \1/p' "$ENV_FILE" ;;
  *) echo "usage: scripts/prod.sh start|stop [postgres redis actions rasa-<port> nginx] | status | env | destroy" >&2; exit 2 ;;
esac
