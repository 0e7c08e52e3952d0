"""What scripts/gateway-check's Python parts share: HTTP to the manager and the stand-in, and the
PASS/FAIL lines the script counts.

Standard library only. Each check prints one line on standard output:
    PASS <scenario>: <what holds>
    FAIL <scenario>: <what should hold>: <what happened>
scripts/gateway-check counts them; a scenario that dies without a FAIL line is counted as failed
by the script (non-zero exit).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from contextlib import contextmanager


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 10.0):
    """(status, parsed JSON or raw bytes, headers). Never raises on an HTTP status."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, rh = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, rh = e.code, e.read(), e.headers
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return status, parsed, rh


class Manager:
    """The manager's API as its owner (CONNECT_MANAGER_URL, CONNECT_MANAGER_TOKEN)."""

    def __init__(self, url: str | None = None, key: str | None = None):
        self.url = (url or os.environ["CONNECT_MANAGER_URL"]).rstrip("/")
        self.key = key or os.environ["CONNECT_MANAGER_TOKEN"]

    def call(self, method: str, path: str, body=None, expect: tuple[int, ...] = (200, 201, 204)):
        status, parsed, _ = http(method, self.url + path, body,
                                 {"Authorization": f"Bearer {self.key}"})
        if status not in expect:
            raise RuntimeError(f"manager {method} {path}: {status} {parsed!r}")
        return parsed

    def revoke_token(self, token_id: str, server_id: str) -> None:
        self.call("DELETE", f"/v1/connect/tokens/{token_id}?server={server_id}")

    def revoke_vault(self, server_id: str, vault_id: str) -> None:
        self.call("DELETE", f"/v1/connect/servers/{server_id}/vaults/{vault_id}")

    def grant_vault(self, server_id: str, vault_id: str) -> None:
        self.call("PUT", f"/v1/connect/servers/{server_id}/vaults/{vault_id}")


class StandIn:
    """The Connect stand-in's own endpoints and direct reads with the upstream token."""

    def __init__(self, url: str | None = None, token: str | None = None):
        self.url = (url or os.environ["STANDIN_URL"]).rstrip("/")
        self.token = token or os.environ["STANDIN_TOKEN"]

    def record(self) -> list[dict]:
        status, parsed, _ = http("GET", self.url + "/__standin/requests")
        if status != 200:
            raise RuntimeError(f"stand-in record: {status}")
        return parsed

    def direct(self, path: str) -> bytes:
        """A read straight from the stand-in (what the client should get through the gateway)."""
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()


class Report:
    """PASS/FAIL lines for one scenario; `failed` counts the FAILs."""

    def __init__(self, scenario: str):
        self.scenario = scenario
        self.failed = 0
        self.passed = 0

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"PASS {self.scenario}: {what}", flush=True)

    def fail(self, what: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL {self.scenario}: {what}: {why}", flush=True)

    def check(self, what: str, cond: bool, why: str = "") -> bool:
        if cond:
            self.ok(what)
        else:
            self.fail(what, why or "does not hold")
        return cond

    @contextmanager
    def step(self, what: str):
        """A check made of several statements: an exception or AssertionError is its FAIL."""
        try:
            yield
        except AssertionError as e:
            self.fail(what, str(e) or "assertion failed")
        except Exception as e:  # noqa: BLE001 - any error is this step's failure
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            self.fail(what, detail)
        else:
            self.ok(what)

    def exit(self) -> None:
        sys.exit(1 if self.failed else 0)


def wait_for_refusal(attempt, refused, limit_s: float, interval_s: float = 0.05):
    """Call `attempt()` until `refused(result)`; returns (seconds waited, last result). Gives up
    after `limit_s` (then the last result is the one that was still allowed)."""
    start = time.monotonic()
    while True:
        result = attempt()
        waited = time.monotonic() - start
        if refused(result) or waited > limit_s:
            return waited, result
        time.sleep(interval_s)


def load_setup() -> dict:
    with open(os.environ["GATEWAY_CHECK_SETUP"], encoding="utf-8") as f:
        return json.load(f)
