// 1Password's JavaScript Connect SDK (`@1password/connect`, pinned in package.json and
// package-lock.json) as a client of `connect-manager gateway`: the scenario of issue 13, run by
// scripts/gateway-check after `npm ci`.
//
//     node tests/gateway/js/scenario.mjs LABEL
//
// The client is built as 1Password documents it: serverURL = OP_CONNECT_HOST (the gateway),
// token = OP_CONNECT_TOKEN (a connect-manager token). Also read: GATEWAY_CHECK_SETUP,
// GATEWAY_CHECK_TOKEN, CONNECT_MANAGER_URL, CONNECT_MANAGER_TOKEN, STANDIN_URL, STANDIN_TOKEN,
// GATEWAY_MAX_STALENESS_MS (see tests/gateway/sdk_python.py: the same scenario, the same checks).
// Prints PASS/FAIL lines like tests/gateway/check_lib.py; exits 1 if any check failed.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import connect from "@1password/connect";

const { OnePasswordConnect, ItemBuilder, ItemCategory, FieldPurpose } = connect;

// What a round trip may add to max-staleness on a loaded 2-core CI machine (G2's bound is
// "max-staleness plus one round trip"); the measured lag is printed either way.
const ROUND_TRIP_ALLOWANCE_MS = 1000;

const label = process.argv[2] || "js-sdk";
const env = process.env;
let failed = 0;
const pass = (what) => console.log(`PASS ${label}: ${what}`);
const fail = (what, why) => {
  failed += 1;
  console.log(`FAIL ${label}: ${what}: ${why}`);
};
const check = (what, cond, why) => (cond ? pass(what) : fail(what, why || "does not hold"));
async function step(what, body) {
  try {
    await body();
    pass(what);
  } catch (e) {
    fail(what, e instanceof Error ? e.message : JSON.stringify(e));
  }
}
function assert(cond, why) {
  if (!cond) throw new Error(why);
}

// The SDK rejects with Connect's error body ({status, message}) on an HTTP error.
async function outcome(call) {
  try {
    await call();
    return 200;
  } catch (e) {
    return typeof e?.status === "number" ? e.status : `error: ${e?.message ?? e}`;
  }
}

async function manager(method, path) {
  const r = await fetch(env.CONNECT_MANAGER_URL.replace(/\/$/, "") + path, {
    method,
    headers: { authorization: `Bearer ${env.CONNECT_MANAGER_TOKEN}` },
  });
  if (!r.ok) throw new Error(`manager ${method} ${path}: ${r.status} ${await r.text()}`);
}

async function standinRecord() {
  const r = await fetch(`${env.STANDIN_URL}/__standin/requests`);
  return r.json();
}

async function standinDirect(path) {
  const r = await fetch(env.STANDIN_URL + path, {
    headers: { authorization: `Bearer ${env.STANDIN_TOKEN}` },
  });
  return Buffer.from(await r.arrayBuffer());
}

async function waitForRefusal(attempt, status, limitMs) {
  const start = performance.now();
  for (;;) {
    const got = await attempt();
    const waited = performance.now() - start;
    if (got === status || waited > limitMs) return [waited, got];
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

async function main() {
  const setup = JSON.parse(readFileSync(env.GATEWAY_CHECK_SETUP, "utf8"));
  const token = setup.tokens[env.GATEWAY_CHECK_TOKEN];
  const { rw, ro, out } = setup.vaults;
  const serverId = setup.server_id;
  const db = setup.fixture.items.find((i) => i.vault === rw.id && i.title === "Database");
  const boundMs = Number(env.GATEWAY_MAX_STALENESS_MS) + ROUND_TRIP_ALLOWANCE_MS;
  const startedAt = Date.now() / 1000;

  const op = OnePasswordConnect({
    serverURL: env.OP_CONNECT_HOST,
    token: env.OP_CONNECT_TOKEN,
    keepAlive: true,
  });

  await step("list vaults: exactly the token's two vaults, not the server's third (G3)", async () => {
    const got = (await op.listVaults()).map((v) => v.id).sort();
    const want = [rw.id, ro.id].sort();
    assert(JSON.stringify(got) === JSON.stringify(want), `listed ${got}`);
  });

  let item;
  // By the vault's ID: the SDK's getVaultByTitle sends `filter=title eq "…"`, a form the
  // stand-in's vault filter does not take (it takes Connect's documented `name eq "…"`).
  await step("find an item by title", async () => {
    item = await op.getItemByTitle(rw.id, "Database");
    assert(item.id === db.id, `found ${item.id}, expected ${db.id}`);
    const other = await op.getItem(ro.id, "API Key");
    assert(other.title === "API Key", `found ${other.title}`);
  });

  await step("read the password field (the stand-in's value)", async () => {
    const password = item.fields.find((f) => String(f.purpose) === "PASSWORD").value;
    assert(password === `${rw.name.toLowerCase()}-password`, `read ${password}`);
  });

  await step("download files: content identical to the stand-in's (small and 1 MiB)", async () => {
    for (const f of db.files) {
      const path = `/v1/vaults/${rw.id}/items/${db.id}/files/${f.id}/content`;
      const want = await standinDirect(path);
      let got;
      if (f.size < 4096) {
        got = Buffer.from(await op.getFileContent(rw.id, db.id, f.id));
      } else {
        const stream = await op.getFileContentStream(rw.id, db.id, f.id);
        const chunks = [];
        for await (const c of stream) chunks.push(c);
        got = Buffer.concat(chunks);
      }
      assert(got.length === f.size, `${f.name}: ${got.length} bytes, expected ${f.size}`);
      assert(sha256(got) === sha256(want), `${f.name}: content differs from the stand-in's`);
    }
  });

  const newItem = () =>
    new ItemBuilder()
      .setCategory(ItemCategory.Login)
      .setTitle(`created by ${label}`)
      .addField({ label: "username", value: "app", purpose: FieldPurpose.Username })
      .addField({ label: "password", value: "made-by-the-sdk", purpose: FieldPurpose.Password })
      .build();

  await step("create an item in the writable vault, read it back", async () => {
    const created = await op.createItem(rw.id, newItem());
    const again = await op.getItemById(rw.id, created.id);
    const password = again.fields.find((f) => String(f.purpose) === "PASSWORD").value;
    assert(password === "made-by-the-sdk", `read back ${password}`);
  });

  let code = await outcome(() => op.createItem(ro.id, newItem()));
  check("create in the read-only vault: refused with 403", code === 403, `got ${code}`);
  const writes = (await standinRecord()).filter(
    (r) => r.method === "POST" && r.raw_path.startsWith(`/v1/vaults/${ro.id}/`),
  );
  check(
    "the refused create never reached the stand-in",
    writes.length === 0,
    `${writes.length} POSTs to the read-only vault reached it`,
  );

  code = await outcome(() => op.listItems(out.id));
  check("a vault granted to the server but not to the token: 403", code === 403, `got ${code}`);

  const foreign = OnePasswordConnect({ serverURL: env.OP_CONNECT_HOST, token: setup.foreign_token });
  code = await outcome(() => foreign.listVaults());
  check("another server's token: 401", code === 401, `got ${code}`);

  // --- the vault revoked from the server through the manager (R6, G2) ---------------------
  const readRw = () => outcome(() => op.getItemById(rw.id, db.id));
  let primed = await readRw();
  try {
    await manager("DELETE", `/v1/connect/servers/${serverId}/vaults/${rw.id}`);
    const [lag, last] = await waitForRefusal(readRw, 403, boundMs + 5000);
    check(
      `vault revoked from the server: 403 after ${lag.toFixed(0)} ms (bound ${boundMs} ms)`,
      primed === 200 && last === 403 && lag <= boundMs,
      `before: ${primed}, last: ${last} after ${lag.toFixed(0)} ms`,
    );
    await step("vault revoked: the list shows only the read-only vault", async () => {
      const got = (await op.listVaults()).map((v) => v.id);
      assert(JSON.stringify(got) === JSON.stringify([ro.id]), `listed ${got}`);
    });
  } finally {
    await manager("PUT", `/v1/connect/servers/${serverId}/vaults/${rw.id}`);
  }

  // --- the token revoked through the manager (R8, G2) -------------------------------------
  primed = await outcome(() => op.listVaults());
  await manager("DELETE", `/v1/connect/tokens/${token.id}?server=${serverId}`);
  const [lag, last] = await waitForRefusal(() => outcome(() => op.listVaults()), 401, boundMs + 5000);
  const refusedAt = Date.now() / 1000;
  check(
    `token revoked: 401 after ${lag.toFixed(0)} ms (bound ${boundMs} ms)`,
    primed === 200 && last === 401 && lag <= boundMs,
    `before: ${primed}, last: ${last} after ${lag.toFixed(0)} ms`,
  );
  console.log(`MEASURE ${label}: token revoke lag ${lag.toFixed(0)} ms`);
  const later = [
    await outcome(() => op.listVaults()),
    await outcome(() => op.getItemById(rw.id, db.id)),
    await outcome(() => op.createItem(rw.id, newItem())),
  ];
  const reached = (await standinRecord()).filter((r) => r.at >= refusedAt);
  check(
    "revoked token: every later call 401, none reached the stand-in",
    JSON.stringify(later) === "[401,401,401]" && reached.length === 0,
    `statuses ${JSON.stringify(later)}, ${reached.length} requests reached the stand-in`,
  );

  const record = (await standinRecord()).filter((r) => r.at >= startedAt - 1);
  // Connect's /health and /heartbeat need no token (the gateway's readiness probe calls one).
  const foreignAuth = record.filter(
    (r) =>
      r.headers.authorization !== `Bearer ${env.STANDIN_TOKEN}` &&
      !(r.headers.authorization === undefined && ["/health", "/heartbeat"].includes(r.raw_path)),
  );
  check(
    `every one of the ${record.length} requests that reached the stand-in carried the upstream ` +
      "token, none a client's",
    record.length > 0 && foreignAuth.length === 0,
    `${foreignAuth.length} carried another Authorization: ` +
      JSON.stringify(foreignAuth.map((r) => [r.method, r.raw_path, r.headers.authorization ? "set" : "none"])),
  );
}

main()
  .catch((e) => fail("the scenario ran to its end", e?.stack ?? JSON.stringify(e)))
  .finally(() => process.exit(failed ? 1 : 0));
