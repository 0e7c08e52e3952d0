//! G8 on both backends: a vault's ID is never taken again once deleted, including the IDs of
//! vaults deleted before the upgrade that started keeping them (migration 0005 reads them from
//! the audit trail).

use connect_manager_core::Error;
use connect_manager_core::model::VaultType;
use connect_manager_store::testing::{TestDb, actor, name};
use connect_manager_store::{Backend, backend_tests};
use sqlx::Connection;

/// Runs `statements` on the test database, outside the store.
async fn raw(db: &TestDb, statements: &[&str]) {
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*s))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
    }
}

async fn g8_ids_of_vaults_deleted_before_the_upgrade_stay_taken(db: TestDb) {
    let store = db.open().await;
    let v = store
        .create_vault(&actor(), &name("gone"), VaultType::Everyone)
        .await
        .unwrap();
    let kept = store
        .create_vault(&actor(), &name("kept"), VaultType::Everyone)
        .await
        .unwrap();
    store.delete_vault(&actor(), &v.id).await.unwrap();
    let refused = store
        .create_vault_with_id(&actor(), &v.id, &name("again"), VaultType::Everyone)
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::Conflict {
                code: "vault_id_taken",
                ..
            })
        ),
        "{refused:?}"
    );
    store.close().await;
    // As if the vault had been deleted before migration 0005: no tombstone, only the audit
    // trail's `vault.delete`. Opening runs 0005 again.
    raw(
        &db,
        &[
            "DROP TABLE deleted_vaults",
            "DELETE FROM _sqlx_migrations WHERE version = 5",
        ],
    )
    .await;
    let store = db.open().await;
    let refused = store
        .create_vault_with_id(&actor(), &v.id, &name("again"), VaultType::Everyone)
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::Conflict {
                code: "vault_id_taken",
                ..
            })
        ),
        "{refused:?}"
    );
    // A live vault's ID, too; and a fresh one is taken.
    assert!(matches!(
        store
            .create_vault_with_id(&actor(), &kept.id, &name("again"), VaultType::Everyone)
            .await,
        Err(Error::Conflict {
            code: "vault_id_taken",
            ..
        })
    ));
    let fresh = "abcdefghijklmnopqrstuvwxy2";
    let made = store
        .create_vault_with_id(&actor(), fresh, &name("again"), VaultType::Everyone)
        .await
        .unwrap();
    assert_eq!(made.id, fresh);
}

backend_tests!(g8_ids_of_vaults_deleted_before_the_upgrade_stay_taken);
