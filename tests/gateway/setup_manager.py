#!/usr/bin/env python3
"""scripts/gateway-check's setup of a manager for one gateway: the stand-in's vaults registered
under their real Connect IDs (G8), a server with them granted and its credentials file, and
the tokens the scenarios carry.

    setup_manager.py --standin-url URL --upstream-token-file F --register api|import
                     --bin connect-manager --out DIR --label L --tokens a,b,c

Environment: CONNECT_MANAGER_URL, CONNECT_MANAGER_TOKEN (an owner's API key).

--register api: `POST /v1/vaults` with each vault's `id`. --register import: `connect-manager
vault import --connect-host URL` with the Connect token in OP_CONNECT_TOKEN, run twice (it must be
idempotent). Either way the registry must then hold each stand-in vault once, under its real ID.

The vaults: the stand-in's first (Production) is the tokens' read-write vault, its second
(Staging) their read-only vault, its third (Shared) is granted to the server but in no token's
scope (so the vault list must not show it). Another server with its own token gives a foreign
token (signed by the same manager, for the wrong server: G2 `sub`).

Writes DIR/connect-manager-credentials.json (mode 600) and DIR/setup.json:
    {"server_id", "vaults": {"rw"|"ro"|"out": {"id", "name"}}, "tokens": {name: {"id", "jwt"}},
     "foreign_token", "fixture": <the stand-in's fixture>}
Prints PASS/FAIL lines (check_lib.Report) as scenario `setup-<label>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_lib import Manager, Report, http  # noqa: E402

READ_WRITE, READ = "read_write", "read"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--standin-url", required=True)
    ap.add_argument("--upstream-token-file", required=True)
    ap.add_argument("--register", choices=("api", "import"), required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--tokens", required=True)
    args = ap.parse_args()

    report = Report(f"setup-{args.label}")
    mgr = Manager()
    with open(args.upstream_token_file, encoding="utf-8") as f:
        upstream_token = f.read().strip()
    status, fixture, _ = http("GET", args.standin_url.rstrip("/") + "/__standin/fixture")
    if status != 200:
        report.fail("read the stand-in's fixture", f"status {status}")
        report.exit()
    vaults = fixture["vaults"]

    # --- G8: the real vault IDs in the registry ----------------------------------------------
    how = "POST /v1/vaults with each vault's id" if args.register == "api" else \
        "connect-manager vault import, run twice"
    with report.step(f"the registry holds the stand-in's vaults under their real IDs (G8: {how})"):
        if args.register == "api":
            for v in vaults:
                made = mgr.call("POST", "/v1/vaults",
                                {"id": v["id"], "name": v["name"], "type": "USER_CREATED"})
                assert made["id"] == v["id"], f"created {made['id']} for {v['id']}"
        else:
            env = dict(os.environ, OP_CONNECT_TOKEN=upstream_token)
            for _ in range(2):
                run = subprocess.run(
                    [args.bin, "vault", "import", "--connect-host", args.standin_url],
                    env=env, capture_output=True, text=True, timeout=60,
                )
                assert run.returncode == 0, \
                    f"vault import exited {run.returncode}: {run.stderr.strip()[-400:]}"
                assert upstream_token not in run.stdout + run.stderr, \
                    "vault import printed the Connect token"
        listed = mgr.call("GET", "/v1/vaults?limit=100")["items"]
        for v in vaults:
            same = [r for r in listed if r["id"] == v["id"]]
            assert len(same) == 1, f"{v['name']} ({v['id']}) listed {len(same)} times"
            assert same[0]["name"] == v["name"], f"{v['id']} is named {same[0]['name']!r}"

    rw, ro, out = vaults[0], vaults[1], vaults[2]
    setup: dict = {"vaults": {"rw": rw, "ro": ro, "out": out}, "tokens": {}, "fixture": fixture}
    with report.step("a server with the three vaults granted, its credentials file written"):
        made = mgr.call("POST", "/v1/connect/servers",
                        {"name": f"gateway-check {args.label}",
                         "vaults": [rw["id"], ro["id"], out["id"]]})
        setup["server_id"] = made["server"]["id"]
        path = os.path.join(args.out, "connect-manager-credentials.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(made["credentials"], f)
        granted = {v["id"] for v in made["server"]["vaults"]}
        assert granted == {rw["id"], ro["id"], out["id"]}, f"granted {granted}"

    with report.step("tokens: read-write on the first vault, read-only on the second"):
        for name in args.tokens.split(","):
            tok = mgr.call("POST", f"/v1/connect/servers/{setup['server_id']}/tokens",
                           {"name": name, "vaults": [{"vault": rw["id"], "access": READ_WRITE},
                                                     {"vault": ro["id"], "access": READ}]})
            setup["tokens"][name] = {"id": tok["id"], "jwt": tok["token"]}

    with report.step("a foreign token: another server's, for the same vault"):
        other = mgr.call("POST", "/v1/connect/servers",
                         {"name": f"gateway-check {args.label} other", "vaults": [rw["id"]]})
        tok = mgr.call("POST", f"/v1/connect/servers/{other['server']['id']}/tokens",
                       {"name": "foreign", "vaults": [{"vault": rw["id"], "access": READ_WRITE}]})
        setup["foreign_token"] = tok["token"]

    with open(os.path.join(args.out, "setup.json"), "w", encoding="utf-8") as f:
        json.dump(setup, f)
    report.exit()


if __name__ == "__main__":
    main()
