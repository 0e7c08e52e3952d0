//! Two replicas on one PostgreSQL (S2): what one does to tokens, the other sees.

use std::time::{Duration, Instant};

use connect_manager_store::testing::TestDb;
use serde_json::json;

use super::{decode_part, setup};
use crate::harness::{TestApp, secret_of};

/// S2 on PostgreSQL (SQLite serves one process): two replicas on one database. What one does,
/// the other sees within a second, though its caches were warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_s2_replicas_see_each_others_changes_within_a_second() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = TestApp::spawn(db).await;
    let b = a.replica().await;
    let (server_id, secret) = setup(&a).await;
    let (t1, jwt1) = a
        .token(
            "web",
            json!({"name": "one", "vaults": [{"vault": "a"}, {"vault": "b"}]}),
        )
        .await;
    let (_, jwt2) = a
        .token("web", json!({"name": "two", "vaults": [{"vault": "a"}]}))
        .await;
    // Warm B's caches.
    assert_eq!(
        b.introspect(&server_id, &secret, &jwt1).await["active"],
        true
    );
    assert_eq!(
        b.introspect(&server_id, &secret, &jwt2).await["active"],
        true
    );

    async fn within_a_second(check: impl AsyncFn() -> bool) -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            if check().await {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the other replica did not see the change within 1 s");
    }

    // Revocation.
    a.delete(&format!(
        "/v1/connect/tokens/{}",
        t1["id"].as_str().unwrap()
    ))
    .await
    .expect(200);
    within_a_second(async || b.introspect(&server_id, &secret, &jwt1).await["active"] == false)
        .await;
    // Vault revoke.
    a.delete("/v1/connect/servers/web/vaults/a")
        .await
        .expect(200);
    within_a_second(async || b.introspect(&server_id, &secret, &jwt2).await["vaults"] == json!([]))
        .await;
    // Key rotation: B's next token carries the new kid.
    let kid = a.post("/v1/keys/rotate", json!({})).await.expect(201)["kid"].clone();
    within_a_second(async || {
        let (_, jwt) = b
            .token("web", json!({"name": "b", "vaults": [{"vault": "b"}]}))
            .await;
        decode_part(&jwt, 0)["kid"] == kid
    })
    .await;
    // Credentials rotation: the old secret stops working on B.
    let rotated = a
        .post("/v1/connect/servers/web/credentials", json!({}))
        .await
        .expect(201);
    let new_secret = secret_of(&rotated["credentials"]);
    within_a_second(async || {
        b.post_as_server(
            "/v1/introspect",
            &server_id,
            &secret,
            json!({"token": jwt2}),
        )
        .await
        .status
            == 401
    })
    .await;
    assert_eq!(
        b.introspect(&server_id, &new_secret, &jwt2).await["active"],
        true
    );
    // Server delete.
    a.delete("/v1/connect/servers/web").await.expect(204);
    within_a_second(async || {
        b.post_as_server(
            "/v1/introspect",
            &server_id,
            &new_secret,
            json!({"token": jwt2}),
        )
        .await
        .status
            == 401
    })
    .await;
    b.stop().await;
    a.stop().await;
}
