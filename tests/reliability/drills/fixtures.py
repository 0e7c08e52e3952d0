"""Fixtures made through the API (vaults, servers and their decoded credentials, tokens,
token listing, revocation_lag), and the write load: Load (worker threads recording every answer)
and read_back (every acknowledged write is there).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .common import BIN, REQUEST_TIMEOUT_S, TMP, Resp, Verdict, call, expect


def create_vault(base: str, name: str) -> str:
    return expect(call(base, "POST", "/v1/vaults", {"name": name, "type": "USER_CREATED"}), 201,
                  "create vault")["id"]


@dataclass
class ServerCreds:
    id: str
    secret: str


def credentials_secret(creds_json: Any, label: str) -> ServerCreds:
    """Decodes a credentials file with `connect-manager credentials show --reveal` (the secret is
    AES-GCM sealed; the standard library has no AES-GCM). The secret is never printed."""
    path = os.path.join(TMP, f"creds-{label}-{secrets.token_hex(4)}.json")
    with open(path, "w") as f:
        json.dump(creds_json, f)
    out = subprocess.run([BIN, "credentials", "show", path, "--reveal"], capture_output=True,
                         text=True, check=True).stdout
    os.unlink(path)
    fields = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    return ServerCreds(fields["server_id"].strip(), fields["secret"].strip())


def create_server(base: str, name: str, vaults: list[str]) -> tuple[str, ServerCreds]:
    body = expect(call(base, "POST", "/v1/connect/servers", {"name": name, "vaults": vaults}), 201,
                  "create server")
    return body["server"]["id"], credentials_secret(body["credentials"], name)


def create_token(base: str, server: str, vaults: list[str], name: str = "t") -> dict:
    return expect(call(base, "POST", f"/v1/connect/servers/{server}/tokens",
                       {"name": name, "vaults": [{"vault": v} for v in vaults]}), 201, "create token")


def revocation_lag(bases: list[str], server: str, vault: str, creds: "ServerCreds") -> tuple[Resp, float | None]:
    """A new token, introspected on the second replica, revoked on the first: returns that first
    introspection and how long the second took to see the revocation (None: not within 5 s)."""
    tok = create_token(bases[0], server, [vault])
    before = call(bases[1], "POST", "/v1/introspect", {"token": tok["token"]}, basic=(creds.id, creds.secret))
    expect(call(bases[0], "DELETE", f"/v1/connect/tokens/{tok['id']}"), 200, "revoke")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        r = call(bases[1], "POST", "/v1/introspect", {"token": tok["token"]}, basic=(creds.id, creds.secret))
        if r.status == 200 and r.body.get("active") is False:
            return before, r.ended - t0
    return before, None


def list_all_tokens(base: str, server: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    cursor = None
    while True:
        q = f"/v1/connect/tokens?server={server}&limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = expect(call(base, "GET", q), 200, "list tokens")
        for t in page["items"]:
            out[t["id"]] = t
        cursor = page.get("next_cursor")
        if not cursor:
            return out


# ---- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """Worker threads writing through the API and recording every answer."""

    bases: list[str]
    server: str
    vault: str
    workers: int = 4
    results: list[tuple[str, Resp]] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # token id -> server id (201s)
    revoked: set[str] = field(default_factory=set)  # token ids whose revoke was acknowledged
    servers: dict[str, str] = field(default_factory=dict)  # server id -> name (201s)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    with_servers: bool = False

    def run(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT_S + 5)

    def _work(self, i: int) -> None:
        rnd = random.Random(i)
        n = 0
        while not self.stop.is_set():
            base = self.bases[n % len(self.bases)]
            n += 1
            roll = rnd.random()
            with self.lock:
                candidates = [t for t in self.created if t not in self.revoked]
            if self.with_servers and roll < 0.15:
                name = f"load-{i}-{n}-{secrets.token_hex(3)}"
                r = call(base, "POST", "/v1/connect/servers", {"name": name, "vaults": [self.vault]})
                kind = "server.create"
                if r.status == 201:
                    with self.lock:
                        self.servers[r.body["server"]["id"]] = name
            elif roll < 0.3 and candidates:
                tid = rnd.choice(candidates)
                r = call(base, "DELETE", f"/v1/connect/tokens/{tid}?server={self.server}")
                kind = "token.revoke"
                if r.status in (200, 204):
                    with self.lock:
                        self.revoked.add(tid)
            elif roll < 0.4:
                r = call(base, "GET", f"/v1/connect/servers/{self.server}")
                kind = "server.get"
            else:
                r = call(base, "POST", f"/v1/connect/servers/{self.server}/tokens",
                         {"name": f"load-{i}-{n}", "vaults": [{"vault": self.vault}]})
                kind = "token.create"
                if r.status == 201:
                    with self.lock:
                        self.created[r.body["id"]] = self.server
            with self.lock:
                self.results.append((kind, r))

    def acknowledged(self) -> int:
        return len(self.created) + len(self.servers) + len(self.revoked)


def read_back(base: str, load: Load, v: Verdict, label: str) -> None:
    """Every acknowledged write is there: created tokens listed, revoked ones REVOKED, servers
    readable."""
    tokens = list_all_tokens(base, load.server)
    missing = [t for t in load.created if t not in tokens]
    not_revoked = [t for t in load.revoked if t in tokens and tokens[t]["state"] != "REVOKED"]
    missing_servers = [s for s in load.servers
                       if call(base, "GET", f"/v1/connect/servers/{s}").status != 200]
    total = load.acknowledged()
    v.check(not missing and not not_revoked and not missing_servers,
            f"{label}: all {total} acknowledged writes read back ({len(load.created)} token creates,"
            f" {len(load.revoked)} revokes, {len(load.servers)} server creates); missing:"
            f" {len(missing)} tokens, {len(not_revoked)} revokes, {len(missing_servers)} servers")
