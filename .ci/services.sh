#!/usr/bin/env bash
# A throw-away PostgreSQL server and an MLflow tracking server on it, for the tests.
#
#   .ci/services.sh COMMAND...   start both, run COMMAND with them, stop both, exit with its status
#   source .ci/services.sh       start both in this shell; an EXIT trap stops them
#
# Both listen on 127.0.0.1 only, on free ports, with all their files in one temporary folder
# (removed on stop), and both authenticate: fresh random secrets, which reach clients through
# the environment and a private password file, never a command line. COMMAND sees:
#   BENCH_TEST_PG_URL         postgresql+psycopg://benchpg@127.0.0.1:PORT/  (role benchpg,
#                             scram-sha-256; libpq reads the password from PGPASSFILE)
#   PGPASSFILE                that file (0600); BENCH_TEST_PG_PASSWORD the password itself
#   BENCH_TEST_PG_BIN, BENCH_TEST_PG_DATA  pg_ctl's folder and the data folder, for the
#                             outage tests (as root, run pg_ctl as the user benchpg)
#   BENCH_TEST_MLFLOW_SERVER  http://127.0.0.1:PORT  (backend: database "mlflow" on that server;
#                             MLflow's basic-auth app, every user may read, only admins write)
#   MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD  its admin, as MLflow clients read them
# As root, PostgreSQL runs as the system user benchpg (created on first use): it refuses root.
# MLflow comes from the repository's .venv/bin when present, else PATH.

bench_services_log() { echo "services: $*" >&2; }

bench_services_die() {
    bench_services_log "$*"
    return 1
}

bench_services_pg_bin() {
    local dir
    for dir in "${BENCH_PG_BIN:-}" /usr/lib/postgresql/*/bin; do
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    dir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || return 1
    echo "$dir"
}

bench_services_secret() {
    "$BENCH_SERVICES_PYTHON" -c 'import secrets; print(secrets.token_hex(16))'
}

# Run a command with umask 077 (the auth database it creates holds password hashes).
bench_services_private() {
    umask 077
    exec "$@"
}

bench_services_free_port() {
    "$BENCH_SERVICES_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Run a command as the PostgreSQL owner: benchpg when we are root, else ourselves.
bench_services_as_owner() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u benchpg -- "$@"
    else
        "$@"
    fi
}

bench_services_owner() {
    [[ $EUID -eq 0 ]] || return 0
    if ! id -u benchpg >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin benchpg
    fi
    chown benchpg "$BENCH_SERVICES_DIR"
}

bench_services_start_pg() {
    local bin port
    bin=$(bench_services_pg_bin) || bench_services_die "no initdb/pg_ctl (install postgresql)" || return 1
    port=$(bench_services_free_port)
    bench_services_owner
    bench_services_as_owner mkdir -p "$BENCH_SERVICES_DIR/socket"
    export BENCH_TEST_PG_PASSWORD
    BENCH_TEST_PG_PASSWORD=$(bench_services_secret)
    # the superuser's password, read once by initdb from a file only its owner can read
    bench_services_as_owner bash -c 'umask 077; cat >"$1"' _ "$BENCH_SERVICES_DIR/pgpw" \
        <<<"$BENCH_TEST_PG_PASSWORD"
    bench_services_as_owner "$bin/initdb" --pgdata="$BENCH_SERVICES_DIR/pg" --username=benchpg \
        --auth=scram-sha-256 --pwfile="$BENCH_SERVICES_DIR/pgpw" --encoding=UTF8 \
        --no-instructions >"$BENCH_SERVICES_DIR/initdb.log" 2>&1 ||
        bench_services_die "initdb failed: $(tail -5 "$BENCH_SERVICES_DIR/initdb.log")" || return 1
    BENCH_SERVICES_PG_CTL="$bin/pg_ctl"
    # in its configuration, so that a test can stop and start it again as it is
    printf '%s\n' "listen_addresses = '127.0.0.1'" "port = $port" \
        "unix_socket_directories = '$BENCH_SERVICES_DIR/socket'" |
        bench_services_as_owner tee -a "$BENCH_SERVICES_DIR/pg/postgresql.conf" >/dev/null
    export BENCH_TEST_PG_BIN="$bin" BENCH_TEST_PG_DATA="$BENCH_SERVICES_DIR/pg"
    bench_services_as_owner "$bin/pg_ctl" --pgdata="$BENCH_SERVICES_DIR/pg" \
        --log="$BENCH_SERVICES_DIR/postgres.log" --wait --timeout=60 start >/dev/null ||
        bench_services_die "postgres did not start: $(tail -5 "$BENCH_SERVICES_DIR/postgres.log")" ||
        return 1
    BENCH_SERVICES_PG_UP=1
    export PGPASSFILE="$BENCH_SERVICES_DIR/pgpass"
    (umask 077 && echo "127.0.0.1:$port:*:benchpg:$BENCH_TEST_PG_PASSWORD" >"$PGPASSFILE")
    local db
    for db in bench mlflow; do
        "$bin/createdb" --host=127.0.0.1 --port="$port" --username=benchpg "$db" ||
            bench_services_die "createdb $db failed" || return 1
    done
    export BENCH_TEST_PG_URL="postgresql+psycopg://benchpg@127.0.0.1:$port/"
    bench_services_log "PostgreSQL on 127.0.0.1:$port (data in $BENCH_SERVICES_DIR/pg)"
}

bench_services_mlflow_bin() {
    if [[ -x "$BENCH_SERVICES_ROOT/.venv/bin/mlflow" ]]; then
        echo "$BENCH_SERVICES_ROOT/.venv/bin/mlflow"
    else
        command -v mlflow || bench_services_die "no mlflow (pip install mlflow)"
    fi
}

bench_services_start_mlflow() {
    local mlflow port
    mlflow=$(bench_services_mlflow_bin) || return 1
    port=$(bench_services_free_port)
    export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD
    MLFLOW_TRACKING_PASSWORD=$(bench_services_secret)
    (umask 077 && printf '%s\n' "[mlflow]" "default_permission = READ" \
        "database_uri = sqlite:///$BENCH_SERVICES_DIR/mlflow-auth.db" "admin_username = admin" \
        >"$BENCH_SERVICES_DIR/auth.ini")
    # setsid: its own process group, so that stopping it stops its workers too; the admin's
    # password and the CSRF key go to the server in its environment only
    MLFLOW_AUTH_CONFIG_PATH="$BENCH_SERVICES_DIR/auth.ini" \
        MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD" \
        MLFLOW_FLASK_SERVER_SECRET_KEY="$(bench_services_secret)" \
        bench_services_private setsid "$mlflow" server --app-name basic-auth --backend-store-uri "${BENCH_TEST_PG_URL}mlflow" \
        --artifacts-destination "$BENCH_SERVICES_DIR/artifacts" --host 127.0.0.1 --port "$port" \
        --workers 1 --allowed-hosts "127.0.0.1:$port,localhost:$port" \
        >"$BENCH_SERVICES_DIR/mlflow.log" 2>&1 </dev/null &
    BENCH_SERVICES_MLFLOW_PID=$!
    export BENCH_TEST_MLFLOW_SERVER="http://127.0.0.1:$port"
    bench_services_wait_mlflow || return 1
    bench_services_log "MLflow server at $BENCH_TEST_MLFLOW_SERVER (pid $BENCH_SERVICES_MLFLOW_PID)"
}

# Up to 3 minutes: on a fresh database MLflow first runs all its schema migrations.
bench_services_wait_mlflow() {
    local i
    for ((i = 0; i < 360; i++)); do
        if curl --silent --fail --max-time 2 "$BENCH_TEST_MLFLOW_SERVER/health" >/dev/null; then
            return 0
        fi
        if ! kill -0 "$BENCH_SERVICES_MLFLOW_PID" 2>/dev/null; then
            bench_services_die "mlflow server exited: $(tail -5 "$BENCH_SERVICES_DIR/mlflow.log")"
            return 1
        fi
        sleep 0.5
    done
    bench_services_die "mlflow server did not answer in 3 minutes: $(tail -5 "$BENCH_SERVICES_DIR/mlflow.log")"
}

# Whether a process of group $1 still runs (its stopped leader stays a zombie until reaped).
bench_services_group_alive() {
    ps -e -o pgid=,stat= | awk -v group="$1" '$1 == group && $2 !~ /^Z/ {found = 1} END {exit !found}'
}

bench_services_stop_mlflow() {
    local pid=${BENCH_SERVICES_MLFLOW_PID:-} i
    [[ -n "$pid" ]] || return 0
    BENCH_SERVICES_MLFLOW_PID=
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        bench_services_group_alive "$pid" || break
        sleep 0.1
    done
    if bench_services_group_alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

bench_services_stop() {
    bench_services_stop_mlflow
    if [[ -n "${BENCH_SERVICES_PG_UP:-}" ]]; then
        BENCH_SERVICES_PG_UP=
        bench_services_as_owner "$BENCH_SERVICES_PG_CTL" --pgdata="$BENCH_SERVICES_DIR/pg" \
            --mode=fast --wait --timeout=60 stop >/dev/null || true
    fi
    if [[ -n "${BENCH_SERVICES_DIR:-}" && -d "$BENCH_SERVICES_DIR" ]]; then
        rm -rf "$BENCH_SERVICES_DIR"
    fi
    BENCH_SERVICES_DIR=
}

bench_services_start() {
    BENCH_SERVICES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    BENCH_SERVICES_PYTHON=$(command -v python3 || command -v python)
    BENCH_SERVICES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-services.XXXXXX")
    chmod 700 "$BENCH_SERVICES_DIR"  # its owner (and root) only: it holds the secrets
    trap bench_services_stop EXIT
    trap 'bench_services_stop; exit 130' INT
    trap 'bench_services_stop; exit 143' TERM
    bench_services_start_pg && bench_services_start_mlflow
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    bench_services_start || { bench_services_stop; return 1; }
else
    set -uo pipefail
    [[ $# -gt 0 ]] || { echo "usage: $0 COMMAND... (or source it)" >&2; exit 2; }
    bench_services_start || exit 1
    "$@"
    status=$?
    bench_services_stop
    exit "$status"
fi
