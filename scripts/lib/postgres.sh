# shellcheck shell=bash disable=SC2154,SC2034  # me is the caller's; PG_PORT is read by the caller
# Shared by scripts/test, scripts/bench and .ci/run (find_pg_bin only): find PostgreSQL's server
# binaries and run a throwaway cluster on a free 127.0.0.1 port. The caller defines `me`, `say`
# and `die`, and calls `stop_cluster` on exit; `pg_url` and `psql_q` then reach the cluster. PG_DURABLE=1 keeps fsync and synchronous commits on (benchmarks).
# initdb/postgres refuse to run as root, so as root they run as the `postgres` system user
# (created if missing).

# shellcheck source=scripts/lib/port.sh
source "${BASH_SOURCE[0]%/*}/port.sh"

pg_tmp=""
pg_data=""
pg_bin=""
pg_started=0

# pg_url DATABASE: the throwaway cluster's URL for DATABASE.
pg_url() { printf 'postgres://postgres@127.0.0.1:%s/%s' "$PG_PORT" "$1"; }
# psql_q ARGS...: psql that stops at the first error and prints only what is asked for.
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# Run a command as the user that owns the cluster.
run_pg() {
    if [[ $EUID -ne 0 ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        # cd /: the caller's cwd may be unreadable for postgres.
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && su -s /bin/bash postgres -c "$(printf '%q ' "$@")")
    fi
}

# Print the directory holding initdb, pg_ctl and postgres, or fail.
find_pg_bin() {
    local d initdb
    if initdb=$(command -v initdb 2>/dev/null); then
        d=$(dirname "$initdb")
        if [[ -x $d/pg_ctl && -x $d/postgres ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    local candidates=()
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && candidates+=("$d")
    done
    [[ ${#candidates[@]} -gt 0 ]] || return 1
    printf '%s\n' "${candidates[@]}" | sort -V | tail -n 1
}

start_cluster() {
    if [[ $EUID -eq 0 ]]; then
        if ! id -u postgres >/dev/null 2>&1; then
            useradd --system --user-group --no-create-home \
                --home-dir /nonexistent --shell /usr/sbin/nologin postgres ||
                die "could not create the postgres system user"
        fi
        # Under /tmp so that the postgres user can reach it.
        pg_tmp=$(mktemp -d /tmp/connect-manager-pg.XXXXXX)
        chown postgres: "$pg_tmp"
    else
        pg_tmp=$(mktemp -d "${TMPDIR:-/tmp}/connect-manager-pg.XXXXXX")
    fi
    pg_data="$pg_tmp/data"
    run_pg mkdir "$pg_tmp/sock"

    if ! run_pg "$pg_bin/initdb" -D "$pg_data" --auth=trust -U postgres \
            --encoding=UTF8 --no-locale -N >"$pg_tmp/initdb.log" 2>&1; then
        say "initdb failed; last lines of its output:"
        tail -n 20 "$pg_tmp/initdb.log" >&2 || true
        exit 1
    fi
    cat >>"$pg_data/postgresql.conf" <<EOF

# $me: throwaway cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg_tmp/sock'
max_connections = 300
EOF
    if [[ ${PG_DURABLE:-0} != 1 ]]; then
        # Tests: nothing here must survive a crash.
        printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$pg_data/postgresql.conf"
    fi

    local port="" lowest=55432 _
    for _ in 1 2 3 4 5; do
        port=$(free_port "$lowest") || die "no free TCP port found on 127.0.0.1"
        # Mark as started before pg_ctl so that cleanup also stops a server
        # that came up after pg_ctl gave up waiting.
        pg_started=1
        if run_pg "$pg_bin/pg_ctl" start -D "$pg_data" -l "$pg_tmp/postgres.log" \
                -o "-p $port" -w -t 60 >>"$pg_tmp/pg_ctl.log" 2>&1; then
            PG_PORT=$port
            return 0
        fi
        # Lost a race for the port? Then try another one.
        if grep -qi 'address already in use' "$pg_tmp/postgres.log" 2>/dev/null; then
            : >"$pg_tmp/postgres.log"
            lowest=$((port + 1))
            continue
        fi
        break
    done
    say "could not start PostgreSQL; last lines of its log:"
    tail -n 30 "$pg_tmp/postgres.log" "$pg_tmp/pg_ctl.log" >&2 2>/dev/null || true
    exit 1
}


# Stop the cluster (if this script started one) and remove its directory.
stop_cluster() {
    if [[ $pg_started -eq 1 ]]; then
        if ! run_pg "$pg_bin/pg_ctl" stop -D "$pg_data" -m immediate -w -t 30 \
                >>"$pg_tmp/pg_ctl.log" 2>&1; then
            # pg_ctl could not stop it; kill the postmaster directly.
            local pid=""
            pid=$(head -n 1 "$pg_data/postmaster.pid" 2>/dev/null) || true
            if [[ $pid =~ ^[0-9]+$ ]]; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        pg_started=0
    fi
    if [[ -n $pg_tmp && -d $pg_tmp ]]; then
        rm -rf -- "$pg_tmp" || true
    fi
}
