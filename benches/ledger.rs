//! What the ledger adds per delivery: one claim and one record, on SQLite and on PostgreSQL.
//! Run with `cargo bench --bench ledger` (needs PostgreSQL on 127.0.0.1:5432, database `test`).

use std::time::{Duration, Instant};

use run_notifier::config::{LedgerConfig, Secret};
use run_notifier::event::RunId;
use run_notifier::integrations::IntegrationName;
use run_notifier::ledger::{Claim, Key, Ledger, Record, State};

const DELIVERIES: usize = 2_000;
const CONCURRENCY: usize = 16;

async fn measure(label: &str, ledger: Ledger) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    let record = Record {
        receipt: Some("HTTP 200"),
        ..Record::new(State::Delivered, 1)
    };
    for worker in 0..CONCURRENCY {
        let (ledger, record) = (ledger.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            let hook = IntegrationName::parse("hook").unwrap();
            for i in (worker..DELIVERIES).step_by(CONCURRENCY) {
                let run = RunId::parse(&format!("bench-{i}-{}", rand::random::<u64>())).unwrap();
                let key = Key {
                    run_id: &run,
                    event_type: "run.canceled",
                    integration: &hook,
                };
                let Claim::Claimed(claim) = ledger
                    .claim(key, "evt", 1, Duration::from_secs(30))
                    .await
                    .unwrap()
                else {
                    panic!("fresh runs are always claimable");
                };
                ledger.record(key, &claim, &record).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{{\"ledger\":\"{label}\",\"deliveries\":{DELIVERIES},\"concurrency\":{CONCURRENCY},\"per_delivery_us\":{:.1},\"deliveries_per_s\":{:.0}}}",
        elapsed.as_micros() as f64 / DELIVERIES as f64,
        DELIVERIES as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = LedgerConfig {
        path: dir.path().join("bench.db"),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(&sqlite).await.unwrap();
    let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(ledger.pool())
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    measure("sqlite", ledger).await;

    let schema = format!("bench_{:016x}", rand::random::<u64>());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let postgres = LedgerConfig {
        url: Some(Secret::new(format!(
            "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D{schema}"
        ))),
        ..LedgerConfig::default()
    };
    measure("postgres", Ledger::open(&postgres).await.unwrap()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}
