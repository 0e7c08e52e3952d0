//! R4 under concurrency (issue 12, item 7): a grant that races its server's delete never
//! outlives the delete. On PostgreSQL the race is interleaved by hand, deterministically: a
//! blocking transaction holds an uncommitted copy of the grant row, so the grant stops at its
//! insert after it has read the server as live; the delete is started while the grant waits,
//! and the blocker rolls back once the delete has either finished or is waiting too. Without the
//! server lock the grant takes (`sql::servers::lock_live_server`), the delete finishes first, finds no
//! grant to end, and the grant is inserted after it: a SERVER grant on a deleted server. On
//! SQLite writers are serialised (`BEGIN IMMEDIATE`): the same pairs run concurrently, and the
//! same end state must hold.

use std::time::{Duration, Instant};

use connect_manager_core::Error;
use connect_manager_core::model::{GrantScope, GroupGrant, ServerState, VaultType};
use connect_manager_store::postgres::PostgresStore;
use connect_manager_store::prelude::*;
use connect_manager_store::testing::{TestDb, actor, name, server_spec};
use connect_manager_store::{Backend, DynStore, backend_tests};
use tokio::task::JoinHandle;

async fn new_server(store: &dyn Store, name: &str) -> String {
    store
        .create_server(&actor(), &server_spec(name, &[]))
        .await
        .unwrap()
        .id
}

/// The grant under test: a group's SERVER grant, or a vault grant.
#[derive(Clone, Copy, Debug)]
enum Grant {
    GroupServer,
    Vault,
}

struct Fixture {
    server: String,
    group: String,
    vault: String,
}

async fn fixture(store: &dyn Store, n: usize) -> Fixture {
    Fixture {
        server: new_server(store, &format!("doomed-{n}")).await,
        group: store
            .create_group(&actor(), &name(format!("ops-{n}")))
            .await
            .unwrap()
            .id,
        vault: store
            .create_vault(
                &actor(),
                &name(format!("shared-{n}")),
                VaultType::UserCreated,
            )
            .await
            .unwrap()
            .id,
    }
}

/// Runs the grant; `Ok(())` when it was made, `NotFound` when it saw the server deleted.
async fn grant(store: &dyn Store, f: &Fixture, kind: Grant) -> Result<(), Error> {
    match kind {
        Grant::GroupServer => store
            .grant_group(
                &actor(),
                &f.group,
                &GroupGrant {
                    scope: GrantScope::Server,
                    server_id: Some(f.server.clone()),
                },
            )
            .await
            .map(drop),
        Grant::Vault => store
            .grant_vault(&actor(), &f.server, &f.vault)
            .await
            .map(drop),
    }
}

/// R4's end state: the server is deleted and holds no grant of either kind.
async fn assert_no_grant_survives(store: &dyn Store, f: &Fixture, kind: Grant) {
    let server = store.get_server(&f.server).await.unwrap().unwrap();
    assert_eq!(server.state, ServerState::Deleted);
    assert!(
        server.vaults.is_empty(),
        "{kind:?}: a vault grant survived its server's delete"
    );
    let connect_manager_core::lookup::Found::Id(group) = store.find_groups(&f.group).await.unwrap()
    else {
        panic!("the group is found by its ID");
    };
    assert!(
        group.grants.is_empty(),
        "{kind:?}: a group's SERVER grant survived its server's delete: {:?}",
        group.grants
    );
}

fn check_grant_outcome(kind: Grant, outcome: Result<(), Error>) {
    match outcome {
        Ok(()) | Err(Error::NotFound { kind: "server", .. }) => {}
        Err(e) => panic!("{kind:?}: the grant failed otherwise: {e:?}"),
    }
}

/// Sessions of this test's database waiting for a lock.
async fn waiting_for_locks(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until `done` has finished or `waiting` sessions wait for a lock.
async fn finished_or_waiting<T>(pool: &sqlx::PgPool, done: &JoinHandle<Result<T, Error>>, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done.is_finished() && waiting_for_locks(pool).await < n {
        assert!(Instant::now() < deadline, "neither finished nor waiting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn interleaved_on_postgres(db: &TestDb, kind: Grant, n: usize) {
    let store = std::sync::Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let f = std::sync::Arc::new(fixture(&*store, n).await);
    let pool = store.pool().clone();

    // The blocker: the grant row, uncommitted. The grant's insert waits for it.
    let mut blocker = pool.begin().await.unwrap();
    let row = match kind {
        Grant::GroupServer => {
            sqlx::query("INSERT INTO group_servers (group_id, server_id) VALUES ($1, $2)")
                .bind(&f.group)
                .bind(&f.server)
        }
        Grant::Vault => sqlx::query(
            "INSERT INTO server_vaults (server_id, vault_id, created_at) VALUES ($1, $2, 0)",
        )
        .bind(&f.server)
        .bind(&f.vault),
    };
    row.execute(&mut *blocker).await.unwrap();

    let granting = tokio::spawn({
        let (store, f) = (store.clone(), f.clone());
        async move { grant(&*store, &f, kind).await }
    });
    // The grant has read the server (and, with the fix, locked it) and waits at its insert.
    finished_or_waiting(&pool, &granting, 1).await;
    assert!(
        !granting.is_finished(),
        "{kind:?}: the grant should wait for the blocker"
    );

    let deleting = tokio::spawn({
        let (store, f) = (store.clone(), f.clone());
        async move { store.delete_server(&actor(), &f.server).await }
    });
    // Without the server lock the delete finishes here; with it, it waits for the grant.
    finished_or_waiting(&pool, &deleting, 2).await;

    blocker.rollback().await.unwrap();
    let granted = granting.await.unwrap();
    deleting.await.unwrap().expect("the delete succeeds");
    check_grant_outcome(kind, granted);
    assert_no_grant_survives(&*store, &f, kind).await;
    store.close().await;
}

async fn concurrently(store: &DynStore, kind: Grant, n: usize) {
    let f = std::sync::Arc::new(fixture(&**store, n).await);
    let granting = tokio::spawn({
        let (store, f) = (store.clone(), f.clone());
        async move { grant(&*store, &f, kind).await }
    });
    let deleting = tokio::spawn({
        let (store, f) = (store.clone(), f.clone());
        async move { store.delete_server(&actor(), &f.server).await }
    });
    check_grant_outcome(kind, granting.await.unwrap());
    deleting.await.unwrap().expect("the delete succeeds");
    assert_no_grant_survives(&**store, &f, kind).await;
}

async fn r4_a_grant_racing_its_servers_delete_does_not_survive_it(db: TestDb) {
    let kinds = [Grant::GroupServer, Grant::Vault];
    if db.backend == Backend::Postgres {
        for (n, kind) in kinds.into_iter().enumerate() {
            interleaved_on_postgres(&db, kind, n).await;
        }
    }
    let store = db.open().await;
    for n in 0..20 {
        concurrently(&store, kinds[n % 2], 100 + n).await;
    }
}

backend_tests!(r4_a_grant_racing_its_servers_delete_does_not_survive_it);
