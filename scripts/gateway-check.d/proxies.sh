# shellcheck shell=bash disable=SC2154  # the globals are gateway-check's (see its step 3)
# scripts/gateway-check, step 3's second half: Debian's nginx and Caddy running the SHIPPED
# deploy/nginx/connect.conf and deploy/caddy/Caddyfile in front of a gateway in forward-auth mode
# (G5), driven with curl; the forward-auth endpoint itself; a token revoked through the manager
# (G2); and, across everything, what reached the Connect stand-in. Sourced by gateway-check, whose
# globals these functions read (tmp, nginx_bin, fa_url, standin_url, standin_port, upstream_token,
# proxies_jwt, foreign_jwt, rw, ro, out, db_item, files, owner_key, base_url, max_staleness_ms)
# and whose pass/fail/die/wait_http they call.

# start_nginx: the shipped deploy/nginx/connect.conf inside a minimal nginx.conf; sets proxy_url.
start_nginx() {
    local d=$tmp/nginx p pid
    mkdir -p "$d"
    p=$(free_port)
    proxy_url="http://127.0.0.1:$p"
    (umask 077 && printf 'proxy_set_header Authorization "Bearer %s";\n' "$upstream_token" >"$d/token.conf")
    sed -e "s|server gateway:8090;|server 127.0.0.1:${fa_url##*:};|" \
        -e "s|server connect-api:8080;|server 127.0.0.1:$standin_port;|" \
        -e "s|listen 0.0.0.0:8080;|listen 127.0.0.1:$p;|" \
        -e "s|include /run/secrets/connect-api-token.nginx.conf;|include $d/token.conf;|" \
        deploy/nginx/connect.conf >"$d/connect.conf"
    # The substitutions must all have happened (a changed shipped file must not pass unnoticed).
    grep -q "127.0.0.1:${fa_url##*:}" "$d/connect.conf" && grep -q "127.0.0.1:$standin_port" "$d/connect.conf" &&
        grep -q "listen 127.0.0.1:$p;" "$d/connect.conf" && grep -q "include $d/token.conf;" "$d/connect.conf" ||
        die "deploy/nginx/connect.conf no longer has the lines this check substitutes"
    cat >"$d/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    include $d/connect.conf;
}
EOF
    "$nginx_bin" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >>"$tmp/nginx.log" 2>&1 &
    pid=$!
    extra_pids+=("$pid")
    wait_http "$proxy_url/heartbeat" "$pid" nginx
}

# start_caddy: the shipped deploy/caddy/Caddyfile; sets proxy_url.
start_caddy() {
    local d=$tmp/caddy p admin pid
    mkdir -p "$d"
    p=$(free_port)
    admin=$(free_port)
    proxy_url="http://127.0.0.1:$p"
    sed -e "s|gateway:8090|127.0.0.1:${fa_url##*:}|" \
        -e "s|connect-api:8080|127.0.0.1:$standin_port|g" \
        -e "s|^:8080 {|:$p {|" \
        -e "s|bind 0.0.0.0|bind 127.0.0.1|" \
        -e "s|admin localhost:2019|admin localhost:$admin|" \
        deploy/caddy/Caddyfile >"$d/Caddyfile"
    grep -q "127.0.0.1:${fa_url##*:}" "$d/Caddyfile" && grep -q "^:$p {" "$d/Caddyfile" &&
        grep -q "bind 127.0.0.1" "$d/Caddyfile" && grep -q "admin localhost:$admin" "$d/Caddyfile" ||
        die "deploy/caddy/Caddyfile no longer has the lines this check substitutes"
    HOME=$d XDG_DATA_HOME=$d/data XDG_CONFIG_HOME=$d/config CONNECT_API_TOKEN="$upstream_token" \
        caddy run --config "$d/Caddyfile" --adapter caddyfile >>"$tmp/caddy.log" 2>&1 &
    pid=$!
    extra_pids+=("$pid")
    wait_http "$proxy_url/heartbeat" "$pid" caddy
}

# record_has MARKER: whether a request carrying `X-Gateway-Check: MARKER` reached the stand-in;
# prints its Authorization header and body size when it did.
record_has() {
    curl -sS "$standin_url/__standin/requests" | python3 -c '
import json, sys
hits = [r for r in json.load(sys.stdin) if r["headers"].get("x-gateway-check") == sys.argv[1]]
for r in hits:
    print(r["headers"].get("authorization", ""), r["body_bytes"])
sys.exit(0 if hits else 1)' "$1"
}

# req MARKER METHOD PATH [curl args...]: the status of a request through the proxy (body in
# $tmp/body); the request carries X-Gateway-Check: MARKER.
req() {
    local marker=$1 method=$2 path=$3
    shift 3
    curl -sS --path-as-is -o "$tmp/body" -w '%{http_code}' -X "$method" \
        -H "X-Gateway-Check: $marker" "$@" "$proxy_url$path" || echo "curl-failed"
}

# proxy_scenario NAME: issue 13's proxy scenario through the proxy at $proxy_url.
proxy_scenario() {
    local n=$1 s auth=(-H "Authorization: Bearer $proxies_jwt") hit body
    local json=(-H 'Content-Type: application/json')

    s=$(req "$n-read" GET "/v1/vaults/$rw/items/$db_item" "${auth[@]}")
    hit=$(record_has "$n-read" || true)
    if [[ $s == 200 ]] && python3 -c 'import json,sys
item = json.load(open(sys.argv[1]))
sys.exit(0 if any(f.get("purpose") == "PASSWORD" and f.get("value") == "production-password" for f in item["fields"]) else 1)' "$tmp/body" &&
        [[ $hit == "Bearer $upstream_token 0" ]]; then
        pass "$n: allowed read (item with its password), reached the stand-in with the upstream token only"
    else
        fail "$n: allowed read: status $s, stand-in saw: ${hit:-nothing}"
    fi

    local f got want
    for f in $files; do
        s=$(req "$n-file" GET "/v1/vaults/$rw/items/$db_item/files/$f/content" "${auth[@]}")
        got=$(sha256sum <"$tmp/body" | cut -d' ' -f1)
        want=$(curl -sS -H "Authorization: Bearer $upstream_token" \
            "$standin_url/v1/vaults/$rw/items/$db_item/files/$f/content" | sha256sum | cut -d' ' -f1)
        if [[ $s == 200 && $got == "$want" ]]; then
            pass "$n: file $f downloaded ($(wc -c <"$tmp/body") bytes), content identical to the stand-in's"
        else
            fail "$n: file $f: status $s, content $([[ $got == "$want" ]] && echo same || echo differs)"
        fi
    done

    body='{"title":"created through '"$n"'","category":"LOGIN","fields":[{"purpose":"PASSWORD","value":"x"}]}'
    s=$(req "$n-write" POST "/v1/vaults/$rw/items" "${auth[@]}" "${json[@]}" --data "$body")
    hit=$(record_has "$n-write" || true)
    if [[ $s == 200 && $hit == "Bearer $upstream_token ${#body}" ]]; then
        pass "$n: allowed write in the writable vault, its body reached the stand-in whole"
    else
        fail "$n: allowed write: status $s, stand-in saw: ${hit:-nothing} (body ${#body} bytes)"
    fi

    s=$(req "$n-ro-write" POST "/v1/vaults/$ro/items" "${auth[@]}" "${json[@]}" --data "$body")
    if [[ $s == 403 ]] && ! record_has "$n-ro-write" >/dev/null; then
        pass "$n: write in the read-only vault refused (403), never reached the stand-in"
    else
        fail "$n: write in the read-only vault: status $s$(record_has "$n-ro-write" >/dev/null && echo ', REACHED the stand-in')"
    fi

    s=$(req "$n-out" GET "/v1/vaults/$out/items" "${auth[@]}")
    if [[ $s == 403 ]] && ! record_has "$n-out" >/dev/null; then
        pass "$n: the vault outside the token's scope refused (403), never reached the stand-in"
    else
        fail "$n: the vault outside the token's scope: status $s$(record_has "$n-out" >/dev/null && echo ', REACHED the stand-in')"
    fi

    local case token
    for case in garbage foreign missing; do
        case $case in
            garbage) token=(-H "Authorization: Bearer not-a-connect-manager-token") ;;
            foreign) token=(-H "Authorization: Bearer $foreign_jwt") ;;
            missing) token=() ;;
        esac
        s=$(req "$n-bad-$case" GET "/v1/vaults/$rw/items/$db_item" "${token[@]}")
        if [[ $s == 401 ]] && ! record_has "$n-bad-$case" >/dev/null; then
            pass "$n: $case token refused (401), never reached the stand-in"
        else
            fail "$n: $case token: status $s$(record_has "$n-bad-$case" >/dev/null && echo ', REACHED the stand-in')"
        fi
    done

    # A client describing another request than the one it makes, in the other proxy's headers.
    s=$(req "$n-spoof" POST "/v1/vaults/$ro/items" "${auth[@]}" "${json[@]}" --data "$body" \
        -H 'X-Forwarded-Method: GET' -H "X-Forwarded-Uri: /v1/vaults/$ro/items" \
        -H 'X-Original-Method: GET' -H "X-Original-URI: /v1/vaults/$ro/items")
    if [[ $s == 403 ]] && ! record_has "$n-spoof" >/dev/null; then
        pass "$n: a write dressed as a read in X-Forwarded-*/X-Original-* headers refused (403), never reached the stand-in"
    else
        fail "$n: a write dressed as a read in forward-auth headers: status $s$(record_has "$n-spoof" >/dev/null && echo ', REACHED the stand-in')"
    fi

    s=$(req "$n-dotdot" GET "/v1/vaults/$rw/../$out/items" "${auth[@]}")
    if [[ $s =~ ^[45] ]] && ! record_has "$n-dotdot" >/dev/null; then
        pass "$n: a path with '..' into the out-of-scope vault refused ($s), never reached the stand-in"
    else
        fail "$n: a path with '..': status $s$(record_has "$n-dotdot" >/dev/null && echo ', REACHED the stand-in')"
    fi

    s=$(req "$n-heartbeat" GET /heartbeat -H "Authorization: Bearer $proxies_jwt")
    hit=$(record_has "$n-heartbeat" || true)
    if [[ $s == 200 && $hit == " 0" ]]; then
        pass "$n: Connect's /heartbeat needs no token and reaches connect-api without any Authorization"
    else
        fail "$n: /heartbeat: status $s, stand-in saw Authorization: ${hit:-nothing}"
    fi

    s=$(req "$n-list" GET /v1/vaults "${auth[@]}")
    local listed
    listed=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$tmp/body" 2>/dev/null || echo "?")
    say "$n: note: in forward-auth mode the vault list is not cut (G5): GET /v1/vaults -> $s," \
        "$listed vaults for a token scoped to 2"
}

# The forward-auth endpoint itself, as a proxy that sets one pair of headers calls it (G5).
fa() {
    curl -sS -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$@" "$fa_url/v1/forward-auth" ||
        echo "curl-failed"
}
check_status() { if [[ $1 == "$2" ]]; then pass "$3"; else fail "$3: got $1"; fi; }

# forward_auth_checks: the forward-auth endpoint called directly, as a proxy calls it (G5).
forward_auth_checks() {
    local s
    s=$(fa -H "Authorization: Bearer $proxies_jwt" -H 'X-Forwarded-Method: GET' \
        -H "X-Forwarded-Uri: /v1/vaults/$rw/items/$db_item")
    if [[ $s == 200 && ! -s $tmp/body ]] && ! grep -qF "$upstream_token" "$tmp/headers"; then
        pass "forward-auth: an allowed read (X-Forwarded-*) is 200 with an empty body and no secret"
    else
        fail "forward-auth: an allowed read: status $s, body $(head -c 200 "$tmp/body")"
    fi
    s=$(fa -H "Authorization: Bearer $proxies_jwt" -H 'X-Original-Method: POST' \
        -H "X-Original-URI: /v1/vaults/$ro/items")
    check_status "$s" 403 "forward-auth: a write in the read-only vault (X-Original-*) is 403"
    # nginx sets X-Original-* and passes the client's headers on, so a client can add an
    # X-Forwarded-* pair describing another request (and the other way round behind Caddy or
    # Traefik). The shipped configs drop the pair they do not set; a gateway behind a proxy
    # configured without that must still not let the client's pair decide: two pairs that disagree
    # describe no single request and are refused.
    s=$(fa -H "Authorization: Bearer $proxies_jwt" -H 'X-Original-Method: POST' \
        -H "X-Original-URI: /v1/vaults/$ro/items" -H 'X-Forwarded-Method: GET' \
        -H "X-Forwarded-Uri: /v1/vaults/$ro/items")
    if [[ $s =~ ^[45] ]]; then
        pass "forward-auth: X-Forwarded-* and X-Original-* that disagree are refused ($s)"
    else
        fail "forward-auth: X-Forwarded-* (GET) and X-Original-* (POST) that disagree: status $s, a client's pair decided"
    fi
}

# A token revoked through the manager is refused through the proxy too, within max-staleness
# and a round trip (G2); nothing it sends from then on reaches the stand-in.
proxy_status() {
    curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $proxies_jwt" \
        -H "X-Gateway-Check: $1" "$proxy_url/v1/vaults/$rw/items/$db_item" || echo "curl-failed"
}
# revoke_through_caddy: revokes the proxies' token and times the proxy at $proxy_url (Caddy,
# started last) until it refuses it.
revoke_through_caddy() {
    local primed proxies_id start_ms bound_ms s s2 lag_ms
    primed=$(proxy_status caddy-before-revoke)
    proxies_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"]["proxies"]["id"])' "$tmp/sqlite/setup.json")
    curl -sS -f -o /dev/null -X DELETE -H "Authorization: Bearer $owner_key" "$base_url/v1/connect/tokens/$proxies_id" ||
        die "revoking the proxies' token failed"
    start_ms=$(date +%s%3N)
    bound_ms=$((max_staleness_ms + 1000))
    while :; do
        s=$(proxy_status caddy-after-revoke)
        lag_ms=$(($(date +%s%3N) - start_ms))
        [[ $s == 401 || $lag_ms -gt $((bound_ms + 5000)) ]] && break
        sleep 0.05
    done
    s2=$(proxy_status caddy-refused-after-revoke)
    if [[ $primed == 200 && $s == 401 && $s2 == 401 && $lag_ms -le $bound_ms ]] &&
        ! record_has caddy-refused-after-revoke >/dev/null; then
        pass "caddy: token revoked through the manager: 401 through the proxy after $lag_ms ms (bound $bound_ms ms), then nothing reached the stand-in"
    else
        fail "caddy: token revoked: before $primed, then $s after $lag_ms ms (bound $bound_ms ms), then $s2"
    fi
    echo "MEASURE caddy (forward-auth): token revoke lag $lag_ms ms" >>"$tmp/measures"
}

# no_client_token_reached_the_standin: across everything, the stand-in only ever saw the
# upstream token (or, on its health endpoints, none).
no_client_token_reached_the_standin() {
    if curl -sS "$standin_url/__standin/requests" | python3 -c '
import json, sys
record = json.load(sys.stdin)
health = ("/health", "/heartbeat")
bad = [r for r in record if r["headers"].get("authorization") != "Bearer " + sys.argv[1]
       and not (r["headers"].get("authorization") is None and r["raw_path"] in health)]
print(len(record), len(bad))
sys.exit(1 if bad or not record else 0)' "$upstream_token" >"$tmp/record-check"; then
        pass "all: every one of the $(cut -d' ' -f1 "$tmp/record-check") requests that reached the stand-in carried the upstream token (or, to /health and /heartbeat, none), never a client's"
    else
        fail "all: requests with a client's Authorization reached the stand-in: $(cat "$tmp/record-check")"
    fi
}
