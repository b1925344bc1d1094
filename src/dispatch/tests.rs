//! The dispatcher against a real SQLite ledger and a webhook integration on a wiremock
//! receiver: what it plans for a message, and what each delivery ends as.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use futures_util::StreamExt as _;

use super::{Dispatcher, Holder, Outcome, QueueReason, QueuedPart, Targets};
use crate::config::{Config, LedgerConfig};
use crate::event::RunEvent;
use crate::integrations::{IntegrationName, build_all, http_client};
use crate::ledger::{Claim, Key, Ledger, Record, State};
use crate::protocol::EVENT_TYPE;
use crate::retry::RetryPolicy;

const EVENT: &str = include_str!("../../config/example-event.json");

struct Fixture {
    dispatcher: Dispatcher,
    ledger: Ledger,
    server: MockServer,
    event: RunEvent,
    _dir: tempfile::TempDir,
}

/// One webhook integration `hook` (with `extra` YAML keys) answering `answer`.
async fn fixture(extra: &str, answer: ResponseTemplate) -> Fixture {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&server)
        .await;
    let yaml = format!(
        "integrations:\n  - name: hook\n    type: webhook\n    url: {}/hook\n    secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]\n{extra}",
        server.uri()
    );
    let config = Config::parse(&yaml, Default::default()).unwrap();
    let integrations = build_all(&config.integrations, &config.templates_dir, &http_client())
        .unwrap_or_else(|errors| panic!("{errors:?}"));
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&LedgerConfig {
        path: dir.path().join("ledger.db"),
        ..LedgerConfig::default()
    })
    .await
    .unwrap();
    let policy = RetryPolicy::new(config.retry.clone());
    let dispatcher = Dispatcher::new(integrations, policy, ledger.clone(), 64);
    let run_id = format!("run-{:016x}", rand::random::<u64>());
    let event = RunEvent::parse(
        EVENT
            .replace("950a13c3edf4f28b6e8ce301a404b4aa", &run_id)
            .as_bytes(),
    )
    .unwrap();
    Fixture {
        dispatcher,
        ledger,
        server,
        event,
        _dir: dir,
    }
}

impl Fixture {
    /// Dispatches the new event with these tokens; the one integration's outcome.
    async fn deliver(&self, stop: &CancellationToken, abort: &CancellationToken) -> Outcome {
        let deliveries: Vec<_> = self
            .dispatcher
            .dispatch(&self.event, Targets::Routed, stop, abort)
            .collect()
            .await;
        let [delivery] = <[_; 1]>::try_from(deliveries).expect("one integration, one delivery");
        assert!(
            !matches!(delivery.outcome, Outcome::Queue(_)),
            "a free lane queues nothing"
        );
        delivery.outcome
    }

    async fn deliver_now(&self) -> Outcome {
        self.deliver(&CancellationToken::new(), &CancellationToken::new())
            .await
    }

    fn key(&self) -> Key<'_> {
        Key {
            run_id: &self.event.data.run_id,
            event_type: EVENT_TYPE,
            integration: IntegrationName::leaked("hook"),
        }
    }

    async fn requests(&self) -> usize {
        self.server.received_requests().await.unwrap().len()
    }
}

#[tokio::test]
async fn an_event_the_filters_refuse_is_skipped_without_a_request_or_a_ledger_row() {
    let fixture = fixture("    branches: [main]\n", ResponseTemplate::new(200)).await;
    let outcome = fixture.deliver_now().await;
    assert!(
        matches!(&outcome, Outcome::Skipped(reason) if reason.starts_with("filtered out")),
        "{outcome:?}"
    );
    assert_eq!(fixture.requests().await, 0);
    assert_eq!(fixture.ledger.state(fixture.key()).await.unwrap(), None);
}

#[tokio::test]
async fn a_delivery_the_ledger_has_as_done_is_not_sent_again() {
    let fixture = fixture("", ResponseTemplate::new(204)).await;
    assert_eq!(
        fixture.deliver_now().await,
        Outcome::Delivered("HTTP 204".into())
    );
    assert_eq!(
        fixture.deliver_now().await,
        Outcome::Skipped("already delivered (ledger)".into())
    );
    assert_eq!(fixture.requests().await, 1);
}

#[tokio::test]
async fn a_delivery_another_attempt_holds_is_looked_at_again_later_then_sent_once_free() {
    let fixture = fixture("", ResponseTemplate::new(200)).await;
    let Claim::Claimed(other) = fixture
        .ledger
        .claim(fixture.key(), "evt", 1, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("the row was free");
    };
    let busy = fixture.deliver_now().await;
    let Outcome::Busy {
        until,
        holder: Holder::Attempt,
    } = busy
    else {
        panic!("{busy:?}");
    };
    assert!(
        until > Duration::from_secs(25),
        "until the other lease ends: {until:?}"
    );
    assert_eq!(fixture.requests().await, 0, "nothing sent while it is held");

    // The other attempt fails transiently: the row is free again.
    fixture
        .ledger
        .record(
            fixture.key(),
            &other,
            &Record {
                last_error: Some("HTTP 503".into()),
                ..Record::new(State::Failed, 1)
            },
        )
        .await
        .unwrap();
    assert!(matches!(fixture.deliver_now().await, Outcome::Delivered(_)));
    assert_eq!(fixture.requests().await, 1);
}

/// Another worker delivering another event of the same run to the same integration holds
/// the run's turn there: this event waits (busy, looked at again in a second) and is sent
/// once that delivery is recorded, so the two never interleave, whichever worker has which.
#[tokio::test]
async fn another_event_of_the_run_in_flight_elsewhere_makes_it_wait_its_turn() {
    let fixture = fixture("", ResponseTemplate::new(200)).await;
    let started = Key {
        event_type: "run.started",
        ..fixture.key()
    };
    let Claim::Claimed(other) = fixture
        .ledger
        .claim(started, "evt-start", 1, Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("the row was free");
    };
    assert_eq!(
        fixture.deliver_now().await,
        Outcome::Busy {
            until: Duration::from_secs(1),
            holder: Holder::Event
        }
    );
    assert_eq!(fixture.requests().await, 0, "nothing sent while it waits");

    let delivered = Record::new(State::Delivered, 1);
    fixture
        .ledger
        .record(started, &other, &delivered)
        .await
        .unwrap();
    assert!(matches!(fixture.deliver_now().await, Outcome::Delivered(_)));
    assert_eq!(fixture.requests().await, 1);
}

#[tokio::test]
async fn an_operator_cancel_drops_the_delivery_and_shutdown_hands_it_back() {
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(3_600));
    let fixture = fixture("    timeout: 1h\n", slow).await;
    let run = fixture.event.data.run_id.as_str().to_owned();

    // Operator cancel: the in-flight request is aborted and the outcome is `Canceled`.
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let delivery = fixture.deliver(&stop, &abort);
    let cancel = async {
        while fixture.requests().await == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(fixture.dispatcher.abort_run(&run, Some("hook")), 1);
    };
    let (outcome, ()) = tokio::join!(delivery, cancel);
    assert_eq!(outcome, Outcome::Canceled);

    // Shutdown: the abort token interrupts the next attempt, to be handed back.
    let fixture = fixture_with_new_run(fixture).await;
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let delivery = fixture.deliver(&stop, &abort);
    let shutdown = async {
        while fixture.requests().await == 0 {
            tokio::task::yield_now().await;
        }
        abort.cancel();
    };
    let (outcome, ()) = tokio::join!(delivery, shutdown);
    assert_eq!(outcome, Outcome::Interrupted);
    assert_eq!(
        fixture.ledger.state(fixture.key()).await.unwrap(),
        Some(State::Failed),
        "the row is free for the attempt that takes it over"
    );

    // After shutdown began, no delivery starts.
    let fixture = fixture_with_new_run(fixture).await;
    let stop = CancellationToken::new();
    stop.cancel();
    let before = fixture.requests().await;
    assert_eq!(
        fixture.deliver(&stop, &CancellationToken::new()).await,
        Outcome::Interrupted
    );
    assert_eq!(fixture.requests().await, before);
}

#[tokio::test]
async fn a_paused_integrations_part_comes_back_queued_without_a_request() {
    let extra = "    circuit_breaker:\n      failures: 1\n      cool_down: 1h\n";
    let fixture = fixture(extra, ResponseTemplate::new(503)).await;
    assert!(matches!(
        fixture.deliver_now().await,
        Outcome::RetryIn { .. }
    ));
    // One failure opened the breaker: the dispatcher decides "paused", and sends nothing.
    let fixture = fixture_with_new_run(fixture).await;
    let deliveries: Vec<_> = fixture
        .dispatcher
        .dispatch(
            &fixture.event,
            Targets::Routed,
            &CancellationToken::new(),
            &CancellationToken::new(),
        )
        .collect()
        .await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].outcome, Outcome::Queue(QueueReason::Paused));
    assert_eq!(deliveries[0].integration, "hook");
    assert_eq!(fixture.requests().await, 1);
    assert_eq!(fixture.ledger.state(fixture.key()).await.unwrap(), None);
}

#[tokio::test]
async fn a_queued_part_still_waiting_for_a_slot_at_shutdown_is_handed_back_unstarted() {
    let fixture = fixture("    concurrency: 1\n", ResponseTemplate::new(200)).await;
    let (_, lane) = fixture.dispatcher.lanes().next().unwrap();
    let _busy = lane.direct_slot().await.expect("a free slot");
    let stop = CancellationToken::new();
    stop.cancel();
    let part = QueuedPart {
        integration: 0,
        admitted: true,
        attempt: 2,
        queued_at_ms: crate::ledger::now_ms(),
    };
    let mut started = false;
    let delivery = fixture
        .dispatcher
        .dispatch_queued(
            &fixture.event,
            part,
            &stop,
            &CancellationToken::new(),
            || started = true,
        )
        .await;
    assert_eq!(delivery.outcome, Outcome::Queue(QueueReason::Stopping));
    assert_eq!(delivery.attempt, 2, "handed back at the same attempt");
    assert!(!started, "it never had a slot");
    assert_eq!(fixture.requests().await, 0);
}

/// The same dispatcher and receiver with a fresh run.
async fn fixture_with_new_run(mut fixture: Fixture) -> Fixture {
    let run_id = format!("run-{:016x}", rand::random::<u64>());
    fixture.event = RunEvent::parse(
        EVENT
            .replace("950a13c3edf4f28b6e8ce301a404b4aa", &run_id)
            .as_bytes(),
    )
    .unwrap();
    fixture
}

/// What this thread logs while it is held.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_delivery_that_ends_after_losing_its_claim_records_nothing_and_says_so() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(1));
    let fixture = fixture("", slow).await;

    // Another worker takes the row over while the request is under way (as after this worker
    // stalled past its lease), and the answer comes before a renewal could notice.
    let delivery = fixture.deliver_now();
    let take_over = async {
        while fixture.requests().await == 0 {
            tokio::task::yield_now().await;
        }
        sqlx::query("UPDATE deliveries SET claim_id = 'another worker' WHERE run_id = $1")
            .bind(fixture.event.data.run_id.as_str())
            .execute(fixture.ledger.pool())
            .await
            .unwrap();
    };
    let (outcome, ()) = tokio::join!(delivery, take_over);
    assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
    assert_eq!(
        fixture.ledger.state(fixture.key()).await.unwrap(),
        Some(State::InFlight),
        "the other worker's row is left for it to record"
    );
    let logs = logs.text();
    assert!(
        logs.contains("WARN")
            && logs.contains("the outcome is not recorded: the claim is no longer ours"),
        "{logs}"
    );
}
