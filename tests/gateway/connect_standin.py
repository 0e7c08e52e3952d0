#!/usr/bin/env python3
"""A stand-in for 1Password's Connect API server (`connect-api`), for the gateway's tests.

1Password's Connect server is closed and signs in to 1Password.com, so it cannot run here. This
test double serves Connect's published API paths with the JSON shapes 1Password documents for
vaults, items, fields and files (file content included), accepts only one bearer token (the
"real" Connect token the gateway holds) and records every request that reached it, so that a test
can show that a refused request never got here and that no client token ever did.

    python3 tests/gateway/connect_standin.py --token TOKEN [--port 0] [--big-file-bytes N]

It prints one JSON line on standard output when it listens:
    {"port": N, "vaults": [{"id", "name"}…], "items": [{"vault", "id", "title"}…]}
and then serves until killed. Its own endpoints, outside Connect's API (a gateway never forwards
them, G3): `GET /__standin/requests` (the record), `POST /__standin/reset` (clear it),
`GET /__standin/fixture` (the data), `POST /__standin/fail?status=N` (answer N to every API
request from now on; `status=0` stops failing).

Standard library only: it runs wherever `python3` does.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import string
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

ALPHABET = string.digits + string.ascii_lowercase
NOW = "2026-01-01T00:00:00Z"


def new_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(26))


def fixed_id(seed: str) -> str:
    """A stable 26-character lower-case ID, so that tests and logs can name the fixture."""
    digest = __import__("hashlib").sha256(seed.encode()).digest()
    return "".join(ALPHABET[b % 36] for b in digest[:26])


def vault(name: str, items: int) -> dict:
    return {
        "id": fixed_id("vault:" + name),
        "name": name,
        "description": f"{name} secrets",
        "attributeVersion": 1,
        "contentVersion": 1,
        "items": items,
        "type": "USER_CREATED",
        "createdAt": NOW,
        "updatedAt": NOW,
    }


def login_item(vault_id: str, title: str, password: str, files: list[dict]) -> dict:
    item_id = fixed_id(f"item:{vault_id}:{title}")
    return {
        "id": item_id,
        "title": title,
        "vault": {"id": vault_id},
        "category": "LOGIN",
        "urls": [{"primary": True, "href": "https://db.example.com"}],
        "favorite": False,
        "tags": ["standin"],
        "version": 1,
        "createdAt": NOW,
        "updatedAt": NOW,
        "lastEditedBy": "STANDINUSER0000000000000000"[:26],
        "sections": [{"id": "files", "label": "Files"}],
        "fields": [
            {"id": "username", "type": "STRING", "purpose": "USERNAME", "label": "username", "value": "app"},
            {"id": "password", "type": "CONCEALED", "purpose": "PASSWORD", "label": "password",
             "value": password, "entropy": 128.0},
        ],
        "files": [
            {
                "id": f["id"],
                "name": f["name"],
                "size": f["size"],
                "content_path": f"/v1/vaults/{vault_id}/items/{item_id}/files/{f['id']}/content",
                "section": {"id": "files"},
            }
            for f in files
        ],
    }


class Store:
    """The fixture: three vaults, a login item with a file in each, one big file in the first."""

    def __init__(self, big_file_bytes: int):
        self.lock = threading.Lock()
        self.vaults = [vault(n, 2) for n in ("Production", "Staging", "Shared")]
        self.items: dict[str, dict[str, dict]] = {}
        self.contents: dict[str, bytes | int] = {}  # file id -> bytes, or a size to generate
        for v in self.vaults:
            small = {"id": fixed_id("file:cert:" + v["id"]), "name": "cert.pem"}
            data = f"-----BEGIN CERTIFICATE-----\n{v['name']} stand-in\n-----END CERTIFICATE-----\n".encode()
            small["size"] = len(data)
            self.contents[small["id"]] = data
            files = [small]
            if v is self.vaults[0]:
                big = {"id": fixed_id("file:big:" + v["id"]), "name": "backup.tar", "size": big_file_bytes}
                self.contents[big["id"]] = big_file_bytes
                files.append(big)
            db = login_item(v["id"], "Database", f"{v['name'].lower()}-password", files)
            api = login_item(v["id"], "API Key", f"{v['name'].lower()}-api-key", [])
            self.items[v["id"]] = {db["id"]: db, api["id"]: api}

    def summary(self) -> dict:
        return {
            "vaults": [{"id": v["id"], "name": v["name"]} for v in self.vaults],
            "items": [
                {"vault": vid, "id": i["id"], "title": i["title"],
                 "files": [{"id": f["id"], "name": f["name"], "size": f["size"]} for f in i.get("files", [])]}
                for vid, items in self.items.items()
                for i in items.values()
            ],
        }


def summary_of(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("fields", "sections", "files")}


def matches(filter_expr: str | None, obj: dict, attr: str) -> bool:
    """Connect's SCIM-style filter, as the SDKs send it: `title eq "X"` / `name eq "X"`."""
    if not filter_expr:
        return True
    parts = filter_expr.split(" ", 2)
    if len(parts) != 3 or parts[0] != attr or parts[1] != "eq":
        return False
    return obj.get(attr) == parts[2].strip().strip('"')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "connect-standin"
    store: Store
    token: str
    record: list[dict]
    fail_status = 0

    def log_message(self, fmt, *args):  # quiet: the record is the log
        pass

    # -- plumbing --------------------------------------------------------------------------
    def send_json(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, message: str) -> None:
        self.send_json(status, {"status": status, "message": message})

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self, method: str) -> None:
        raw = self.path
        split = urlsplit(raw)
        body = self.read_body()
        if split.path.startswith("/__standin/"):
            return self.own(method, split)
        Handler.record.append({
            "at": time.time(),
            "method": method,
            "raw_path": raw,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_bytes": len(body),
        })
        if split.path == "/heartbeat" and method == "GET":
            data = b"."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "1")
            self.end_headers()
            self.wfile.write(data)
            return
        if split.path == "/health" and method == "GET":
            return self.send_json(200, {"name": "1Password Connect API", "version": "1.7.3",
                                        "dependencies": [{"service": "sync", "status": "ACTIVE"}]})
        if self.headers.get("Authorization") != f"Bearer {Handler.token}":
            return self.error(401, "Invalid token signature")
        if Handler.fail_status:
            return self.error(Handler.fail_status, "stand-in told to fail")
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        try:
            self.api(method, segments, query, body)
        except (ValueError, KeyError) as e:
            self.error(400, f"Invalid request: {e}")

    # -- Connect's API ---------------------------------------------------------------------
    def api(self, method: str, seg: list[str], query: dict, body: bytes) -> None:
        st = Handler.store
        flt = query.get("filter", [None])[0]
        if seg == ["v1", "activity"] and method == "GET":
            return self.send_json(200, [])
        if seg[:2] != ["v1", "vaults"]:
            return self.error(404, "Invalid request")
        if seg[-1] == "" and len(seg) > 2:  # one trailing slash, as the JavaScript SDK sends it
            seg = seg[:-1]
        if len(seg) == 2 and method == "GET":
            return self.send_json(200, [v for v in st.vaults if matches(flt, v, "name")])
        vault_id = seg[2]
        v = next((v for v in st.vaults if v["id"] == vault_id), None)
        if v is None:
            return self.error(404, f"Invalid Vault UUID {vault_id}")
        items = st.items[vault_id]
        if len(seg) == 3 and method == "GET":
            return self.send_json(200, v)
        if len(seg) == 4 and seg[3] == "items":
            if method == "GET":
                return self.send_json(200, [summary_of(i) for i in items.values() if matches(flt, i, "title")])
            if method == "POST":
                item = json.loads(body)
                item["id"] = new_id()
                item["vault"] = {"id": vault_id}
                item.setdefault("version", 1)
                item.setdefault("createdAt", NOW)
                item.setdefault("updatedAt", NOW)
                for f in item.get("fields", []):
                    f.setdefault("id", new_id())
                with st.lock:
                    items[item["id"]] = item
                return self.send_json(200, item)
        if len(seg) >= 5 and seg[3] == "items":
            item = items.get(seg[4])
            if item is None:
                return self.error(404, f"Invalid Item UUID {seg[4]}")
            if len(seg) == 5:
                if method == "GET":
                    return self.send_json(200, item)
                if method in ("PUT", "PATCH"):
                    change = json.loads(body)
                    if method == "PUT":
                        change["id"], change["vault"] = item["id"], {"id": vault_id}
                        items[item["id"]] = change
                        return self.send_json(200, change)
                    return self.send_json(200, item)
                if method == "DELETE":
                    with st.lock:
                        del items[item["id"]]
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if len(seg) == 6 and seg[5] == "files" and method == "GET":
                inline = query.get("inline_files", ["false"])[0] == "true"
                files = [dict(f) for f in item.get("files", [])]
                if inline:
                    for f in files:
                        content = st.contents[f["id"]]
                        if isinstance(content, bytes):
                            f["content"] = base64.b64encode(content).decode()
                return self.send_json(200, files)
            if len(seg) >= 7 and seg[5] == "files" and method == "GET":
                f = next((f for f in item.get("files", []) if f["id"] == seg[6]), None)
                if f is None:
                    return self.error(404, f"Invalid File UUID {seg[6]}")
                if len(seg) == 7:
                    return self.send_json(200, f)
                if len(seg) == 8 and seg[7] == "content":
                    return self.send_content(f, st.contents[f["id"]])
        return self.error(404, "Invalid request")

    def send_content(self, f: dict, content) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f'attachment; filename="{f["name"]}"')
        size = len(content) if isinstance(content, bytes) else content
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if isinstance(content, bytes):
            self.wfile.write(content)
            return
        block = (b"0123456789abcdef" * 4096)  # 64 KiB
        left = size
        while left > 0:
            n = min(left, len(block))
            self.wfile.write(block[:n])
            left -= n

    # -- the stand-in's own endpoints ------------------------------------------------------
    def own(self, method: str, split) -> None:
        if split.path == "/__standin/requests" and method == "GET":
            return self.send_json(200, Handler.record)
        if split.path == "/__standin/reset" and method == "POST":
            Handler.record.clear()
            return self.send_json(200, {"ok": True})
        if split.path == "/__standin/fixture" and method == "GET":
            return self.send_json(200, Handler.store.summary())
        if split.path == "/__standin/fail" and method == "POST":
            Handler.fail_status = int(parse_qs(split.query).get("status", ["0"])[0])
            return self.send_json(200, {"fail_status": Handler.fail_status})
        return self.error(404, "no such stand-in endpoint")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_HEAD(self):
        self.handle_any("HEAD")

    def do_OPTIONS(self):
        self.handle_any("OPTIONS")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--token", required=True, help="the only bearer token accepted")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--big-file-bytes", type=int, default=1 << 20,
                    help="size of the generated file in the first vault's Database item")
    args = ap.parse_args()
    Handler.store = Store(args.big_file_bytes)
    Handler.token = args.token
    Handler.record = []
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    print(json.dumps({"port": server.server_address[1], **Handler.store.summary()}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
