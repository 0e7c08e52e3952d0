#!/usr/bin/env python3
"""Revoke lag through the gateway (SPEC G2): for each token, the time from the manager's answer
to its revocation to the gateway's first 401 for that token.

    revoke_lag.py GATEWAY_URL MANAGER_URL API_KEY PATH TOKENS_FILE [SPACING_SECONDS]

Each token (one JWT per line) gets its own thread and keep-alive connections: until its turn
(revocations start SPACING_SECONDS apart) it reads PATH through the gateway every KEEP_HOT
seconds, answered 200, so that the gateway holds a cached active answer of any age up to its
max-staleness when the revocation comes (the lag's worst case is a fresh one); then it revokes
the token through the manager (`DELETE /v1/connect/tokens/{jti}`) and reads PATH through the
gateway every POLL seconds until the answer is 401. Prints one JSON line: the lags (seconds, sorted), the
manager's revoke round trips, the poll interval.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
import threading
import time
import urllib.parse

POLL = 0.005
KEEP_HOT = 0.05
GIVE_UP = 30.0


def jti(jwt: str) -> str:
    payload = jwt.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["jti"]


class Client:
    """One keep-alive connection, reopened when the peer closes it."""

    def __init__(self, url: str):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, headers: dict) -> int:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request(method, path, headers=headers)
                r = self.conn.getresponse()
                r.read()
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                return r.status
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def main() -> None:
    gateway, manager, key, path, tokens_file = sys.argv[1:6]
    spacing = float(sys.argv[6]) if len(sys.argv) > 6 else 0.05
    tokens = [t.strip() for t in open(tokens_file) if t.strip()]
    lags: list[float] = [0.0] * len(tokens)
    round_trips: list[float] = [0.0] * len(tokens)
    errors: list[str] = []
    start = time.monotonic() + 0.5

    def one(i: int, token: str) -> None:
        try:
            gw, mgr = Client(gateway), Client(manager)
            auth = {"Authorization": "Bearer " + token}
            revoke_at = start + i * spacing
            while True:
                status = gw.request("GET", path, auth)
                if status != 200:
                    raise AssertionError(f"token {i}: {status} before its revocation")
                left = revoke_at - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(KEEP_HOT, left))
            sent = time.monotonic()
            status = mgr.request("DELETE", "/v1/connect/tokens/" + jti(token),
                                 {"Authorization": "Bearer " + key})
            answered = time.monotonic()
            if status != 200:
                raise AssertionError(f"token {i}: revoke answered {status}")
            round_trips[i] = answered - sent
            while True:
                status = gw.request("GET", path, auth)
                now = time.monotonic()
                if status == 401:
                    lags[i] = now - answered
                    return
                if status != 200:
                    raise AssertionError(f"token {i}: {status} while waiting for 401")
                if now - answered > GIVE_UP:
                    raise AssertionError(f"token {i}: still {status} {GIVE_UP} s after its revocation")
                time.sleep(POLL)
        except Exception as e:  # noqa: BLE001 (reported, and the run fails)
            errors.append(str(e))

    threads = [threading.Thread(target=one, args=(i, t)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("revoke_lag: " + "; ".join(errors[:5]))
    print(json.dumps({"lags": sorted(lags), "round_trips": sorted(round_trips), "poll": POLL}))


if __name__ == "__main__":
    main()
