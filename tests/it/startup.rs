//! What `run` says when it starts: the banner names the version, config file, admin address,
//! ledger, broker and integrations, and never a credential.

use run_notifier::secret::Secret;
use serde_json::Value;

use std::time::Duration;

use crate::support::{TestApp, slack, wait_until, webhook};

#[tokio::test]
async fn the_start_banner_says_what_runs_against_what_without_credentials() {
    // The ledger URL carries a password in its query (sqlx reads `password=`); the broker URL
    // has guest:guest. Neither may show.
    let app = TestApp::with_postgres().await;
    let mut worker = app
        .spawn_process(|config| {
            let url = config.ledger.url.as_ref().unwrap().expose().to_owned();
            config.ledger.url = Some(Secret::new(format!("{url}&password=ledgerpw77")));
            config.add(webhook("audit", "http://127.0.0.1:9/a"));
            config.add(slack(
                "chat",
                "https://hooks.slack.com/services/T/B/slackpw88",
            ));
        })
        .await;
    worker.stop().await;
    // As configured: the port the listener took is in its own line, `admin listening`.
    let admin = "http://127.0.0.1:0";
    let logs = worker.logs();
    let banner: Value = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "run-notifier starting")
        .unwrap_or_else(|| panic!("no banner in:\n{logs}"));
    assert_eq!(banner["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(banner["config"], worker.config_file().display().to_string());
    assert_eq!(
        banner["admin"],
        format!("{admin} (/healthz, /readyz, /metrics)")
    );
    assert_eq!(
        banner["ledger"],
        "PostgreSQL postgres://127.0.0.1:5432/test"
    );
    assert_eq!(
        banner["broker"],
        format!(
            "amqp://127.0.0.1:5672/%2f (exchange {}, queue {})",
            app.names.exchange, app.names.queue
        )
    );
    assert_eq!(banner["integrations"], "audit (webhook), chat (slack)");
    for secret in ["guest", "ledgerpw77", "slackpw88", "search_path"] {
        assert!(
            !banner.to_string().contains(secret),
            "the banner shows `{secret}`: {banner}"
        );
    }
}

#[tokio::test]
async fn a_ledger_file_that_cannot_be_created_is_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    for (path, mode) in [(dir.path(), 0o755), (read_only.as_path(), 0o555)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let app = TestApp::new().await;
    let ledger = read_only.join("run-notifier.db");
    let (written, _) = app.config(|config| {
        config.add(webhook("audit", "http://127.0.0.1:9/a"));
        config.ledger.path = ledger.clone();
    });
    // In a folder the unprivileged worker below can read.
    let config = dir.path().join("config.yaml");
    std::fs::copy(&written, &config).unwrap();
    // Root may write anywhere: run as an unprivileged uid when this is root.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let mut command = if root {
        let mut command = tokio::process::Command::new("setpriv");
        command.args(["--reuid", "10001", "--regid", "10001", "--clear-groups"]);
        command.arg(env!("CARGO_BIN_EXE_run-notifier"));
        command
    } else {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
    };
    let log = dir.path().join("worker.log");
    let mut worker = command
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The worker waits for its ledger (not ready meanwhile) and says which file it cannot open.
    let expected = format!(
        "cannot open the SQLite ledger {} (is its folder writable by this user?)",
        ledger.display()
    );
    wait_until(
        "the worker names the ledger file",
        Duration::from_secs(30),
        || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(&expected)
        },
    )
    .await;
    worker.kill().await.unwrap();
}
