# shellcheck shell=bash
# The gateway's rows (SPEC G, issue 13), sourced by scripts/bench: `connect-manager gateway` in
# front of nginx serving a Connect item's JSON and a 100 MB file as static files at their Connect
# paths (so the upstream is never the bottleneck), the manager on SQLite beside them.
#
#   G1  GET one item through the gateway vs straight to nginx, wrk -t2 -c64, 4 hot tokens
#       (and, reported only, the same through nginx as a plain reverse proxy: a hop's own cost)
#   G2  1,000 distinct tokens round-robin: the manager's introspections (its /metrics) against
#       the bound of one per token per max-staleness window
#   G3  a 100 MB file's content through the gateway: the gateway's RSS rise
#   G4  the gateway's RSS idle, and its peak under G1's load (and G5's, which runs beside it)
#   G5  revoke lag: revocations through the manager while G1's load runs; from each revoke's
#       answer to the gateway's first 401 for that token
#
# BENCH_PERF=DIR: records the gateway with `perf record -g` during G1 and G2 into DIR/g1.data
# and DIR/g2.data (`perf report -i DIR/g1.data`).
#
# Uses scripts/bench's helpers (start_service, setup, make_tokens, run_wrk, row, rss_kb…).

gw_staleness=1 # seconds: CONNECT_MANAGER_GATEWAY_MAX_STALENESS
gw_file_bytes=$((100 * 1024 * 1024))
gw_rounds=3 # G1's rounds in a full run (one in --quick)

# Metric SUM of every series named $2 in the Prometheus text at URL $1.
metric_sum() {
    curl -sf "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f", s }'
}
now_s() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# perf_gateway NAME: with BENCH_PERF set, samples the gateway for the next wrk run's duration.
perf_gateway() {
    [[ -n ${BENCH_PERF:-} ]] || return 0
    mkdir -p "$BENCH_PERF"
    perf record -q -F 999 -g -p "$gw_pid" -o "$BENCH_PERF/$1.data" -- sleep "${duration%s}" \
        >/dev/null 2>&1 &
}
# verdict MET: yes/NO in a full run; the quick run asserts nothing.
verdict() { if [[ $quick -eq 1 ]]; then echo "(quick)"; else echo "$1"; fi; }
both() { [[ $1 == yes && $2 == yes ]] && echo yes || echo NO; }

start_nginx() {
    local d=$work/nginx
    mkdir -p "$d/root"
    nginx_port=$(free_port 19000)
    nginx_proxy_port=$(free_port 19100)
    # The item as Connect answers it (the stand-in's shape), and a sparse 100 MB file.
    python3 - "$vault_id" >"$d/root/item.json" <<'PY'
import json, sys
sys.path.insert(0, "tests/gateway")
import connect_standin as c
print(json.dumps(c.login_item(sys.argv[1], "Database", "bench-password",
                              [{"id": c.fixed_id("file:big:bench"), "name": "backup.tar", "size": 104857600}])))
PY
    item_id=$(json 'd["id"]' <"$d/root/item.json")
    file_id=$(json 'd["files"][0]["id"]' <"$d/root/item.json")
    item_path=/v1/vaults/$vault_id/items/$item_id
    file_path=$item_path/files/$file_id/content
    truncate -s "$gw_file_bytes" "$d/root/big.bin"
    upstream_token=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    printf '%s\n' "$upstream_token" >"$work/upstream-token.txt"
    local deny="if (\$http_authorization != \"Bearer $upstream_token\") { return 401 '{\"status\":401,\"message\":\"Invalid token\"}'; }"
    cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    sendfile on;
    server {
        listen 127.0.0.1:$nginx_port;
        default_type application/json;
        location = /heartbeat { return 200 "."; }
        location = /health { return 200 '{"name":"nginx, static","version":"bench"}'; }
        location = $item_path { $deny alias $d/root/item.json; }
        location = $file_path { $deny default_type application/octet-stream; alias $d/root/big.bin; }
        location / { return 404 '{"status":404,"message":"Not found"}'; }
    }
    # The cost of a proxy hop alone, for comparison: nginx forwarding to the server above over
    # kept-alive connections, putting the upstream token in, checking nothing.
    upstream static { server 127.0.0.1:$nginx_port; keepalive 64; keepalive_requests 10000000; }
    server {
        listen 127.0.0.1:$nginx_proxy_port;
        location / {
            proxy_pass http://static;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $upstream_token";
        }
    }
}
EOF
    "$(command -v nginx || echo /usr/sbin/nginx)" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" \
        </dev/null >>"$d/stdout.log" 2>&1 &
    nginx_pid=$!
    extra_pids+=("$nginx_pid")
    local i
    for i in $(seq 1 500); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$nginx_port/heartbeat") == 200 ]] && break
        kill -0 "$nginx_pid" 2>/dev/null || { cat "$d/error.log" >&2; die "nginx did not start"; }
        if [[ $i -eq 500 ]]; then die "nginx did not answer /heartbeat"; fi
        sleep 0.01
    done
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $upstream_token" \
        "http://127.0.0.1:$nginx_port$item_path") == 200 ]] || die "nginx does not serve the item"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$nginx_port$item_path") == 401 ]] ||
        die "nginx serves the item without the upstream token"
}

start_gateway() {
    gw_port=$(free_port 19500)
    gw_url="http://127.0.0.1:$gw_port"
    CONNECT_MANAGER_GATEWAY_BIND="127.0.0.1:$gw_port" \
        CONNECT_MANAGER_GATEWAY_UPSTREAM="http://127.0.0.1:$nginx_port" \
        CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE="$work/upstream-token.txt" \
        CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE="$work/1password-credentials.json" \
        CONNECT_MANAGER_GATEWAY_MAX_STALENESS="${gw_staleness}s" RUST_LOG=warn \
        "$bin" gateway >>"$work/gateway.log" 2>&1 &
    gw_pid=$!
    extra_pids+=("$gw_pid")
    local i
    for i in $(seq 1 1000); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$gw_url/-/readyz") == 200 ]] && return 0
        kill -0 "$gw_pid" 2>/dev/null || break
        sleep 0.01
    done
    tail -n 20 "$work/gateway.log" >&2
    die "the gateway did not become ready"
}

# Warms tokens (one per line in file $1) through the gateway: each answered 200 once.
warm_gateway() {
    local t
    while read -r t; do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" "$gw_url$item_path") == 200 ]] ||
            die "the gateway refused a valid token for $item_path"
    done <"$1"
}

gateway_rows() {
    local rr=$1 revocations=$2
    [[ $quick -eq 1 ]] && gw_rounds=1
    say "[gateway] starting the manager (sqlite), nginx and the gateway"
    start_service gateway "sqlite://$work/gateway/data/connect-manager.db"
    setup
    start_nginx
    make_tokens 4 >"$work/gw-hot.txt"
    make_tokens "$revocations" >"$work/gw-revoke.txt"
    say "[gateway] creating $rr tokens"
    make_tokens "$rr" >"$work/gw-rr.txt"
    start_gateway
    sleep 0.5
    local gw_idle
    gw_idle=$(rss_kb "$gw_pid" VmRSS)

    # G1. One item: straight to nginx with the upstream token, through the gateway, and through
    # nginx as a plain proxy, alternated over $gw_rounds rounds (the machine is shared: a burst of
    # other work hits one round, not one side); each figure is the median of its rounds.
    warm_gateway "$work/gw-hot.txt"
    local round d_rps=() d_p99=() g_rps=() g_p50=() g_p99=() x_rps=() x_p99=()
    for round in $(seq 1 "$gw_rounds"); do
        BENCH_TOKENS=$work/upstream-token.txt run_wrk "gw-direct-$round" -t2 -c64 \
            -s scripts/bench.d/bearer_rr.lua "http://127.0.0.1:$nginx_port$item_path"
        d_rps+=("$rps") d_p99+=("$p99")
        if [[ $round == 1 ]]; then perf_gateway g1; fi
        BENCH_TOKENS=$work/gw-hot.txt run_wrk "gw-get-$round" -t2 -c64 \
            -s scripts/bench.d/bearer_rr.lua "$gw_url$item_path"
        g_rps+=("$rps") g_p50+=("$p50") g_p99+=("$p99")
        BENCH_TOKENS=$work/gw-hot.txt run_wrk "gw-nginx-proxy-$round" -t2 -c64 \
            -s scripts/bench.d/bearer_rr.lua "http://127.0.0.1:$nginx_proxy_port$item_path"
        x_rps+=("$rps") x_p99+=("$p99")
        say "[gateway] G1 round $round: direct ${d_rps[-1]} req/s (p99 ${d_p99[-1]} ms), gateway ${g_rps[-1]} (p99 ${g_p99[-1]}), nginx proxy ${x_rps[-1]} (p99 ${x_p99[-1]})"
    done
    local direct_rps direct_p99 proxy_rps proxy_p99
    direct_rps=$(median "${d_rps[@]}") direct_p99=$(median "${d_p99[@]}")
    proxy_rps=$(median "${x_rps[@]}") proxy_p99=$(median "${x_p99[@]}")
    rps=$(median "${g_rps[@]}") p50=$(median "${g_p50[@]}") p99=$(median "${g_p99[@]}")
    local r added
    r=$(ratio "$rps" "$direct_rps")
    added=$(awk -v a="$p99" -v b="$direct_p99" 'BEGIN { printf "%+.2f", a - b }')
    row "G1 GET item via gateway, 4 hot tokens" "sqlite" "$rps" "$p50" "$p99" \
        "nginx direct $direct_rps (p99 $direct_p99)" "$r, p99 $added ms" ">= 0.7, p99 +<= 2 ms" \
        "$(verdict "$(both "$(meets "$r" ">=" 0.7)" "$(meets "$added" "<=" 2)")")"
    r=$(ratio "$proxy_rps" "$direct_rps")
    added=$(awk -v a="$proxy_p99" -v b="$direct_p99" 'BEGIN { printf "%+.2f", a - b }')
    row "G1' (comparison) same GET via an nginx proxy" "" "$proxy_rps" "" "$proxy_p99" \
        "nginx direct $direct_rps (p99 $direct_p99)" "$r, p99 $added ms" "(reported only)" ""

    # G5. Revocations through the manager while G1's load runs.
    say "[gateway] $revocations revocations under load"
    local spacing=0.05 load_s
    load_s=$(awk -v n="$revocations" -v s="$spacing" -v m="$gw_staleness" 'BEGIN { printf "%d", 0.5 + n * s + m + 2.5 }')
    BENCH_TOKENS=$work/gw-hot.txt wrk --latency -t2 -c64 -d "${load_s}s" -s scripts/bench.d/bearer_rr.lua \
        "$gw_url$item_path" >"$work/wrk-gw-revoke-load.txt" 2>&1 &
    local wrk_pid=$!
    sleep 0.5
    python3 scripts/bench.d/revoke_lag.py "$gw_url" "$url" "$key" "$item_path" "$work/gw-revoke.txt" "$spacing" \
        >"$work/revoke-lag.json" || { kill "$wrk_pid" 2>/dev/null; die "revoke lag failed"; }
    wait "$wrk_pid" || die "wrk failed under the revocations"
    grep -q "Non-2xx" "$work/wrk-gw-revoke-load.txt" && { cat "$work/wrk-gw-revoke-load.txt" >&2; die "G5 load: some responses were not 2xx"; }
    local load_rps worst median rtt bound
    load_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/wrk-gw-revoke-load.txt")
    local poll
    read -r worst median rtt poll < <(json '"%.3f %.3f %.3f %.3f" % (d["lags"][-1], d["lags"][len(d["lags"]) // 2], d["round_trips"][-1], d["poll"])' <"$work/revoke-lag.json")
    # G2's bound, plus the poll interval: the measurement's resolution.
    bound=$(awk -v s="$gw_staleness" -v r="$rtt" -v p="$poll" 'BEGIN { printf "%.3f", s + r + p }')
    row "G5 revoke lag, $revocations revocations under G1 load" "sqlite" "worst $worst s, median $median s" "" "" \
        "load $load_rps req/s; revoke round trip <= $rtt s" "" "<= ${gw_staleness} s + round trip + poll = $bound s" \
        "$(verdict "$(meets "$worst" "<=" "$bound")")"

    # G4. RSS idle, and the peak over G1 and G5.
    local gw_load
    gw_load=$(rss_kb "$gw_pid" VmHWM)
    row "G4 gateway RSS idle" "sqlite" "$((gw_idle / 1024)) MB" "" "" "" "" "<= 20 MB" \
        "$(verdict "$(meets "$gw_idle" "<=" $((20 * 1024)))")"
    row "G4 gateway peak RSS, G1+G5 load" "sqlite" "$((gw_load / 1024)) MB" "" "" "" "" "<= 48 MB" \
        "$(verdict "$(meets "$gw_load" "<=" $((48 * 1024)))")"

    # G2. Many distinct tokens, round-robin; the manager counts its introspections.
    local m_url="$url/metrics" before after t0 t1 calls windows
    before=$(metric_sum "$m_url" connect_manager_introspections_total)
    t0=$(now_s)
    perf_gateway g2
    BENCH_TOKENS=$work/gw-rr.txt run_wrk gw-rr -t2 -c64 -s scripts/bench.d/bearer_rr.lua "$gw_url$item_path"
    t1=$(now_s)
    after=$(metric_sum "$m_url" connect_manager_introspections_total)
    calls=$((after - before))
    # Each token at most once per window: over T seconds, floor(T / staleness) + 1 windows.
    windows=$(awk -v a="$t0" -v b="$t1" -v s="$gw_staleness" 'BEGIN { printf "%d", int((b - a) / s) + 1 }')
    local rr_bound=$((rr * windows))
    r=$(ratio "$calls" "$rr_bound")
    row "G2 $rr tokens round-robin via gateway" "sqlite" "$rps" "$p50" "$p99" \
        "introspections $calls, bound $rr x $windows windows = $rr_bound" "$r" "<= 1 (calls / bound)" \
        "$(verdict "$(meets "$r" "<=" 1)")"

    # G3. 100 MB of file content through the gateway, at full speed and by a slow reader
    # (50 MB/s: a proxy that does not wait for its client would buffer what it cannot send).
    local gw_rr_peak rise=0 one limit base got rate
    gw_rr_peak=$(rss_kb "$gw_pid" VmHWM)
    say "[gateway] peak RSS after G2: $((gw_rr_peak / 1024)) MB"
    for limit in 0 50M; do
        echo 5 >"/proc/$gw_pid/clear_refs" 2>/dev/null ||
            die "G3 resets the gateway's peak RSS (/proc/PID/clear_refs, Linux): run as root"
        rate=()
        [[ $limit != 0 ]] && rate=(--limit-rate "$limit")
        base=$(rss_kb "$gw_pid" VmRSS)
        got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "${rate[@]}" \
            -H "Authorization: Bearer $(head -n 1 "$work/gw-hot.txt")" "$gw_url$file_path")
        [[ $got == "200 $gw_file_bytes" ]] || die "G3: the download through the gateway answered '$got'"
        one=$(($(rss_kb "$gw_pid" VmHWM) - base))
        if ((one > rise)); then rise=$one; fi
    done
    row "G3 100 MB file via gateway: RSS rise" "sqlite" "$((rise / 1024)) MB" "" "" "full speed and 50 MB/s reader" "" "< 16 MB" \
        "$(verdict "$( ((rise < 16 * 1024)) && echo yes || echo NO)")"

    kill "$gw_pid" "$nginx_pid" 2>/dev/null || true
    wait "$gw_pid" "$nginx_pid" 2>/dev/null || true
    # Forget only the gateway's processes: the exchange's stand-in issuer (scenario 8) is in the
    # list too, and the EXIT trap must still stop it.
    local kept=() p
    for p in "${extra_pids[@]}"; do
        [[ $p == "$gw_pid" || $p == "$nginx_pid" ]] || kept+=("$p")
    done
    extra_pids=("${kept[@]}")
    stop_service
}
