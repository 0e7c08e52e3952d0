#!/usr/bin/env python3
"""Seeds a live connect-manager through its API for scripts/fuzz, then writes the schemathesis
configuration that lets generated requests name the seeded objects.

    seed.py BASE_URL OUT_DIR          (the owner's API key in FUZZ_OWNER_KEY)

Without real objects nearly every request with a path parameter ({server}, {vault}, {token},
{group}, {user}, {key_id}) would be a 404 and the handlers behind the lookup would never run.
So this makes a few of each (vaults of a grantable and a built-in type, servers with grants,
tokens, users with API keys, groups with members and grants) and binds each path parameter to a
dictionary of their IDs and names, used for most generated values (7 in 10 by default; the rest
stays random, so the 404 paths are fuzzed too). `POST /v1/introspect` authenticates as a seeded
server that is kept out of the dictionaries, and its body's `token` is drawn from real JWTs.

Writes OUT_DIR/schemathesis.toml (checks, phases, auth, dictionaries; the owner key is read from
FUZZ_OWNER_KEY when schemathesis loads it, so it is not in the file) and OUT_DIR/protected.json
(the references the hooks keep the run from deleting: see hooks.py).
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

base_url, out_dir = sys.argv[1], sys.argv[2]
owner_key = os.environ["FUZZ_OWNER_KEY"]


def call(method, path, body=None, expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {owner_key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read()
    if status not in expect:
        sys.exit(f"seed: {method} {path} answered {status}: {text[:300]!r}")
    return json.loads(text) if text else None


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def open_credentials(file):
    """encCredentials is AES-256-GCM under uniqueKey.k (C1)."""
    key = b64url(file["uniqueKey"]["k"])
    iv = b64url(file["encCredentials"]["iv"])
    plaintext = AESGCM(key).decrypt(iv, b64url(file["encCredentials"]["data"]), None)
    return json.loads(plaintext)


# The bootstrap owner: the only user, with the only key, on a fresh database.
owner = call("GET", "/v1/users")["items"][0]
owner_keys = [k["id"] for k in call("GET", f"/v1/users/{owner['id']}/keys")["items"]]
owners_group = next(g for g in call("GET", "/v1/groups")["items"] if g["name"] == "Owners")

vaults = [
    call("POST", "/v1/vaults", {"name": f"fuzz-vault-{i}", "type": "USER_CREATED"}, (201,))
    for i in range(1, 5)
]
vaults.append(call("POST", "/v1/vaults", {"name": "fuzz-everyone", "type": "EVERYONE"}, (201,)))
vaults.append(call("POST", "/v1/vaults", {"name": "fuzz-private", "type": "PRIVATE"}, (201,)))

servers = []
for i in range(1, 4):
    created = call(
        "POST",
        "/v1/connect/servers",
        {"name": f"fuzz-server-{i}", "vaults": [vaults[0]["id"], vaults[i]["name"]]},
        (201,),
    )
    servers.append(created["server"])
# The server the introspection requests authenticate as: not in any dictionary, protected.
introspector = call(
    "POST",
    "/v1/connect/servers",
    {"name": "fuzz-introspector", "vaults": [vaults[0]["id"]]},
    (201,),
)
secret = open_credentials(introspector["credentials"])
introspector = introspector["server"]
assert secret["server_id"] == introspector["id"]

tokens, jwts = [], []
for i, server in enumerate(servers[:2], start=1):
    for j in range(1, 3):
        created = call(
            "POST",
            f"/v1/connect/servers/{server['id']}/tokens",
            {"name": f"fuzz-token-{i}-{j}", "vaults": [{"vault": vaults[0]["id"], "access": "read"}]},
            (201,),
        )
        tokens.append(created)
        jwts.append(created["token"])
for expires_in in (None, "1h"):
    body = {"name": "fuzz-introspected", "vaults": [{"vault": vaults[0]["name"]}]}
    if expires_in:
        body["expires_in"] = expires_in
    created = call("POST", f"/v1/connect/servers/{introspector['id']}/tokens", body, (201,))
    jwts.append(created["token"])

users, keys = [], []
for i in range(1, 4):
    user = call(
        "POST", "/v1/users", {"name": f"fuzz-user-{i}", "email": f"fuzz-user-{i}@example.test"}, (201,)
    )
    users.append(user)
    keys.append(call("POST", f"/v1/users/{user['id']}/keys", None, (201,))["id"])

groups = []
for i in range(1, 4):
    group = call("POST", "/v1/groups", {"name": f"fuzz-group-{i}"}, (201,))
    groups.append(group)
    call("PUT", f"/v1/groups/{group['id']}/members/{users[i - 1]['id']}")
call("PUT", f"/v1/connect/groups/{groups[0]['id']}/grants/manager")
call("PUT", f"/v1/connect/groups/{groups[1]['id']}/grants/all-servers")
call("PUT", f"/v1/connect/groups/{groups[2]['id']}/grants/servers/{servers[0]['id']}")

# The objects the destructive operations (delete, rename) are pointed at, so that the others keep
# finding theirs: a run that deleted every seeded group in its first seconds would send the
# membership operations nothing but 404s from then on.
doomed_vaults = [
    call("POST", "/v1/vaults", {"name": f"fuzz-doomed-vault-{i}", "type": "USER_CREATED"}, (201,))
    for i in range(1, 4)
]
doomed_servers = [
    call(
        "POST",
        "/v1/connect/servers",
        {"name": f"fuzz-doomed-server-{i}", "vaults": [doomed_vaults[i - 1]["id"]]},
        (201,),
    )["server"]
    for i in range(1, 4)
]
doomed_users = [
    call(
        "POST",
        "/v1/users",
        {"name": f"fuzz-doomed-user-{i}", "email": f"fuzz-doomed-user-{i}@example.test"},
        (201,),
    )
    for i in range(1, 4)
]
doomed_groups = []
for i in range(1, 4):
    group = call("POST", "/v1/groups", {"name": f"fuzz-doomed-group-{i}"}, (201,))
    doomed_groups.append(group)
    call("PUT", f"/v1/groups/{group['id']}/members/{doomed_users[i - 1]['id']}")
    call("PUT", f"/v1/connect/groups/{group['id']}/grants/servers/{doomed_servers[i - 1]['id']}")
for user in doomed_users:
    keys.append(call("POST", f"/v1/users/{user['id']}/keys", None, (201,))["id"])


def toml_list(values):
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def refs(objects, name="name"):
    return [o["id"] for o in objects] + [o[name] for o in objects]


dictionaries = {
    "servers": refs(servers),
    "vaults": refs(vaults),
    "tokens": refs(tokens),
    "groups": refs(groups),
    "users": refs(users, "email"),
    "keys": keys,
    "jwts": jwts,
    # Granted to every server of "servers": token creates name it in their body.
    "granted": refs(vaults[:1]),
    # Each granted to one server of "servers" only: vault revokes name these, and leave "granted".
    "granted_once": refs(vaults[1:4]),
    "expiries": ["90m", "1h", "30d", "1w2d", "52w"],
    "servers_doomed": refs(doomed_servers),
    "vaults_doomed": refs(doomed_vaults),
    "groups_doomed": refs(doomed_groups),
    "users_doomed": refs(doomed_users, "email"),
}
bindings = {
    "path.server": "servers",
    "query.server": "servers",
    "path.vault": "vaults",
    "path.token": "tokens",
    "path.group": "groups",
    "path.user": "users",
    "path.key_id": "keys",
    "body.token": "jwts",
    "body.vaults[*].vault": "granted",
    "body.expires_in": "expiries",
}
# Destructive operations get the doomed objects instead (see above); vault revokes get the vaults
# granted to one server each, so that token creates keep the vault they name.
destructive = {
    ("delete_server", "rename_server"): ("path.server", "servers_doomed"),
    ("delete_vault", "rename_vault"): ("path.vault", "vaults_doomed"),
    ("delete_group",): ("path.group", "groups_doomed"),
    ("delete_user",): ("path.user", "users_doomed"),
    ("revoke_vault",): ("path.vault", "granted_once"),
}

with open(os.path.join(out_dir, "protected.json"), "w", encoding="utf-8") as f:
    json.dump(
        {
            # Deleting these, or taking the owner out of Owners, would end the run's access.
            "owner_user": [owner["id"], owner["email"]],
            "owner_keys": owner_keys,
            "owners_group": [owners_group["id"], owners_group["name"]],
            # Deleting this server or rotating its credentials would end introspection's.
            "introspector": [introspector["id"], introspector["name"]],
        },
        f,
    )

probability = os.environ.get("FUZZ_DICTIONARY_PROBABILITY", "0.7")
lines = [
    "# Written by scripts/fuzz.d/seed.py for one run; see scripts/fuzz.",
    f'hooks = {json.dumps(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hooks.py"))}',
    "",
    "# Nothing carried over from earlier runs: a run is its seed.",
    "[cache]",
    "enabled = false",
    "",
    "[auth.openapi.api_key]",
    'bearer = "${FUZZ_OWNER_KEY}"',
    "",
    "[auth.openapi.server_credentials]",
    f"username = {json.dumps(introspector['id'])}",
    f"password = {json.dumps(secret['secret'])}",
    "",
]
for name, values in dictionaries.items():
    lines += [f"[dictionaries.{name}]", f"values = {toml_list(values)}", ""]
lines.append("[parameters]")
for key, name in bindings.items():
    lines.append(f'"{key}" = {{ dictionary = "{name}", probability = {probability} }}')
for operation_ids, (key, name) in destructive.items():
    lines += [
        "",
        "[[operations]]",
        f"include-operation-id = {toml_list(operation_ids)}",
        f'parameters = {{ "{key}" = {{ dictionary = "{name}", probability = {probability} }} }}',
    ]
with open(os.path.join(out_dir, "schemathesis.toml"), "w", encoding="utf-8") as f:
    os.fchmod(f.fileno(), 0o600)
    f.write("\n".join(lines) + "\n")

print(
    f"seeded {len(vaults) + len(doomed_vaults)} vaults, "
    f"{len(servers) + len(doomed_servers) + 1} servers, {len(tokens) + 2} tokens, "
    f"{len(users) + len(doomed_users)} users with a key each, "
    f"{len(groups) + len(doomed_groups)} groups with a member and a grant "
    f"({len(doomed_servers) + len(doomed_vaults) + len(doomed_users) + len(doomed_groups)} "
    "of them for the delete and rename operations)"
)
