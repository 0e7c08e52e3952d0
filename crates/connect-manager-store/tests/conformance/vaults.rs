//! The vault registry: unique names (R2), paging.

use connect_manager_core::Error;
use connect_manager_core::model::VaultType;
use connect_manager_core::page::PageRequest;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::{TestDb, name};

use crate::support::*;

async fn r2_names_are_unique_case_insensitively(db: TestDb) {
    let store = db.open().await;
    store
        .create_vault(&actor(), &name("Prod"), VaultType::UserCreated)
        .await
        .unwrap();
    let dup = store
        .create_vault(&actor(), &name("PROD"), VaultType::Everyone)
        .await;
    assert!(
        matches!(
            dup,
            Err(Error::Conflict {
                code: "name_taken",
                ..
            })
        ),
        "{dup:?}"
    );
    store.create_group(&actor(), &name("Ops")).await.unwrap();
    assert!(matches!(
        store.create_group(&actor(), &name("ops")).await,
        Err(Error::Conflict { .. })
    ));
    new_server(&store, "Web", &[]).await.unwrap();
    assert!(matches!(
        new_server(&store, "wEB", &[]).await,
        Err(Error::Conflict { .. })
    ));
    let v2 = store
        .create_vault(&actor(), &name("Dev"), VaultType::UserCreated)
        .await
        .unwrap();
    assert!(matches!(
        store.rename_vault(&actor(), &v2.id, &name("prod")).await,
        Err(Error::Conflict { .. })
    ));
}

async fn lists_page_newest_first_without_gaps(db: TestDb) {
    let store = db.open().await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            store
                .create_vault(&actor(), &name(format!("v{i}")), VaultType::UserCreated)
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::parse(Some(3), None).unwrap();
    loop {
        let p = store.list_vaults(&page).await.unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(p.items.into_iter().map(|v| v.id));
        match p.next_cursor {
            Some(c) => page = PageRequest::parse(Some(3), Some(&c)).unwrap(),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(seen, made);
}

backend_tests!(
    r2_names_are_unique_case_insensitively,
    lists_page_newest_first_without_gaps,
);
