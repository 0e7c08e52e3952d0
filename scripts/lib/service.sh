# shellcheck shell=bash disable=SC2154  # me, say, die and root are the caller's
# Shared by scripts/generated-client-check, scripts/fuzz, scripts/bench-ab and
# scripts/gateway-check: run the built service on a free 127.0.0.1 port and stop it, and anything
# else started, on every exit path.
# The caller defines `me`, `say`, `die` and `root` (the repository), sources this file, then calls
# `service_traps` once. `tmp` (a scratch directory, removed on exit) is made by `service_traps`;
# a caller with more to clean up defines `cleanup_more`, which runs first.

# shellcheck source=scripts/lib/port.sh
source "${BASH_SOURCE[0]%/*}/port.sh"

tmp=""
service_pid=""
child_pid=""
port=""
base_url=""

# resolve_bin CALLER_DIR PATH: sets `bin` to PATH (default target/debug/connect-manager), a
# relative path taken from where the script was called, else from the repository root.
resolve_bin() {
    bin=${2:-target/debug/connect-manager}
    if [[ $bin != /* ]]; then
        if [[ -e $1/$bin ]]; then
            bin=$1/$bin
        else
            bin=$root/$bin
        fi
    fi
    [[ -x $bin ]] || die "service binary not found or not executable: $bin (build it with scripts/test or cargo build)"
}

# Run "$@" in the background and wait for it, so that INT/TERM reach the traps at once
# (bash runs a trap only after a foreground child has finished).
run_child() {
    local rc=0
    "$@" &
    child_pid=$!
    wait "$child_pid" || rc=$?
    child_pid=""
    return "$rc"
}

# stop_pid PID [NAME]: SIGTERM, then SIGKILL (said, when NAME is given) if PID still runs 10 s
# later; reaps it.
stop_pid() {
    local pid=$1 name=${2:-} i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            [[ -z $name ]] || say "$name did not stop within 10 s of SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

stop_service() {
    [[ -n $service_pid ]] || return 0
    local pid=$service_pid
    service_pid=""
    stop_pid "$pid" service
}

# shellcheck disable=SC2317  # run by the EXIT trap
service_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if declare -F cleanup_more >/dev/null; then
        cleanup_more || true
    fi
    if [[ -n $child_pid ]]; then
        kill -TERM "$child_pid" 2>/dev/null || true
        wait "$child_pid" 2>/dev/null || true
    fi
    stop_service
    if [[ -n $tmp && -d $tmp ]]; then
        rm -rf -- "$tmp" || true
    fi
    exit "$rc"
}

# service_traps: makes `tmp` and cleans up on every exit path.
service_traps() {
    trap service_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$me").XXXXXX")
}

# show_service_log [LINES]: the service's log (its last LINES lines), colours stripped.
show_service_log() {
    if [[ -n ${1:-} ]]; then
        say "service log, last $1 lines ($tmp/service.log):"
        tail -n "$1" "$tmp/service.log" | sed -e $'s/\x1b\\[[0-9;]*m//g' -e 's/^/    /' >&2 || true
    else
        say "service log ($tmp/service.log):"
        sed -e $'s/\x1b\\[[0-9;]*m//g' -e 's/^/    /' "$tmp/service.log" >&2 || true
    fi
}

# start_service DATA_DIR OWNER_KEY [VAR=value ...]: `bin` serves on a free port (sets `port` and
# `base_url`) with that data directory and bootstrap key, failed-authentication limiting off,
# and nothing else from the caller's environment that would change what it serves (no database
# URL, master key or public URL unless given as VAR=value); its log goes to $tmp/service.log.
# Returns once GET /readyz answers 200; dies (showing the log) if it does not within 30 s.
start_service() {
    local data_dir=$1 owner_key=$2
    shift 2
    port=$(free_port 20000) || die "no free TCP port found on 127.0.0.1"
    base_url="http://127.0.0.1:$port"
    mkdir -p "$data_dir"
    env -u DATABASE_URL -u DATABASE_PASSWORD_FILE \
        -u CONNECT_MANAGER_MASTER_KEY -u CONNECT_MANAGER_MASTER_KEY_FILE \
        -u CONNECT_MANAGER_BOOTSTRAP_KEY_FILE -u CONNECT_MANAGER_PUBLIC_URL \
        CONNECT_MANAGER_BIND="127.0.0.1:$port" \
        CONNECT_MANAGER_DATA_DIR="$data_dir" \
        CONNECT_MANAGER_BOOTSTRAP_KEY="$owner_key" \
        CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE=0 \
        LOG_FORMAT=text NO_COLOR=1 "$@" \
        "$bin" serve >>"$tmp/service.log" 2>&1 &
    service_pid=$!
    local ready_rc=0
    run_child python3 "$root/scripts/lib/wait_ready.py" "$base_url/readyz" "$service_pid" 30 ||
        ready_rc=$?
    if [[ $ready_rc -ne 0 ]]; then
        show_service_log 60
        die "the service did not become ready"
    fi
}
