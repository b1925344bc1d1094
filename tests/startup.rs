//! What `run` says when it starts: the banner names the version, config file, admin address,
//! ledger, broker and integrations, and never a credential.

mod common;

use std::time::Duration;

use common::{Names, TestBroker, WorkerProcess, postgres_ledger, webhook};
use serde_json::Value;

#[tokio::test]
async fn the_start_banner_says_what_runs_against_what_without_credentials() {
    // The ledger URL carries a password in its query (sqlx reads `password=`); the broker URL
    // has guest:guest. Neither may show.
    let ledger = format!("{}&password=ledgerpw77", postgres_ledger(5432).await);
    let names = Names::new().with_ledger_url(&ledger);
    let dir = tempfile::tempdir().unwrap();
    let yaml = names.config(&format!(
        "{}{}",
        webhook("audit", "http://127.0.0.1:9/a"),
        "  - name: chat\n    type: slack\n    webhook_url: https://hooks.slack.com/services/T/B/slackpw88\n"
    ));
    let broker = TestBroker::connect(&names).await;
    let mut worker = WorkerProcess::start(&names, dir.path(), &yaml).await;
    worker.signal("-TERM");
    worker.wait_exit(Duration::from_secs(10)).await;

    let logs = worker.logs();
    let banner: Value = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "run-notifier starting")
        .unwrap_or_else(|| panic!("no banner in:\n{logs}"));
    assert_eq!(banner["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        banner["config"],
        dir.path().join("config.yaml").display().to_string()
    );
    assert_eq!(
        banner["admin"],
        format!(
            "http://127.0.0.1:{} (/healthz, /readyz, /metrics)",
            names.admin_port
        )
    );
    assert_eq!(
        banner["ledger"],
        "PostgreSQL postgres://127.0.0.1:5432/test"
    );
    assert_eq!(
        banner["broker"],
        format!(
            "amqp://127.0.0.1:5672/%2f (exchange {}, queue {})",
            names.exchange, names.queue
        )
    );
    assert_eq!(banner["integrations"], "audit (webhook), chat (slack)");
    for secret in ["guest", "ledgerpw77", "slackpw88", "search_path"] {
        assert!(
            !banner.to_string().contains(secret),
            "the banner shows `{secret}`: {banner}"
        );
    }
    broker.cleanup().await;
}
