#!/usr/bin/env python3
"""Token lifecycle through a client generated from the committed openapi.yaml.

Run by scripts/generated-client-check, which generates the client with openapi-python-client
into a package named `connect_manager_client`, puts it on PYTHONPATH and starts a service.

Environment:
  CONNECT_MANAGER_URL    the service's base URL, e.g. http://127.0.0.1:8080
  CONNECT_MANAGER_TOKEN  an owner's API key (Bearer)

Scenario (SPEC "The subcommands", T2, T4, R7, R8, C1): create an EVERYONE vault; create a server
with it and open its credentials file; create a read-only token; introspect it as the server
(active); list tokens (ACTIVE); revoke it; list again (REVOKED, revoked_at set); introspect again
(exactly {"active": false}). Only the generated client talks to the service; assertions are made
on its typed models. Exit 0 when every step holds, 1 with a message naming the failed step.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import sys
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connect_manager_client import AuthenticatedClient
from connect_manager_client.api.connect_servers import create_server
from connect_manager_client.api.connect_tokens import (
    create_token,
    introspect,
    list_tokens,
    revoke_token,
)
from connect_manager_client.api.vaults import create_vault
from connect_manager_client.models import (
    CreatedToken,
    CreateServer,
    CreateToken,
    CreateVault,
    ErrorBody,
    Introspection,
    IntrospectRequest,
    PageToken,
    ServerState,
    ServerWithCredentials,
    Token,
    TokenState,
    TokenVault,
    Vault,
    VaultAccess,
    VaultType,
)
from connect_manager_client.types import UNSET, Response, Unset

READ_ACL = ["view_items", "view_and_copy_passwords"]  # T2: read = 16 | 32


class ScenarioFailure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioFailure(message)


def step(message: str) -> None:
    print(f"scenario: {message}", flush=True)


def describe(response: Response[Any]) -> str:
    body = response.content.decode("utf-8", "replace")
    if len(body) > 2000:
        body = body[:2000] + "…"
    return f"HTTP {int(response.status_code)}: {body}"


def expect(response: Response[Any], status: int, model: type, what: str) -> Any:
    """The parsed body of `response`, which must be `status` with a `model` body."""
    if int(response.status_code) != status:
        kind = "error" if isinstance(response.parsed, ErrorBody) else "response"
        raise ScenarioFailure(f"{what}: expected HTTP {status}, got {kind} {describe(response)}")
    check(
        isinstance(response.parsed, model),
        f"{what}: the generated client did not parse the body as {model.__name__} "
        f"(got {type(response.parsed).__name__}); {describe(response)}",
    )
    return response.parsed


def no_extra_fields(obj: Any, what: str) -> None:
    """Fields the service sent that openapi.yaml does not describe land here."""
    extra = getattr(obj, "additional_properties", {})
    check(not extra, f"{what}: fields not in openapi.yaml: {sorted(extra)}")


def unset_or_none(value: Any) -> bool:
    return value is None or isinstance(value, Unset)


def b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def open_credentials(created: ServerWithCredentials) -> dict[str, str]:
    """Decrypt the credentials file's encCredentials (C1): AES-256-GCM under uniqueKey.k."""
    creds = created.credentials
    check(creds.version == "2", f"credentials file: version {creds.version!r}, expected '2'")
    check(creds.enc_credentials.enc == "A256GCM", f"encCredentials.enc is {creds.enc_credentials.enc!r}")
    check(creds.unique_key.alg == "A256GCM", f"uniqueKey.alg is {creds.unique_key.alg!r}")
    check(creds.unique_key.kty == "oct", f"uniqueKey.kty is {creds.unique_key.kty!r}")
    check(
        creds.unique_key.kid == creds.enc_credentials.kid,
        "uniqueKey.kid does not name the key of encCredentials",
    )
    key = b64url(creds.unique_key.k)
    check(len(key) == 32, f"uniqueKey.k is {len(key) * 8} bits, expected 256")
    iv = b64url(creds.enc_credentials.iv)
    try:
        plaintext = AESGCM(key).decrypt(iv, b64url(creds.enc_credentials.data), None)
    except Exception as err:  # InvalidTag, bad nonce length
        raise ScenarioFailure(f"encCredentials does not decrypt under uniqueKey: {err!r}") from err
    payload = json.loads(plaintext)
    check(
        isinstance(payload, dict) and {"server_id", "secret", "url"} <= set(payload),
        f"encCredentials holds {sorted(payload) if isinstance(payload, dict) else payload!r}, "
        "expected server_id, secret, url",
    )
    return payload


def jwt_claims(jwt: str) -> dict[str, Any]:
    parts = jwt.split(".")
    check(len(parts) == 3 and all(parts), f"the token is not a compact JWS: {jwt[:40]!r}…")
    return json.loads(b64url(parts[1]))


def check_read_only(vaults: Any, vault_id: str, what: str) -> None:
    check(isinstance(vaults, list) and len(vaults) == 1, f"{what}: vaults is {vaults!r}, expected one vault")
    acl = vaults[0]
    no_extra_fields(acl, f"{what}: vault acl")
    check(acl.id == vault_id, f"{what}: vault id {acl.id!r}, expected {vault_id!r}")
    check(acl.acl == READ_ACL, f"{what}: acl {acl.acl!r}, expected {READ_ACL!r}")


def find_token(page: PageToken, token_id: str, what: str) -> Any:
    no_extra_fields(page, what)
    found = [t for t in page.items if t.id == token_id]
    check(
        len(found) == 1,
        f"{what}: token {token_id} listed {len(found)} times among {[t.id for t in page.items]}",
    )
    no_extra_fields(found[0], f"{what}: the token")
    return found[0]


def run(base_url: str, owner_key: str) -> None:
    owner = AuthenticatedClient(base_url=base_url, token=owner_key, timeout=30.0)
    suffix = secrets.token_hex(4)

    # 1. A vault in the registry.
    vault = expect(
        create_vault.sync_detailed(
            client=owner,
            body=CreateVault(name=f"generated-client-vault-{suffix}", type_=VaultType.EVERYONE),
        ),
        201,
        Vault,
        "POST /v1/vaults",
    )
    no_extra_fields(vault, "POST /v1/vaults")
    check(vault.type_ == VaultType.EVERYONE, f"vault type {vault.type_!r}, expected EVERYONE")
    check(vault.name == f"generated-client-vault-{suffix}", f"vault name {vault.name!r}")
    check(isinstance(vault.created_at, datetime.datetime), "vault created_at is not a timestamp")
    step(f"created vault {vault.id} (EVERYONE)")

    # 2. A server with that vault, and its credentials file.
    created = expect(
        create_server.sync_detailed(
            client=owner,
            body=CreateServer(name=f"generated-client-server-{suffix}", vaults=[vault.id]),
        ),
        201,
        ServerWithCredentials,
        "POST /v1/connect/servers",
    )
    no_extra_fields(created, "POST /v1/connect/servers")
    server = created.server
    no_extra_fields(server, "POST /v1/connect/servers: server")
    no_extra_fields(created.credentials, "POST /v1/connect/servers: credentials")
    check(server.state == ServerState.ACTIVE, f"server state {server.state!r}, expected ACTIVE")
    check(
        [v.id for v in server.vaults] == [vault.id],
        f"server vaults {[v.id for v in server.vaults]!r}, expected [{vault.id!r}]",
    )
    payload = open_credentials(created)
    check(
        payload["server_id"] == server.id,
        f"credentials are for server {payload['server_id']!r}, expected {server.id!r}",
    )
    check(bool(payload["secret"]), "the credentials file carries an empty secret")
    check(
        payload["url"].rstrip("/") == base_url.rstrip("/"),
        f"credentials URL {payload['url']!r}, expected {base_url!r}",
    )
    step(f"created server {server.id} with the vault; credentials file decrypted")

    # The server authenticates with HTTP Basic (T4). The generated client only knows
    # `<prefix> <token>`, which is enough: prefix "Basic", token base64("id:secret").
    basic = base64.b64encode(f"{server.id}:{payload['secret']}".encode()).decode()
    as_server = AuthenticatedClient(base_url=base_url, token=basic, prefix="Basic", timeout=30.0)

    # 3. A read-only token.
    token_name = f"generated-client-token-{suffix}"
    new = expect(
        create_token.sync_detailed(
            server.id,
            client=owner,
            body=CreateToken(
                name=token_name,
                vaults=[TokenVault(vault=vault.id, access=VaultAccess.READ)],
            ),
        ),
        201,
        CreatedToken,
        "POST /v1/connect/servers/{server}/tokens",
    )
    what = "POST /v1/connect/servers/{server}/tokens"
    no_extra_fields(new, what)
    check(isinstance(new.token, str) and new.token != "", f"{what}: no JWT in the response")
    claims = jwt_claims(new.token)
    check(claims.get("jti") == new.id, f"{what}: JWT jti {claims.get('jti')!r}, token id {new.id!r}")
    check(claims.get("sub") == server.id, f"{what}: JWT sub {claims.get('sub')!r}, server {server.id!r}")
    check(new.name == token_name, f"{what}: name {new.name!r}")
    check(new.state == TokenState.ACTIVE, f"{what}: state {new.state!r}, expected ACTIVE")
    check(new.integration_id == server.id, f"{what}: integration_id {new.integration_id!r}")
    check(new.features == ["vaultaccess"], f"{what}: features {new.features!r}")
    check(new.expired is False, f"{what}: expired is {new.expired!r}")
    check(unset_or_none(new.expires_at), f"{what}: expires_at {new.expires_at!r}, expected none")
    check(unset_or_none(new.revoked_at), f"{what}: revoked_at {new.revoked_at!r}, expected none")
    check_read_only(new.vaults, vault.id, what)
    step(f"created read-only token {new.id}; acl {new.vaults[0].acl}")

    # 4. Introspection as the server: active.
    what = "POST /v1/introspect (live token)"
    info = expect(
        introspect.sync_detailed(client=as_server, body=IntrospectRequest(token=new.token)),
        200,
        Introspection,
        what,
    )
    no_extra_fields(info, what)
    check(info.active is True, f"{what}: active is {info.active!r}, expected True")
    check(info.jti == new.id, f"{what}: jti {info.jti!r}, expected {new.id!r}")
    check(info.sub == server.id, f"{what}: sub {info.sub!r}, expected {server.id!r}")
    check(info.name == token_name, f"{what}: name {info.name!r}, expected {token_name!r}")
    check(isinstance(info.iat, int), f"{what}: iat {info.iat!r}, expected an integer")
    check(unset_or_none(info.exp), f"{what}: exp {info.exp!r}, expected none (no expiry)")
    check_read_only(info.vaults, vault.id, what)
    step("introspection as the server: active, read-only on the vault")

    # 5. Listed, ACTIVE.
    what = "GET /v1/connect/tokens?server=<id>"
    page = expect(list_tokens.sync_detailed(client=owner, server=server.id), 200, PageToken, what)
    listed = find_token(page, new.id, what)
    check(listed.state == TokenState.ACTIVE, f"{what}: state {listed.state!r}, expected ACTIVE")
    check(unset_or_none(listed.revoked_at), f"{what}: revoked_at {listed.revoked_at!r} on a live token")
    check_read_only(listed.vaults, vault.id, what)
    step("token listed ACTIVE")

    # 6. Revoke.
    what = "DELETE /v1/connect/tokens/{token}"
    revoked = expect(revoke_token.sync_detailed(new.id, client=owner), 200, Token, what)
    no_extra_fields(revoked, what)
    check(revoked.id == new.id, f"{what}: answered for token {revoked.id!r}")
    check(revoked.state == TokenState.REVOKED, f"{what}: state {revoked.state!r}, expected REVOKED")
    check(
        isinstance(revoked.revoked_at, datetime.datetime),
        f"{what}: revoked_at {revoked.revoked_at!r}, expected a timestamp",
    )
    step(f"revoked token {new.id}")

    # 7. Still listed, REVOKED, with revoked_at.
    what = "GET /v1/connect/tokens?server=<id> (after revoke)"
    page = expect(list_tokens.sync_detailed(client=owner, server=server.id), 200, PageToken, what)
    listed = find_token(page, new.id, what)
    check(listed.state == TokenState.REVOKED, f"{what}: state {listed.state!r}, expected REVOKED")
    check(
        isinstance(listed.revoked_at, datetime.datetime),
        f"{what}: revoked_at {listed.revoked_at!r}, expected a timestamp",
    )
    step(f"token listed REVOKED, revoked_at {listed.revoked_at.isoformat()}")

    # 8. Introspection again: exactly {"active": false}.
    what = "POST /v1/introspect (revoked token)"
    info = expect(
        introspect.sync_detailed(client=as_server, body=IntrospectRequest(token=new.token)),
        200,
        Introspection,
        what,
    )
    check(info.active is False, f"{what}: active is {info.active!r}, expected False")
    for field in ("exp", "iat", "jti", "name", "sub", "vaults"):
        value = getattr(info, field)
        check(value is UNSET, f"{what}: {field} is {value!r}; an inactive answer carries nothing but active")
    no_extra_fields(info, what)
    check(info.to_dict() == {"active": False}, f"{what}: {info.to_dict()!r}, expected {{'active': False}}")
    step('introspection after revoke: {"active": false}')


def main() -> int:
    base_url = os.environ.get("CONNECT_MANAGER_URL", "")
    owner_key = os.environ.get("CONNECT_MANAGER_TOKEN", "")
    if not base_url or not owner_key:
        print("scenario: FAIL: set CONNECT_MANAGER_URL and CONNECT_MANAGER_TOKEN", file=sys.stderr)
        return 2
    try:
        run(base_url, owner_key)
    except ScenarioFailure as err:
        print(f"scenario: FAIL: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # the generated client raising, the service unreachable, …
        print(f"scenario: FAIL: {type(err).__name__}: {err}", file=sys.stderr)
        import traceback

        traceback.print_exc()
        return 1
    print("scenario: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
