//! The clients: the operations they send (picked by a small deterministic generator, so a failing
//! run can be repeated), the request each one is, and what each client saw.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use connect_manager_core::timestamp::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use super::{DOOMED, SERVER_NAMES, SERVERS, VAULTS, ops_per_client};
use crate::harness::{OWNER_KEY, TestApp};

#[derive(Clone, Debug)]
pub(super) enum Op {
    CreateToken {
        server: usize,
        vaults: Vec<usize>,
    },
    RenameToken {
        token: String,
        name: String,
    },
    RevokeToken {
        token: String,
    },
    GrantVault {
        server: usize,
        vault: usize,
    },
    RevokeVault {
        server: usize,
        vault: usize,
    },
    RenameServer {
        server: usize,
        name: String,
    },
    /// A group's SERVER grant (R11) on the server.
    GrantGroup {
        server: usize,
    },
    DeleteServer {
        server: usize,
    },
}

pub(super) struct Done {
    pub(super) request_id: String,
    pub(super) op: Op,
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) sent: i64,
    pub(super) answered: i64,
}

impl Done {
    pub(super) fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A small deterministic generator, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

pub(super) struct Fixture {
    pub(super) app: TestApp,
    pub(super) servers: Vec<String>,
    pub(super) vaults: Vec<String>,
    /// The group given SERVER grants.
    pub(super) group: String,
    pub(super) tokens: Mutex<Vec<String>>,
    /// How many doomed servers a client has set out to delete.
    pub(super) next_doomed: AtomicUsize,
}

impl Fixture {
    /// The doomed server deleted next (the last one once all are gone).
    pub(super) fn doomed(&self) -> usize {
        SERVERS + self.next_doomed.load(Ordering::SeqCst).min(DOOMED - 1)
    }

    fn pick(&self, rng: &mut Rng, client: usize, i: usize) -> Op {
        let token = {
            let tokens = self.tokens.lock().unwrap();
            (!tokens.is_empty()).then(|| tokens[rng.below(tokens.len())].clone())
        };
        match (rng.below(10), token) {
            // R4: grants and token creates race the delete of the server they name.
            (6, _) => Op::GrantVault {
                server: self.doomed(),
                vault: rng.below(VAULTS),
            },
            (7, _) => Op::GrantGroup {
                server: if rng.below(4) == 0 {
                    rng.below(SERVERS)
                } else {
                    self.doomed()
                },
            },
            (8, _) => Op::CreateToken {
                server: self.doomed(),
                vaults: vec![rng.below(VAULTS)],
            },
            (9, _) if rng.below(13) == 0 => match self.next_doomed.fetch_add(1, Ordering::SeqCst) {
                n if n < DOOMED => Op::DeleteServer {
                    server: SERVERS + n,
                },
                _ => Op::GrantGroup {
                    server: self.doomed(),
                },
            },
            (9, _) => Op::GrantGroup {
                server: self.doomed(),
            },
            (1, Some(token)) => Op::RenameToken {
                token,
                name: format!("renamed-{client}-{i}"),
            },
            (2, Some(token)) => Op::RevokeToken { token },
            (3, _) => Op::GrantVault {
                server: rng.below(SERVERS),
                vault: rng.below(VAULTS),
            },
            (4, _) => Op::RevokeVault {
                server: rng.below(SERVERS),
                vault: rng.below(VAULTS),
            },
            (5, _) => Op::RenameServer {
                server: rng.below(SERVERS),
                name: SERVER_NAMES[rng.below(SERVER_NAMES.len())].to_owned(),
            },
            _ => {
                let first = rng.below(VAULTS);
                let mut vaults = vec![first];
                if rng.below(2) == 0 {
                    vaults.push((first + 1 + rng.below(VAULTS - 1)) % VAULTS);
                }
                Op::CreateToken {
                    server: rng.below(SERVERS),
                    vaults,
                }
            }
        }
    }

    fn request(&self, op: &Op, client: usize, i: usize) -> (Method, String, Option<Value>) {
        let access = ["read", "write", "read_write"];
        match op {
            Op::CreateToken { server, vaults } => (
                Method::POST,
                format!("/v1/connect/servers/{}/tokens", self.servers[*server]),
                Some(json!({
                    "name": format!("token-{client}-{i}"),
                    "vaults": vaults.iter().map(|v| json!({
                        "vault": self.vaults[*v], "access": access[(client + i + v) % 3]
                    })).collect::<Vec<_>>(),
                })),
            ),
            Op::RenameToken { token, name } => (
                Method::PATCH,
                format!("/v1/connect/tokens/{token}"),
                Some(json!({ "name": name })),
            ),
            Op::RevokeToken { token } => {
                (Method::DELETE, format!("/v1/connect/tokens/{token}"), None)
            }
            Op::GrantVault { server, vault } => (
                Method::PUT,
                format!(
                    "/v1/connect/servers/{}/vaults/{}",
                    self.servers[*server], self.vaults[*vault]
                ),
                None,
            ),
            Op::RevokeVault { server, vault } => (
                Method::DELETE,
                format!(
                    "/v1/connect/servers/{}/vaults/{}",
                    self.servers[*server], self.vaults[*vault]
                ),
                None,
            ),
            Op::RenameServer { server, name } => (
                Method::PATCH,
                format!("/v1/connect/servers/{}", self.servers[*server]),
                Some(json!({ "name": name })),
            ),
            Op::GrantGroup { server } => (
                Method::PUT,
                format!(
                    "/v1/connect/groups/{}/grants/servers/{}",
                    self.group, self.servers[*server]
                ),
                None,
            ),
            Op::DeleteServer { server } => (
                Method::DELETE,
                format!("/v1/connect/servers/{}", self.servers[*server]),
                None,
            ),
        }
    }

    pub(super) async fn run_client(self: Arc<Self>, client: usize) -> Vec<Done> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((client as u64 + 1) * 0x1000_0001));
        let mut done = Vec::new();
        for i in 0..ops_per_client() {
            let op = self.pick(&mut rng, client, i);
            let (method, path, body) = self.request(&op, client, i);
            let request_id = format!("cc-{client}-{i}");
            let mut req = self
                .app
                .client
                .request(method, format!("{}{path}", self.app.base))
                .bearer_auth(OWNER_KEY)
                .header("x-request-id", &request_id);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let sent = Timestamp::now().micros();
            let response = req.send().await.expect("request sent");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            let answered = Timestamp::now().micros();
            if let (Op::CreateToken { .. }, 201) = (&op, status) {
                let id = body["id"].as_str().unwrap().to_owned();
                self.tokens.lock().unwrap().push(id);
            }
            done.push(Done {
                request_id,
                op,
                status,
                body,
                sent,
                answered,
            });
        }
        done
    }
}
