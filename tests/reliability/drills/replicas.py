"""Drill 5 (issue 8): three serve processes started at once on one empty PostgreSQL database:
migrations applied once, one bootstrap owner, and revocations, vault revokes, server deletes,
signing-key and credentials rotations visible on every replica within REPLICA_LAG_S (poll_all
measures the lag).
"""

from __future__ import annotations

import os
import threading
import time

from .common import REPLICA_LAG_S, DrillFailure, Resp, Verdict, call, expect, jwt_kid, pct, say
from .fixtures import ServerCreds, create_server, create_token, create_vault, credentials_secret
from .pg import have_pg, pg_fresh_db, psql
from .service import Service


def poll_all(bases: list[str], t_ack: float, probe, limit: float = 5.0,
             took: list[float] | None = None) -> list[float | None]:
    """For each replica, how long after t_ack `probe(base)` first held (None: not within limit).
    The lag includes the request that saw it, so it is an upper bound; that request's own
    duration is appended to `took`."""
    out: list[float | None] = [None] * len(bases)

    def one(i: int) -> None:
        while time.monotonic() - t_ack < limit:
            seen, r = probe(bases[i])
            if seen:
                out[i] = max(0.0, r.ended - t_ack)
                if took is not None:
                    took.append(r.elapsed)
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def drill_replicas(long: bool) -> Verdict:
    v = Verdict("replicas")
    rounds = 30 if long else 5
    say(f"== replicas: three serve processes started at once on one empty PostgreSQL database, {rounds} rounds per kind")
    if not have_pg():
        v.check(False, "PostgreSQL cluster available")
        return v
    db, url = pg_fresh_db("replicas")
    replicas = [Service(f"replica-{i}", url) for i in range(3)]
    t0 = time.monotonic()
    for s in replicas:
        s.start()
    ready = [s.wait_ready() for s in replicas]
    say(f"  all three started together and ready {max(ready):.2f} s later")
    files = sorted(f for f in os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "..", "..", "..", "migrations", "postgres"))
                   if f.endswith(".sql"))
    rows = psql(db, "SELECT version, success FROM _sqlx_migrations ORDER BY version")
    versions = [int(r[0]) for r in rows]
    expected = [int(f.split("_")[0]) for f in files]
    v.check(versions == expected and all(r[1] == "t" for r in rows),
            f"_sqlx_migrations holds each of the {len(expected)} migrations once, all successful (versions {versions})")
    for s in replicas:
        text = s.log_text()
        errors = [line for line in text.splitlines() if " ERROR " in line or "panicked" in line]
        v.check(s.proc is not None and s.proc.poll() is None and not errors,
                f"{s.name} started cleanly (running, {len(errors)} ERROR lines in its log)")
    owners = psql(db, "SELECT count(*) FROM users")[0][0]
    v.check(owners == "1", f"one bootstrap owner for three concurrent first starts ({owners})")
    bases = [s.base for s in replicas]
    v1 = create_vault(bases[0], "replica-v1")
    v2 = create_vault(bases[1], "replica-v2")
    server, creds = create_server(bases[2], "replica-server", [v1, v2])
    # Each replica may make a signing key on a concurrent first start (T3: the newest signs, all
    # verify); within a second every replica must sign with the same, newest one.
    keys0 = int(psql(db, "SELECT count(*) FROM signing_keys")[0][0])
    newest = psql(db, "SELECT kid FROM signing_keys ORDER BY created_at DESC, kid DESC LIMIT 1")[0][0]
    t_keys = time.monotonic()
    converged = poll_all(bases, t_keys, lambda b: (
        (r := call(b, "POST", f"/v1/connect/servers/{server}/tokens",
                   {"name": "kid-probe", "vaults": [{"vault": v1}]})).status == 201
        and jwt_kid(r.body["token"]) == newest, r), limit=5.0)
    worst_conv = max((x for x in converged if x is not None), default=0.0)
    v.check(None not in converged and worst_conv < 2 * REPLICA_LAG_S,
            f"{keys0} signing key(s) after three concurrent first starts; every replica signs with the"
            f" newest within {worst_conv:.2f} s of setup (bound {2 * REPLICA_LAG_S:.0f} s: the key ring"
            " compares with the database once a second)")
    lags: dict[str, list[float]] = {}
    missed: dict[str, int] = {}
    took: dict[str, list[float]] = {}

    def durs(kind: str) -> list[float]:
        return took.setdefault(kind, [])

    def introspect(base: str, jwt: str, c: ServerCreds) -> Resp:
        return call(base, "POST", "/v1/introspect", {"token": jwt}, basic=(c.id, c.secret))

    def record(kind: str, res: list[float | None]) -> None:
        lags.setdefault(kind, [])
        missed.setdefault(kind, 0)
        for x in res:
            if x is None:
                missed[kind] += 1
            else:
                lags[kind].append(x)

    def warm(jwt: str, c: ServerCreds, active: bool = True) -> None:
        for b in bases:
            r = introspect(b, jwt, c)
            if r.status != 200 or r.body.get("active") is not active:
                raise DrillFailure(f"introspection on {b} before the change: {r.status} {r.body!r:.300}")

    for rnd in range(rounds):
        actor = bases[rnd % 3]
        # token revocation
        tok = create_token(bases[(rnd + 1) % 3], server, [v1, v2])
        warm(tok["token"], creds)
        expect(call(actor, "DELETE", f"/v1/connect/tokens/{tok['id']}"), 200, "revoke token")
        t_ack = time.monotonic()
        record("token revocation", poll_all(bases, t_ack, took=durs("token revocation"), probe=lambda b: (
            (r := introspect(b, tok["token"], creds)).status == 200 and r.body.get("active") is False, r)))
        # vault revoke: the token loses v2 on every replica
        tok = create_token(bases[(rnd + 2) % 3], server, [v1, v2])
        warm(tok["token"], creds)
        expect(call(actor, "DELETE", f"/v1/connect/servers/{server}/vaults/{v2}"), 200, "revoke vault")
        t_ack = time.monotonic()
        record("vault revoke", poll_all(bases, t_ack, took=durs("vault revoke"), probe=lambda b: (
            (r := introspect(b, tok["token"], creds)).status == 200 and r.body.get("active") is True
            and [x["id"] for x in r.body.get("vaults", [])] == [v1], r)))
        expect(call(actor, "PUT", f"/v1/connect/servers/{server}/vaults/{v2}"), 200, "grant vault again")
        # server delete: its credentials stop authenticating everywhere
        doomed, dcreds = create_server(bases[(rnd + 1) % 3], f"doomed-{rnd}", [v1])
        dtok = create_token(bases[(rnd + 2) % 3], doomed, [v1])
        warm(dtok["token"], dcreds)
        expect(call(actor, "DELETE", f"/v1/connect/servers/{doomed}"), 204, "delete server")
        t_ack = time.monotonic()
        record("server delete", poll_all(bases, t_ack, took=durs("server delete"), probe=lambda b: (
            (r := introspect(b, dtok["token"], dcreds)).status == 401, r)))
        # signing-key rotation: published by every replica's JWKS, and signing new tokens there
        rot = expect(call(actor, "POST", "/v1/keys/rotate"), 201, "rotate key")
        t_ack = time.monotonic()
        kid = rot["kid"]
        record("key rotation: JWKS", poll_all(bases, t_ack, took=durs("key rotation: JWKS"), probe=lambda b: (
            (r := call(b, "GET", "/.well-known/jwks.json", token=None)).status == 200
            and kid in [k["kid"] for k in r.body["keys"]], r)))
        record("key rotation: signing", poll_all(bases, t_ack, took=durs("key rotation: signing"), probe=lambda b: (
            (r := call(b, "POST", f"/v1/connect/servers/{server}/tokens",
                       {"name": "kid-probe", "vaults": [{"vault": v1}]})).status == 201
            and jwt_kid(r.body["token"]) == kid, r)))
        # credentials rotation: the old secret stops working, the new one works, everywhere
        tok = create_token(actor, server, [v1])
        warm(tok["token"], creds)
        body = expect(call(actor, "POST", f"/v1/connect/servers/{server}/credentials"), 201,
                      "rotate credentials")
        t_ack = time.monotonic()
        new = credentials_secret(body["credentials"], "rotated")
        old = creds
        record("credentials rotation: old refused", poll_all(bases, t_ack, took=durs("credentials rotation: old refused"), probe=lambda b: (
            (r := introspect(b, tok["token"], old)).status == 401, r)))
        record("credentials rotation: new accepted", poll_all(bases, t_ack, took=durs("credentials rotation: new accepted"), probe=lambda b: (
            (r := introspect(b, tok["token"], new)).status == 200 and r.body.get("active") is True, r)))
        creds = new

    say(f"  lag after the acknowledging response until each replica showed the change ({rounds} rounds x 3 replicas;"
        " upper bounds: they include the request that saw it):")
    for kind in lags:
        xs = lags[kind]
        worst = max(xs, default=float("inf")) if not missed[kind] else float("inf")
        say(f"    {kind:36s} n={len(xs):3d}  p50 {pct(xs, 50)*1000:5.0f} ms  worst {max(xs, default=0)*1000:5.0f} ms"
            f"  (the seeing request alone: p50 {pct(took.get(kind, []), 50)*1000:4.0f} ms,"
            f" max {max(took.get(kind, []), default=0)*1000:4.0f} ms)"
            + (f"  NOT SEEN within 5 s: {missed[kind]}" if missed[kind] else ""))
        v.check(worst < REPLICA_LAG_S, f"{kind}: visible on every replica within {REPLICA_LAG_S:.0f} s"
                f" (worst {max(xs, default=0)*1000:.0f} ms)")
    for s in replicas:
        s.stop()
    return v
