"""What every drill module shares: the environment scripts/drill passes (DRILL_*), the bounds
the drills hold the service to, the owner and master keys of this run (made once, here), say,
DrillFailure and Verdict, the HTTP client (Resp, call, expect, is_envelope, jwt_kid), free_port
and pct.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

BIN = os.environ.get("DRILL_BIN", "")
TMP = os.environ.get("DRILL_TMP", "")
PG_BIN = os.environ.get("DRILL_PG_BIN", "")
PG_DATA = os.environ.get("DRILL_PG_DATA", "")
PG_LOG = os.environ.get("DRILL_PG_LOG", "")
PG_PORT = os.environ.get("DRILL_PG_PORT", "")
PG_RUNAS = os.environ.get("DRILL_PG_RUNAS", "")

# What "fail fast" means here: a request that fails while the database is down answers within
# this bound (sqlx would otherwise retry connecting up to its 5 s acquire timeout).
FAIL_FAST_S = 1.0
RECOVERY_S = 5.0  # PostgreSQL back -> the service serves again within this
REPLICA_LAG_S = 1.0  # a change on one replica is seen on every other within this
REQUEST_TIMEOUT_S = 30.0  # a request that takes longer counts as hanging

MASTER_KEY = secrets.token_urlsafe(48)
OWNER_KEY = "drill-owner-" + secrets.token_urlsafe(32)



def say(msg: str) -> None:
    print(msg, flush=True)


class DrillFailure(Exception):
    pass


class Verdict:
    """Collects what held and what did not for one drill."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        say(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            self.failures.append(what)
        return ok


# ---- HTTP ------------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    body: Any
    elapsed: float
    error: str = ""
    started: float = 0.0
    ended: float = 0.0


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = OWNER_KEY,
    basic: tuple[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> Resp:
    host, port = base.removeprefix("http://").split(":")
    headers = {"Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if basic is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{basic[0]}:{basic[1]}".encode()
        ).decode()
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        end = time.monotonic()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return Resp(r.status, parsed, end - start, started=start, ended=end)
    except (OSError, http.client.HTTPException) as e:
        end = time.monotonic()
        return Resp(0, None, end - start, f"{type(e).__name__}: {e}", start, end)
    finally:
        conn.close()


def expect(r: Resp, status: int, what: str) -> Any:
    if r.status != status:
        raise DrillFailure(f"{what}: expected HTTP {status}, got {r.status} {r.error} {r.body!r:.500}")
    return r.body


def is_envelope(body: Any) -> bool:
    """E1: {"error": {"code", "message", "details"}, "request_id"}."""
    if not isinstance(body, dict) or set(body) != {"error", "request_id"}:
        return False
    err = body["error"]
    return (
        isinstance(err, dict)
        and isinstance(err.get("code"), str)
        and isinstance(err.get("message"), str)
        and isinstance(err.get("details"), dict)
        and isinstance(body["request_id"], str)
        and bool(body["request_id"])
    )


def jwt_kid(jwt: str) -> str:
    head = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
