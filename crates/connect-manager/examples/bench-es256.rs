//! Raw ES256 verifications per second, the baseline of `scripts/bench` (scenario 2): distinct
//! tokens signed with one P-256 key, verified round-robin on several threads, with the signing
//! code the service uses (`connect_manager_core::token`). Prints the rate, one number.
//!
//! `cargo run --release -p connect-manager --example bench-es256 -- --tokens 10000 --threads 2 --seconds 5`

use clap::Parser;
use connect_manager_core::Timestamp;
use connect_manager_core::scope::TokenScope;
use connect_manager_core::token::{Claims, KeySet, generate_key};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    tokens: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let Args {
        tokens,
        threads,
        seconds,
    } = Args::parse();
    let master = connect_manager_core::secret::MasterKey::random();
    let keys = KeySet::open(&master, &[generate_key(&master)])?;
    let account = connect_manager_core::id::new_upper();
    let jwts: Vec<String> = (0..tokens.max(1))
        .map(|_| {
            let scope = TokenScope::new([(connect_manager_core::id::new_lower(), 1008)])?;
            let claims = Claims::new(
                "https://bench",
                &account,
                &connect_manager_core::id::new_upper(),
                &scope,
                Timestamp::now(),
                None,
            );
            Ok::<_, anyhow::Error>(keys.sign(&claims)?)
        })
        .collect::<Result<_, _>>()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let (keys, jwts) = (&keys, &jwts);
                scope.spawn(move || {
                    let mut n = 0;
                    let mut i = t;
                    while std::time::Instant::now() < deadline {
                        assert!(keys.verify(&jwts[i % jwts.len()]).is_some());
                        i += threads;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    println!("{:.0}", total as f64 / seconds);
    Ok(())
}
