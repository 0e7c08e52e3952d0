//! The limiter's rules, as plain calls (the HTTP side is in tests/api/limiter.rs).

use super::*;

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[tokio::test]
async fn a_burst_of_failures_blocks_unknown_credentials_only() {
    let limiter = AuthLimiter::new(10);
    let a = ip("10.0.0.1");
    let (good, bad) = ([1u8; 32], [2u8; 32]);
    limiter
        .admit(a, &good, Target::Other)
        .await
        .unwrap()
        .succeeded();
    for _ in 0..10 {
        limiter
            .admit(a, &bad, Target::Other)
            .await
            .expect("within budget")
            .failed();
    }
    let refused = limiter
        .admit(a, &bad, Target::Other)
        .await
        .err()
        .expect("blocked");
    assert!((1..=6).contains(&refused.retry_after), "{refused:?}");
    assert!(!refused.server_budget);
    assert!(
        limiter.admit(a, &good, Target::Other).await.is_ok(),
        "known-good credentials pass"
    );
    assert!(
        limiter
            .admit(ip("10.0.0.2"), &bad, Target::Other)
            .await
            .is_ok()
    );
    assert!(limiter.admit(None, &bad, Target::Other).await.is_ok());
    let off = AuthLimiter::new(0);
    for _ in 0..100 {
        off.admit(a, &bad, Target::Other).await.unwrap().failed();
    }
    assert!(
        off.admit(a, &bad, Target::Other).await.is_ok(),
        "0 turns limiting off"
    );
}

#[tokio::test]
async fn attempts_in_flight_hold_their_unit_and_give_it_back_unless_they_fail() {
    let limiter = AuthLimiter::new(3);
    let a = ip("10.0.0.1");
    // Three different guesses at once exhaust the budget before any has an answer.
    let mut held = Vec::new();
    for i in 0..3u8 {
        held.push(limiter.admit(a, &[i; 32], Target::Other).await.unwrap());
    }
    assert!(limiter.admit(a, &[7; 32], Target::Other).await.is_err());
    // One succeeds, one could not be checked (dropped): both units come back.
    let mut held = held.into_iter();
    held.next().unwrap().succeeded();
    drop(held.next());
    held.next().unwrap().failed();
    limiter
        .admit(a, &[7; 32], Target::Other)
        .await
        .unwrap()
        .failed();
    limiter
        .admit(a, &[8; 32], Target::Other)
        .await
        .unwrap()
        .failed();
    assert!(limiter.admit(a, &[9; 32], Target::Other).await.is_err());
}

#[tokio::test]
async fn ipv6_clients_share_one_budget_per_64() {
    let limiter = AuthLimiter::new(2);
    for i in 0..2u8 {
        limiter
            .admit(ip(&format!("2001:db8:1:2::{i}")), &[i; 32], Target::Other)
            .await
            .unwrap()
            .failed();
    }
    assert!(
        limiter
            .admit(ip("2001:db8:1:2:ffff::9"), &[9; 32], Target::Other)
            .await
            .is_err()
    );
    assert!(
        limiter
            .admit(ip("2001:db8:1:3::1"), &[9; 32], Target::Other)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_server_budget_holds_guesses_from_many_addresses() {
    let limiter = AuthLimiter::new(1);
    let server = Target::Server("S");
    for i in 0..SERVER_BUDGET_FACTOR {
        let addr = ip(&format!("10.0.0.{i}"));
        limiter
            .admit(addr, &[i as u8; 32], server)
            .await
            .unwrap()
            .failed();
    }
    let refused = limiter
        .admit(ip("10.0.1.1"), &[99; 32], server)
        .await
        .err()
        .expect("the server's budget is spent");
    assert!(refused.server_budget);
    // Other servers are not affected; nor is a credential known good for this one.
    assert!(
        limiter
            .admit(ip("10.0.1.1"), &[99; 32], Target::Server("T"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn known_good_credentials_are_forgotten_when_their_server_changes() {
    let limiter = AuthLimiter::new(1);
    let a = ip("10.0.0.1");
    let (old, other) = ([1u8; 32], [2u8; 32]);
    limiter
        .admit(a, &old, Target::Server("S"))
        .await
        .unwrap()
        .succeeded();
    limiter
        .admit(a, &other, Target::Server("T"))
        .await
        .unwrap()
        .succeeded();
    limiter.changed(&Change::Server("S".into()));
    // The old secret is charged again: one failure spends the whole budget of 1.
    limiter
        .admit(a, &old, Target::Server("S"))
        .await
        .unwrap()
        .failed();
    assert!(limiter.admit(a, &old, Target::Server("S")).await.is_err());
    assert!(limiter.admit(a, &other, Target::Server("T")).await.is_ok());
    limiter.changed(&Change::All);
    assert!(limiter.admit(a, &other, Target::Server("T")).await.is_err());
}

#[tokio::test]
async fn a_known_good_api_key_is_forgotten_when_it_fails() {
    let limiter = AuthLimiter::new(1);
    let a = ip("10.0.0.1");
    limiter
        .admit(a, &[1; 32], Target::Other)
        .await
        .unwrap()
        .succeeded();
    limiter
        .admit(a, &[1; 32], Target::Other)
        .await
        .unwrap()
        .failed();
    limiter
        .admit(a, &[1; 32], Target::Other)
        .await
        .unwrap()
        .failed();
    assert!(limiter.admit(a, &[1; 32], Target::Other).await.is_err());
}

#[tokio::test]
async fn a_check_that_began_before_a_change_does_not_make_its_credential_known_good() {
    let limiter = AuthLimiter::new(1);
    let a = ip("10.0.0.1");
    let attempt = limiter
        .admit(a, &[1; 32], Target::Server("S"))
        .await
        .unwrap();
    limiter.changed(&Change::Server("S".into()));
    attempt.succeeded();
    limiter
        .admit(a, &[1; 32], Target::Server("S"))
        .await
        .unwrap()
        .failed();
    assert!(
        limiter
            .admit(a, &[1; 32], Target::Server("S"))
            .await
            .is_err()
    );
}

/// Item 0 at the unit level: concurrent attempts with one credential take one unit between them.
#[tokio::test]
async fn concurrent_attempts_with_one_credential_wait_for_the_first_verdict() {
    let limiter = std::sync::Arc::new(AuthLimiter::new(1));
    let a = ip("10.0.0.1");
    let first = limiter.admit(a, &[1; 32], Target::Other).await.unwrap();
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter
                    .admit(a, &[1; 32], Target::Other)
                    .await
                    .map(|attempt| attempt.succeeded())
                    .is_ok()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.succeeded();
    for w in waiters {
        assert!(w.await.unwrap(), "admitted on the first one's verdict");
    }
    // A wrong credential: the waiters try again one at a time, each charged.
    let first = limiter
        .admit(ip("10.0.0.2"), &[2; 32], Target::Other)
        .await
        .unwrap();
    let waiter = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            limiter
                .admit(ip("10.0.0.2"), &[2; 32], Target::Other)
                .await
                .is_ok()
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.failed();
    assert!(
        !waiter.await.unwrap(),
        "the budget of 1 was spent by the first"
    );
}
