//! Concurrency (issue 8, item 2): 32 clients at once create, rename and revoke tokens, grant and
//! revoke vaults and rename servers; and (issue 12, item 7) delete servers one after the other
//! while others grant vaults, give a group a SERVER grant and create tokens on the very server
//! being deleted (R4: no grant outlives its server's delete). Then:
//! - no response is a 5xx, and each is one this operation may give;
//! - every acknowledged change has exactly one success audit event (with its request ID), every
//!   refused or no-op request none, and the event's time lies between the request and its answer;
//! - replaying the audited changes serially, in audit order, from the state before: each was
//!   allowed at its place (no token on a vault that was not granted then, no duplicate name, no
//!   revoke of what was not there), each refusal and no-op was right at some moment while it was
//!   in flight, and the final state equals the service's: no lost update.
//!
//! Here: the run and its checks; `concurrency/clients.rs`: the operations the clients send and
//! what they saw; `concurrency/model.rs`: what the serial replay tracks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use connect_manager_core::model::{ServerState, TokenState};
use connect_manager_core::timestamp::Timestamp;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use crate::harness::TestApp;

mod clients;
mod model;
use clients::{Done, Fixture, Op};
use model::{Servers, Token};

const CLIENTS: usize = 32;
/// Requests per client; `CONCURRENCY_OPS_PER_CLIENT` raises it for a long run
/// (`scripts/reliability --long concurrency`).
fn ops_per_client() -> usize {
    std::env::var("CONCURRENCY_OPS_PER_CLIENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}
const SERVERS: usize = 4;
/// Servers deleted during the run, one after the other (indexes `SERVERS..SERVERS + DOOMED`):
/// the grants and token creates aimed at doomed servers target the one deleted next.
const DOOMED: usize = 24;
const VAULTS: usize = 6;
/// Names servers are renamed to: few, and differing only in case, so renames collide (R2).
const SERVER_NAMES: [&str; 6] = ["alpha", "Alpha", "beta", "BETA", "gamma", "server-0"];

/// R7 (a token only on vaults granted when it is issued), R2 (live names unique), R6 and R8
/// (revokes) and A5 (one audit event per change, in its transaction) hold under concurrency.
async fn r7_concurrent_changes_equal_their_serial_replay(db: TestDb) {
    let backend = db.backend.as_str();
    let app = TestApp::spawn(db).await;
    let mut vaults = Vec::new();
    for v in 0..VAULTS {
        let vault = app.vault(&format!("vault-{v}"), "USER_CREATED").await;
        vaults.push(vault["id"].as_str().unwrap().to_owned());
    }
    let mut before = Servers::default();
    let mut servers = Vec::new();
    for s in 0..SERVERS {
        // Server s starts with vaults s and s+1 granted.
        let granted = [vaults[s].as_str(), vaults[(s + 1) % VAULTS].as_str()];
        let (server, _) = app.server(&format!("server-{s}"), &granted).await;
        servers.push(server["id"].as_str().unwrap().to_owned());
        before.names.push(format!("server-{s}"));
        before.grants.insert((s, s));
        before.grants.insert((s, (s + 1) % VAULTS));
    }
    for d in 0..DOOMED {
        // Doomed server d starts with vault d granted.
        let (server, _) = app
            .server(&format!("doomed-{d}"), &[vaults[d % VAULTS].as_str()])
            .await;
        servers.push(server["id"].as_str().unwrap().to_owned());
        before.names.push(format!("doomed-{d}"));
        before.grants.insert((SERVERS + d, d % VAULTS));
    }
    let group = app
        .post("/v1/groups", json!({ "name": "racers" }))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fixture = Arc::new(Fixture {
        app,
        servers,
        vaults,
        group,
        tokens: Mutex::new(Vec::new()),
        next_doomed: AtomicUsize::new(0),
    });

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(fixture.clone().run_client(c)))
        .collect();
    let mut done = Vec::new();
    for c in clients {
        done.extend(c.await.unwrap());
    }
    let app = &fixture.app;

    // Only answers the operation may give; never a 5xx.
    for d in &done {
        let doomed = |server: usize| server >= SERVERS;
        let allowed: &[u16] = match d.op {
            Op::CreateToken { server, .. } if doomed(server) => &[201, 404, 422],
            Op::CreateToken { .. } => &[201, 422],
            Op::GrantVault { server, .. } | Op::GrantGroup { server } if doomed(server) => {
                &[200, 404]
            }
            Op::RenameToken { .. }
            | Op::RevokeToken { .. }
            | Op::GrantVault { .. }
            | Op::GrantGroup { .. } => &[200],
            Op::RevokeVault { .. } => &[200, 404],
            Op::RenameServer { .. } => &[200, 409],
            Op::DeleteServer { .. } => &[204],
        };
        assert!(
            allowed.contains(&d.status),
            "{} {:?}: {} {}",
            d.request_id,
            d.op,
            d.status,
            d.body
        );
    }

    // The audit trail of this run, oldest first.
    let mut events: Vec<Value> = app
        .all_items("/v1/audit/events?limit=1000")
        .await
        .into_iter()
        .filter(|e| {
            e["request_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("cc-"))
        })
        .collect();
    events.reverse();
    let mut by_request: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in &events {
        assert_eq!(e["outcome"], "success", "{e}");
        by_request
            .entry(e["request_id"].as_str().unwrap())
            .or_default()
            .push(e);
    }
    let done_by_request: HashMap<&str, &Done> =
        done.iter().map(|d| (d.request_id.as_str(), d)).collect();
    for d in &done {
        let n = by_request.get(d.request_id.as_str()).map_or(0, Vec::len);
        assert!(n <= 1, "{}: {n} audit events", d.request_id);
        if !d.acknowledged() {
            assert_eq!(n, 0, "{}: refused, yet audited", d.request_id);
        }
    }

    // Serial replay in audit order, keeping each state the servers went through.
    let mut state = before.clone();
    let mut history: Vec<(i64, Servers)> = vec![(i64::MIN, before)];
    let mut tokens: BTreeMap<String, Token> = BTreeMap::new();
    let mut audited = BTreeSet::new();
    for e in &events {
        let rid = e["request_id"].as_str().unwrap();
        let d = done_by_request[rid];
        let at = Timestamp::parse_rfc3339(e["at"].as_str().unwrap())
            .unwrap()
            .micros();
        assert!(
            d.sent <= at && at <= d.answered,
            "{rid}: audited at {at}, outside its request ({}..{})",
            d.sent,
            d.answered
        );
        audited.insert(rid);
        match &d.op {
            Op::CreateToken { server, vaults } => {
                assert!(
                    !state.deleted.contains(server),
                    "{rid}: token created on server {server}, deleted at its place"
                );
                for v in vaults {
                    assert!(
                        state.grants.contains(&(*server, *v)),
                        "{rid}: token created on vault {v} not granted to server {server} at its place"
                    );
                }
                let id = d.body["id"].as_str().unwrap().to_owned();
                let token = Token {
                    server: *server,
                    name: d.body["name"].as_str().unwrap().to_owned(),
                    vaults: vaults.iter().copied().collect(),
                    revoked_at: None,
                };
                assert!(tokens.insert(id, token).is_none(), "{rid}");
            }
            Op::RenameToken { token, name } => {
                tokens.get_mut(token).expect(rid).name = name.clone();
            }
            Op::RevokeToken { token } => {
                let t = tokens.get_mut(token).expect(rid);
                assert!(
                    t.revoked_at.is_none(),
                    "{rid}: audited revoke of a revoked token"
                );
                t.revoked_at = Some(at);
            }
            Op::GrantVault { server, vault } => {
                assert!(
                    !state.deleted.contains(server),
                    "{rid}: R4: vault granted to server {server}, deleted at its place"
                );
                assert!(
                    state.grants.insert((*server, *vault)),
                    "{rid}: audited grant of a granted vault"
                );
            }
            Op::GrantGroup { server } => {
                assert!(
                    !state.deleted.contains(server),
                    "{rid}: R4: group granted server {server}, deleted at its place"
                );
                assert!(
                    state.group_grants.insert(*server),
                    "{rid}: audited grant the group already had"
                );
            }
            Op::DeleteServer { server } => {
                assert!(state.deleted.insert(*server), "{rid}: deleted twice");
                // R4: its grants end and its tokens are revoked with it.
                state.grants.retain(|(s, _)| s != server);
                state.group_grants.remove(server);
                for t in tokens.values_mut() {
                    if t.server == *server && t.revoked_at.is_none() {
                        t.revoked_at = Some(at);
                    }
                }
            }
            Op::RevokeVault { server, vault } => {
                assert!(
                    state.grants.remove(&(*server, *vault)),
                    "{rid}: revoked a grant that was not there at its place"
                );
            }
            Op::RenameServer { server, name } => {
                assert!(
                    !state.name_taken_by_other(*server, name),
                    "{rid}: renamed server {server} to {name}, taken at its place"
                );
                state.names[*server] = name.clone();
            }
        }
        history.push((at, state.clone()));
    }

    // Refusals and no-ops: right at some moment while the request was in flight. An audited
    // change took effect at its commit, somewhere between its event's time and its answer: so
    // a request may have seen the state before any change not yet answered when it was sent.
    let during = |d: &Done| -> Vec<&Servers> {
        let first = events
            .iter()
            .position(|e| done_by_request[e["request_id"].as_str().unwrap()].answered >= d.sent)
            .unwrap_or(events.len());
        let last = history
            .iter()
            .rposition(|(at, _)| *at <= d.answered)
            .unwrap_or(0);
        history[first.min(last)..=last]
            .iter()
            .map(|(_, s)| s)
            .collect()
    };
    let mut counts = BTreeMap::new();
    for d in &done {
        let kind = format!("{:?}", d.op)
            .split([' ', '{'])
            .next()
            .unwrap()
            .to_owned();
        let entry = counts.entry(kind).or_insert((0, 0, 0));
        if audited.contains(d.request_id.as_str()) {
            entry.0 += 1;
            continue;
        }
        let rid = &d.request_id;
        let states = during(d);
        match (&d.op, d.acknowledged()) {
            (Op::GrantVault { server, vault }, true) => assert!(
                states.iter().any(|s| s.grants.contains(&(*server, *vault))),
                "{rid}: grant acknowledged without a change, but the vault was never granted meanwhile"
            ),
            (Op::GrantGroup { server }, true) => assert!(
                states.iter().any(|s| s.group_grants.contains(server)),
                "{rid}: group grant acknowledged without a change, but never there meanwhile"
            ),
            (
                Op::GrantVault { server, .. }
                | Op::GrantGroup { server }
                | Op::CreateToken { server, .. },
                false,
            ) if d.status == 404 => assert!(
                states.iter().any(|s| s.deleted.contains(server)),
                "{rid}: 404 for server {server}, live all along"
            ),
            (Op::RevokeToken { token }, true) => assert!(
                tokens[token].revoked_at.is_some_and(|at| at <= d.answered),
                "{rid}: revoke acknowledged without a change, but the token was not revoked"
            ),
            (Op::RevokeVault { server, vault }, false) => assert!(
                states
                    .iter()
                    .any(|s| !s.grants.contains(&(*server, *vault))),
                "{rid}: 404 for a grant that existed all along"
            ),
            (Op::RenameServer { server, name }, false) => assert!(
                states.iter().any(|s| s.name_taken_by_other(*server, name)),
                "{rid}: 409 for a name that was free all along"
            ),
            (Op::CreateToken { server, vaults }, false) => assert!(
                states
                    .iter()
                    .any(|s| vaults.iter().any(|v| !s.grants.contains(&(*server, *v)))),
                "{rid}: 422 although every vault was granted all along"
            ),
            (op, _) => panic!("{rid}: {op:?} answered {} without an audit event", d.status),
        }
        if d.acknowledged() {
            entry.1 += 1;
        } else {
            entry.2 += 1;
        }
    }
    eprintln!(
        "concurrency ({backend}): {CLIENTS} clients x {} requests; per kind (changed, no-op, refused): {counts:?}",
        ops_per_client()
    );

    // The service's final state equals the replay's. A deleted server is read from the store
    // (the API answers 404 for it): R4, it holds no grant, and its tokens are revoked.
    let store = app.db.open().await;
    for (s, id) in fixture.servers.iter().enumerate() {
        if state.deleted.contains(&s) {
            let server = store.get_server(id).await.unwrap().unwrap();
            assert_eq!(server.state, ServerState::Deleted, "server {s}");
            assert!(
                server.vaults.is_empty(),
                "server {s}: R4: vault grants survived its delete: {:?}",
                server.vaults
            );
            continue;
        }
        let server = app
            .get(&format!("/v1/connect/servers/{id}"))
            .await
            .expect(200);
        assert_eq!(server["name"], state.names[s].as_str(), "server {s}");
        let granted: BTreeSet<&str> = server["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = (0..VAULTS)
            .filter(|v| state.grants.contains(&(s, *v)))
            .map(|v| fixture.vaults[v].as_str())
            .collect();
        assert_eq!(granted, expected, "server {s} grants");
    }
    let group = app
        .get(&format!("/v1/groups/{}", fixture.group))
        .await
        .expect(200);
    let granted: BTreeSet<&str> = group["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["server_id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = state
        .group_grants
        .iter()
        .map(|s| fixture.servers[*s].as_str())
        .collect();
    assert_eq!(granted, expected, "R4: the group's SERVER grants");
    for id in tokens
        .iter()
        .filter(|(_, t)| state.deleted.contains(&t.server))
        .map(|(id, _)| id)
    {
        let stored = store.token(id).await.unwrap().unwrap();
        assert_eq!(stored.state, TokenState::Revoked, "R4: {id}");
    }
    store.close().await;
    tokens.retain(|_, t| !state.deleted.contains(&t.server));
    let listed = app.all_items("/v1/connect/tokens?limit=1000").await;
    assert_eq!(listed.len(), tokens.len(), "tokens listed vs replayed");
    for t in &listed {
        let id = t["id"].as_str().unwrap();
        let model = &tokens[id];
        assert_eq!(t["name"], model.name.as_str(), "{id}");
        assert_eq!(t["integration_id"], fixture.servers[model.server].as_str());
        let state = if model.revoked_at.is_some() {
            "REVOKED"
        } else {
            "ACTIVE"
        };
        assert_eq!(t["state"], state, "{id}");
        let vaults: BTreeSet<&str> = t["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> = model
            .vaults
            .iter()
            .map(|v| fixture.vaults[*v].as_str())
            .collect();
        assert_eq!(vaults, expected, "{id}");
    }
    Arc::into_inner(fixture).unwrap().app.stop().await;
}

backend_tests!(r7_concurrent_changes_equal_their_serial_replay);
