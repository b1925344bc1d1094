//! The ledger's rules, on SQLite and on PostgreSQL alike.

use std::time::Duration;

use super::*;
use crate::config::{HumanDuration, LedgerConfig, Secret};
use crate::event::RunId;
use crate::integrations::IntegrationName;

const TYPE: &str = "run.canceled";

pub(crate) fn sqlite_config(dir: &tempfile::TempDir) -> LedgerConfig {
    LedgerConfig {
        path: dir.path().join("nested/ledger.db"),
        ..LedgerConfig::default()
    }
}

/// A PostgreSQL ledger in a schema of its own, so tests never see each other's rows.
pub(crate) async fn postgres_config() -> LedgerConfig {
    let schema = format!("ledger_{:016x}", rand::random::<u64>());
    install_default_drivers();
    let admin = AnyPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    LedgerConfig {
        url: Some(Secret::new(format!(
            "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D{schema}"
        ))),
        ..LedgerConfig::default()
    }
}

fn run_id(text: &str) -> RunId {
    RunId::parse(text).unwrap()
}

fn key(run: &str, integration: &'static str) -> Key<'static> {
    Key {
        run_id: Box::leak(Box::new(run_id(run))),
        event_type: TYPE,
        integration: IntegrationName::leaked(integration),
    }
}

async fn claim(ledger: &Ledger, key: Key<'_>, lease: Duration) -> Claim {
    ledger.claim(key, "evt", 1, lease).await.unwrap()
}

async fn rules_hold(ledger: Ledger) {
    let run = format!("run-{:x}", rand::random::<u64>());
    let a = key(&run, "a");
    let long = Duration::from_secs(60);

    // A free delivery is claimed once; a second claim sees it busy.
    let Claim::Claimed(id) = claim(&ledger, a, long).await else {
        panic!("first claim")
    };
    assert!(matches!(claim(&ledger, a, long).await, Claim::Busy { .. }));
    // Delivered: never claimed again, by any event of the run.
    assert!(
        ledger
            .record(
                a,
                &id,
                &Record {
                    receipt: Some("HTTP 200"),
                    ..Record::new(State::Delivered, 1)
                }
            )
            .await
            .unwrap()
    );
    assert_eq!(claim(&ledger, a, long).await, Claim::Done(State::Delivered));

    // Failed rows can be claimed by the retry; a stale claim cannot record over the new one.
    let b = key(&run, "b");
    let Claim::Claimed(first) = claim(&ledger, b, long).await else {
        panic!()
    };
    ledger
        .record(
            b,
            &first,
            &Record {
                last_error: Some("HTTP 503".into()),
                ..Record::new(State::Failed, 1)
            },
        )
        .await
        .unwrap();
    let Claim::Claimed(second) = claim(&ledger, b, long).await else {
        panic!("retry claims a failed row")
    };
    assert!(
        !ledger
            .record(b, &first, &Record::new(State::Delivered, 1))
            .await
            .unwrap()
    );
    assert!(
        ledger
            .record(
                b,
                &second,
                &Record {
                    receipt: Some("HTTP 200"),
                    ..Record::new(State::Delivered, 2)
                }
            )
            .await
            .unwrap()
    );

    // An expired lease (its worker died) is taken over.
    let c = key(&run, "c");
    let Claim::Claimed(dead_worker) = claim(&ledger, c, Duration::ZERO).await else {
        panic!()
    };
    assert!(!dead_worker.resumed(), "a fresh row resumes nothing");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let Claim::Claimed(taken_over) = claim(&ledger, c, long).await else {
        panic!("expired lease is taken over")
    };
    assert!(
        taken_over.resumed(),
        "taking over says an earlier attempt may have reached the receiver"
    );
    assert!(
        !ledger
            .record(c, &dead_worker, &Record::new(State::Delivered, 1))
            .await
            .unwrap()
    );

    // Cancel: in-flight c is canceled, d is prevented, a stays delivered; twice changes nothing.
    let acd = ["a", "c", "d"].map(IntegrationName::leaked);
    let report = ledger.cancel(&run_id(&run), TYPE, &acd).await.unwrap();
    assert_eq!(report.canceled, vec![("c".to_owned(), State::InFlight)]);
    assert_eq!(report.prevented, vec!["d".to_owned()]);
    assert_eq!(report.unchanged, vec![("a".to_owned(), State::Delivered)]);
    assert_eq!(claim(&ledger, key(&run, "d"), long).await, Claim::Canceled);
    let again = ledger.cancel(&run_id(&run), TYPE, &acd).await.unwrap();
    assert!(again.canceled.is_empty() && again.prevented.is_empty());
    assert_eq!(again.unchanged.len(), 3);

    let history = ledger.history(&run_id(&run)).await.unwrap();
    let states: Vec<_> = history
        .iter()
        .map(|e| (e.integration.as_str(), e.state))
        .collect();
    assert_eq!(
        states,
        [
            ("a", "delivered"),
            ("b", "delivered"),
            ("c", "canceled"),
            ("d", "canceled")
        ]
    );
    assert_eq!(history[1].attempts, 2);
    assert_eq!(history[1].receipt.as_deref(), Some("HTTP 200"));
    ledger.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_ledger_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    rules_hold(Ledger::open(&sqlite_config(&dir)).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_ledger_keeps_the_rules() {
    rules_hold(Ledger::open(&postgres_config().await).await.unwrap()).await;
}

#[tokio::test]
async fn concurrent_claims_on_postgres_have_exactly_one_winner() {
    one_winner(Ledger::open(&postgres_config().await).await.unwrap()).await;
}

/// On SQLite the claims land in one group-committed transaction: still exactly one winner, and
/// the others see it in flight.
#[tokio::test]
async fn concurrent_claims_on_sqlite_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    one_winner(Ledger::open(&sqlite_config(&dir)).await.unwrap()).await;
}

/// Two workers (two pools on one database) claim every event type of a run at once, at two
/// integrations: at each integration exactly one event gets the turn, the others wait for it,
/// and an integration's turn does not hold up another's.
#[tokio::test]
async fn one_event_of_a_run_at_a_time_per_integration_across_workers_on_postgres() {
    let config = postgres_config().await;
    let workers = [
        Ledger::open(&config).await.unwrap(),
        Ledger::open(&config).await.unwrap(),
    ];
    one_turn(&workers).await;
}

#[tokio::test]
async fn one_event_of_a_run_at_a_time_per_integration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&sqlite_config(&dir)).await.unwrap();
    one_turn(&[ledger.clone(), ledger]).await;
}

async fn one_turn(workers: &[Ledger; 2]) {
    const TYPES: [&str; 4] = [
        "run.started",
        "run.finished",
        "run.timed_out",
        "run.canceled",
    ];
    for _ in 0..10 {
        let run = &run_id(&format!("run-{:x}", rand::random::<u64>()));
        let attempts = TYPES.iter().flat_map(|&event_type| {
            ["a", "b"].into_iter().flat_map(move |integration| {
                workers.iter().map(move |ledger| async move {
                    let key = Key {
                        run_id: run,
                        event_type,
                        integration: IntegrationName::leaked(integration),
                    };
                    let claim = ledger.claim(key, "evt", 1, Duration::from_secs(60));
                    (integration, claim.await.unwrap())
                })
            })
        });
        let claims = futures_util::future::join_all(attempts).await;
        for integration in ["a", "b"] {
            let mine = || claims.iter().filter(move |(i, _)| *i == integration);
            let winners = mine().filter(|(_, c)| matches!(c, Claim::Claimed(_)));
            assert_eq!(winners.count(), 1, "{integration}: {claims:?}");
            let others = mine().filter(|(_, c)| !matches!(c, Claim::Claimed(_)));
            // The winner's own event lost to it in the other worker is busy; the rest wait.
            assert!(
                others
                    .clone()
                    .all(|(_, c)| matches!(c, Claim::Waiting | Claim::Busy { .. })),
                "{integration}: {claims:?}"
            );
            assert_eq!(others.filter(|(_, c)| *c == Claim::Waiting).count(), 6);
        }
    }
}

async fn one_winner(ledger: Ledger) {
    let run = format!("run-{:x}", rand::random::<u64>());
    let claims = futures_util::future::join_all((0..16).map(|_| {
        let ledger = ledger.clone();
        let run = run.clone();
        async move {
            ledger
                .claim(key(&run, "a"), "evt", 1, Duration::from_secs(60))
                .await
                .unwrap()
        }
    }))
    .await;
    let winners = claims
        .iter()
        .filter(|c| matches!(c, Claim::Claimed(_)))
        .count();
    assert_eq!(winners, 1, "{claims:?}");
    let busy = claims
        .iter()
        .filter(|c| matches!(c, Claim::Busy { .. }))
        .count();
    assert_eq!(busy, 15, "{claims:?}");
}

#[tokio::test]
async fn the_sqlite_file_survives_a_reopen_and_pruning_keeps_recent_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(&dir);
    let ledger = Ledger::open(&config).await.unwrap();
    for run in ["old", "recent"] {
        let Claim::Claimed(id) = claim(&ledger, key(run, "a"), Duration::from_secs(60)).await
        else {
            panic!()
        };
        ledger
            .record(key(run, "a"), &id, &Record::new(State::Delivered, 1))
            .await
            .unwrap();
    }
    let Claim::Claimed(_) = claim(&ledger, key("pending", "a"), Duration::from_secs(60)).await
    else {
        panic!()
    };
    // Age the first row by hand: pruning compares update times.
    sqlx::query("UPDATE deliveries SET updated_at = updated_at - 3600000 WHERE run_id = 'old'")
        .execute(ledger.pool())
        .await
        .unwrap();
    ledger.close().await;

    let reopened = Ledger::open(&config).await.unwrap();
    assert_eq!(
        reopened.history(&run_id("old")).await.unwrap().len(),
        1,
        "rows survive a restart"
    );
    assert_eq!(
        reopened.prune(*HumanDuration::secs(1_800)).await.unwrap(),
        1
    );
    assert!(reopened.history(&run_id("old")).await.unwrap().is_empty());
    assert_eq!(reopened.history(&run_id("recent")).await.unwrap().len(), 1);
    assert_eq!(
        reopened.history(&run_id("pending")).await.unwrap().len(),
        1,
        "unfinished rows are never pruned"
    );
}

/// A state this version does not know (a newer version wrote it) is an error wherever it is
/// read, never a guess: the delivery is neither claimed again nor settled.
#[tokio::test]
async fn an_unknown_stored_state_is_an_error_not_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&sqlite_config(&dir)).await.unwrap();
    let a = key("future", "a");
    let Claim::Claimed(_) = claim(&ledger, a, Duration::from_millis(1)).await else {
        panic!("a fresh row is claimed")
    };
    sqlx::query("UPDATE deliveries SET state = 'paused' WHERE run_id = 'future'")
        .execute(ledger.pool())
        .await
        .unwrap();
    let unknown = "the ledger holds the state `paused`, which this version does not know";
    let claimed = ledger
        .claim(a, "evt", 2, Duration::from_secs(60))
        .await
        .expect_err("an unknown state is not claimable, nor busy");
    assert_eq!(claimed.to_string(), unknown);
    let read = ledger.state(a).await.unwrap_err();
    assert!(read.to_string().contains(unknown), "{read}");
    let history = ledger.history(&run_id("future")).await.unwrap_err();
    assert!(history.to_string().contains(unknown), "{history}");
}
