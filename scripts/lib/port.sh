# shellcheck shell=bash
# Free TCP ports on 127.0.0.1, for every script that starts something on one. Sourced by
# scripts/lib/postgres.sh and scripts/lib/service.sh (so by every script that sources either).

# port_in_use PORT: whether something listens on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port [LOWEST]: print a free TCP port on 127.0.0.1 (the kernel's pick, through python3);
# without python3, the first port from LOWEST (default 20000) that nothing listens on.
free_port() {
    local p lowest=${1:-20000}
    if command -v python3 >/dev/null 2>&1 &&
        p=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' 2>/dev/null) && [[ $p =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$p"
        return 0
    fi
    for ((p = lowest; p < lowest + 1000; p++)); do
        if ! port_in_use "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}
