#!/usr/bin/env python3
"""1Password's Python Connect SDK (`onepasswordconnectsdk`, pinned in requirements-ci.txt) as a
client of `connect-manager gateway`: the scenario of issue 13, run by scripts/gateway-check.

    sdk_python.py LABEL

The SDK is built from the environment exactly as an application builds it
(`new_client_from_environment()`: OP_CONNECT_HOST = the gateway, OP_CONNECT_TOKEN = a
connect-manager token). Also read: GATEWAY_CHECK_SETUP (setup_manager.py's setup.json),
GATEWAY_CHECK_TOKEN (which of its tokens OP_CONNECT_TOKEN is), CONNECT_MANAGER_URL and
CONNECT_MANAGER_TOKEN (the manager, as its owner: the revocations), STANDIN_URL and STANDIN_TOKEN
(the stand-in: what the client should read, and its record), GATEWAY_MAX_STALENESS_MS.

The token reads and writes the first vault, reads the second; the third is granted to the server
but not to the token. The checks, in order: vault list cut to the token's scope (G3); an item found
by title (in a vault found by name); its password field; a file downloaded (small and 1 MiB,
content compared with the stand-in's); an item created in the writable vault; creating in the
read-only vault refused (403) and never reaching the stand-in; the out-of-scope vault refused
(403); another server's token refused (401); the writable vault revoked from the server through
the manager: refused (403) within max-staleness + one round trip, and gone from the list; the token
revoked through the manager: refused (401) within the same bound, and nothing more reaches the
stand-in; no client token ever reached the stand-in.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_lib import Manager, Report, StandIn, load_setup, wait_for_refusal  # noqa: E402

from onepasswordconnectsdk import new_client, new_client_from_environment  # noqa: E402
from onepasswordconnectsdk.errors import OnePasswordConnectSDKError  # noqa: E402
from onepasswordconnectsdk.models import Field, Item, ItemVault  # noqa: E402

# What a round trip may add to max-staleness on a loaded 2-core CI machine (G2's bound is
# "max-staleness plus one round trip"); the measured lag is printed either way.
ROUND_TRIP_ALLOWANCE_S = 1.0


def status_of(exc: Exception) -> int | None:
    """The HTTP status an SDK error carries: `status_code` where the SDK sets it, else the
    "Received N" its messages all contain."""
    code = getattr(exc, "status_code", None)
    if code:
        return int(code)
    m = re.search(r"Received (\d{3})", str(exc))
    return int(m.group(1)) if m else None


def outcome(call):
    """200 when `call()` succeeds, else the status of the SDK's error."""
    try:
        call()
        return 200
    except OnePasswordConnectSDKError as e:
        return status_of(e)


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "python-sdk"
    report = Report(label)
    setup = load_setup()
    token = setup["tokens"][os.environ["GATEWAY_CHECK_TOKEN"]]
    server_id = setup["server_id"]
    rw, ro, out = (setup["vaults"][k] for k in ("rw", "ro", "out"))
    items = {(i["vault"], i["title"]): i for i in setup["fixture"]["items"]}
    db = items[(rw["id"], "Database")]
    staleness_s = int(os.environ["GATEWAY_MAX_STALENESS_MS"]) / 1000
    bound_s = staleness_s + ROUND_TRIP_ALLOWANCE_S
    mgr, standin = Manager(), StandIn()
    started_at = time.time()

    client = new_client_from_environment()

    with report.step("list vaults: exactly the token's two vaults, not the server's third (G3)"):
        got = sorted(v.id for v in client.get_vaults())
        assert got == sorted([rw["id"], ro["id"]]), f"listed {got}"

    with report.step("find an item by title, in a vault found by name"):
        item = client.get_item("Database", rw["name"])
        assert item.id == db["id"], f"found {item.id}, expected {db['id']}"
        by_title = client.get_item_by_title("API Key", ro["id"])
        assert by_title.title == "API Key", f"found {by_title.title!r}"

    with report.step("read the password field (the stand-in's value)"):
        password = next(f.value for f in item.fields if f.purpose == "PASSWORD")
        assert password == f"{rw['name'].lower()}-password", f"read {password!r}"

    with report.step("download files: content identical to the stand-in's (small and 1 MiB)"):
        with tempfile.TemporaryDirectory() as d:
            for f in db["files"]:
                client.download_file(f["id"], db["id"], rw["id"], d)
                with open(os.path.join(d, f["name"]), "rb") as fh:
                    got = fh.read()
                want = standin.direct(
                    f"/v1/vaults/{rw['id']}/items/{db['id']}/files/{f['id']}/content")
                assert len(got) == f["size"], f"{f['name']}: {len(got)} bytes, expected {f['size']}"
                assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest(), \
                    f"{f['name']}: content differs from the stand-in's"

    with report.step("create an item in the writable vault, read it back"):
        new = Item(vault=ItemVault(id=rw["id"]), title=f"created by {label}", category="LOGIN",
                   fields=[Field(purpose="USERNAME", label="username", value="app"),
                           Field(purpose="PASSWORD", label="password", value="made-by-the-sdk")])
        created = client.create_item(rw["id"], new)
        again = client.get_item_by_id(created.id, rw["id"])
        assert next(f.value for f in again.fields if f.purpose == "PASSWORD") == "made-by-the-sdk"

    refused_create = Item(vault=ItemVault(id=ro["id"]), title=f"refused {label}", category="LOGIN",
                          fields=[Field(purpose="PASSWORD", label="password", value="nope")])
    code = outcome(lambda: client.create_item(ro["id"], refused_create))
    report.check("create in the read-only vault: refused with 403", code == 403, f"got {code}")
    writes = [r for r in standin.record()
              if r["method"] == "POST" and r["raw_path"].startswith(f"/v1/vaults/{ro['id']}/")]
    report.check("the refused create never reached the stand-in", not writes,
                 f"{len(writes)} POSTs to the read-only vault reached it")

    code = outcome(lambda: client.get_items(out["id"]))
    report.check("a vault granted to the server but not to the token: 403", code == 403,
                 f"got {code}")

    foreign = new_client(os.environ["OP_CONNECT_HOST"], setup["foreign_token"])
    code = outcome(foreign.get_vaults)
    report.check("another server's token: 401", code == 401, f"got {code}")
    code = outcome(new_client(os.environ["OP_CONNECT_HOST"], "not-a-token").get_vaults)
    report.check("a malformed token: 401", code == 401, f"got {code}")

    # --- the vault revoked from the server through the manager (R6, G2) ---------------------
    read_rw = lambda: outcome(lambda: client.get_item_by_id(db["id"], rw["id"]))  # noqa: E731
    primed = read_rw()
    try:
        mgr.revoke_vault(server_id, rw["id"])
        lag, last = wait_for_refusal(read_rw, lambda s: s == 403, bound_s + 5)
        report.check(
            f"vault revoked from the server: 403 after {lag * 1000:.0f} ms "
            f"(bound {bound_s * 1000:.0f} ms)",
            primed == 200 and last == 403 and lag <= bound_s,
            f"before: {primed}, last: {last} after {lag * 1000:.0f} ms",
        )
        with report.step("vault revoked: the list shows only the read-only vault"):
            got = [v.id for v in client.get_vaults()]
            assert got == [ro["id"]], f"listed {got}"
    finally:
        mgr.grant_vault(server_id, rw["id"])

    # --- the token revoked through the manager (R8, G2) -------------------------------------
    primed = outcome(client.get_vaults)
    mgr.revoke_token(token["id"], server_id)
    lag, last = wait_for_refusal(lambda: outcome(client.get_vaults), lambda s: s == 401, bound_s + 5)
    refused_at = time.time()
    report.check(
        f"token revoked: 401 after {lag * 1000:.0f} ms (bound {bound_s * 1000:.0f} ms)",
        primed == 200 and last == 401 and lag <= bound_s,
        f"before: {primed}, last: {last} after {lag * 1000:.0f} ms",
    )
    print(f"MEASURE {label}: token revoke lag {lag * 1000:.0f} ms", flush=True)
    later = [outcome(client.get_vaults),
             outcome(lambda: client.get_item_by_id(db["id"], rw["id"])),
             outcome(lambda: client.create_item(rw["id"], new))]
    reached = [r for r in standin.record() if r["at"] >= refused_at]
    report.check("revoked token: every later call 401, none reached the stand-in",
                 later == [401, 401, 401] and not reached,
                 f"statuses {later}, {len(reached)} requests reached the stand-in")

    record = [r for r in standin.record() if r["at"] >= started_at - 1]
    # Connect's /health and /heartbeat need no token (the gateway's readiness probe calls one).
    foreign_auth = [r for r in record
                    if r["headers"].get("authorization") != f"Bearer {standin.token}"
                    and not (r["headers"].get("authorization") is None
                             and r["raw_path"] in ("/health", "/heartbeat"))]
    report.check(f"every one of the {len(record)} requests that reached the stand-in carried the "
                 "upstream token, none a client's", bool(record) and not foreign_auth,
                 f"{len(foreign_auth)} carried another Authorization: "
                 f"{[(r['method'], r['raw_path']) for r in foreign_auth]}")
    report.exit()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported as the scenario's failure
        print(f"FAIL {sys.argv[1] if len(sys.argv) > 1 else 'python-sdk'}: the scenario ran to "
              f"its end: {type(e).__name__}: {e}", flush=True)
        raise
