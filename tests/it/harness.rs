//! The test harness keeps its promises: a test that panics leaves nothing behind, and a config
//! change the written file would not carry is refused instead of silently dropped.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use run_notifier::config::{Config, HumanDuration};

use crate::support::config::parse_spec;
use crate::support::{AMQP_URL, POSTGRES_URL, Receiver, TestApp, webhook};

/// Whether `queue` exists, asked on a channel of its own (a passive declare of a missing queue
/// closes the channel).
async fn queue_exists(connection: &lapin::Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .is_ok()
}

async fn exchange_exists(connection: &lapin::Connection, exchange: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await
        .is_ok()
}

#[tokio::test]
async fn a_test_that_panics_still_stops_its_worker_and_deletes_its_queues_exchanges_and_schema() {
    let receiver = Receiver::ok().await;
    let url = receiver.url("/hook");
    let (names_tx, names_rx) = tokio::sync::oneshot::channel();
    let failed = tokio::spawn(async move {
        let mut app = TestApp::with_postgres().await;
        app.spawn_worker(|config| {
            config.add(webhook("hook", &url));
        })
        .await;
        let schema = app.config(|_| {}).1.ledger.url.unwrap().expose().to_owned();
        names_tx.send((app.names.clone(), schema)).unwrap();
        panic!("a failing assertion");
    })
    .await;
    assert!(failed.unwrap_err().is_panic());
    let (names, ledger_url) = names_rx.await.unwrap();

    let connection = run_notifier::broker::connect(AMQP_URL, "tests")
        .await
        .unwrap();
    for queue in [
        &names.queue,
        &names.dead,
        &format!("{}.1s", names.retry_prefix),
    ] {
        assert!(!queue_exists(&connection, queue).await, "{queue} is left");
    }
    for exchange in [&names.exchange, &names.control] {
        assert!(
            !exchange_exists(&connection, exchange).await,
            "{exchange} is left"
        );
    }
    let schema = ledger_url
        .rsplit("search_path%3D")
        .next()
        .unwrap()
        .to_owned();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(POSTGRES_URL).await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "schema {schema} is left");
}

#[tokio::test]
async fn the_written_config_file_is_what_the_typed_change_said() {
    let app = TestApp::new().await;
    let (path, config) = app.config(|config| {
        config.add(webhook("hook", "http://127.0.0.1:9/hook").with("branches", ["main"]));
        config.retry.max_attempts = 3;
        config.worker.shutdown_grace = HumanDuration::millis(250);
        config.broker.prefetch = 7;
    });
    let read = Config::load(&path).unwrap();
    assert_eq!(format!("{read:?}"), format!("{config:?}"));
    assert_eq!(read.retry.max_attempts, 3);
    assert_eq!(*read.worker.shutdown_grace, Duration::from_millis(250));
    assert_eq!(read.broker.prefetch, 7);
    assert_eq!(read.broker.queue, app.names.queue);
    assert_eq!(read.integrations[0].filters().branches.len(), 1);
}

#[tokio::test]
async fn an_integration_pushed_around_its_spec_is_refused_rather_than_dropped() {
    let app = TestApp::new().await;
    let integration = parse_spec(&webhook("hook", "http://127.0.0.1:9/hook")).unwrap();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.config(|config| config.integrations.push(integration));
    }));
    let message = *refused
        .expect_err("the config file would lack the integration")
        .downcast::<String>()
        .unwrap();
    assert!(
        message.contains("add integrations with `config.add(spec)`"),
        "{message}"
    );
}
