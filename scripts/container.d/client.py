"""scripts/container-check's HTTP client: the service's API from the host, standard library only.

  client.py call METHOD URL KEY [JSON]   one request; prints the status, a tab, the body
  client.py snapshot URL KEY             every server and token, one line each, sorted
  client.py slow-post URL KEY PATH JSON GO-FILE
      a request that stays in flight: sends the request head and half the body, prints
      `head-sent`, waits until GO-FILE exists, sends the rest, prints the status and the body
  client.py get JSON-PATH                reads JSON on stdin, prints the value at a.b.c
"""

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def call(method, url, key, body=None):
    data = None if body is None else body.encode()
    request = urllib.request.Request(url, data=data, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def pages(base, key, path):
    items, cursor = [], None
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{base}{path}" + (f"{sep}cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, body = call("GET", url, key)
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body}")
        page = json.loads(body)
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def snapshot(base, key):
    lines = []
    for server in pages(base, key, "/v1/connect/servers"):
        vaults = ",".join(sorted(v["name"] for v in server.get("vaults", [])))
        lines.append(f"server {server['id']} {server['name']} v{server['tokens_version']} [{vaults}]")
        quoted = urllib.parse.quote(server["id"])
        for token in pages(base, key, f"/v1/connect/tokens?server={quoted}"):
            lines.append(f"token {server['name']} {token['id']} {token['name']} {token['state']}")
    return sorted(lines)


def slow_post(base, key, path, body, go_file):
    url = urllib.parse.urlsplit(base)
    body = body.encode()
    half = len(body) // 2
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=60) as s:
        s.sendall(head + body[:half])
        print("head-sent", flush=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(go_file):
            if time.monotonic() > deadline:
                raise SystemExit("no go after 30 s")
            time.sleep(0.05)
        s.sendall(body[half:])
        response = b""
        while chunk := s.recv(65536):
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    print(status_line.decode().split(" ")[1], rest.partition(b"\r\n\r\n")[2].decode(), sep="\t")


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "call":
        status, body = call(args[0], args[1], args[2], args[3] if len(args) > 3 else None)
        print(status, body, sep="\t")
    elif command == "snapshot":
        print("\n".join(snapshot(args[0], args[1])))
    elif command == "slow-post":
        slow_post(*args)
    elif command == "get":
        value = json.load(sys.stdin)
        for part in args[0].split("."):
            value = value[part]
        print(value if isinstance(value, str) else json.dumps(value))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
