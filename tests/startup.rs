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

#[test]
fn a_ledger_file_that_cannot_be_created_is_named() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    for (path, mode) in [(dir.path(), 0o755), (read_only.as_path(), 0o555)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let names = Names::new();
    let ledger = read_only.join("run-notifier.db");
    let yaml = names
        .config(&webhook("audit", "http://127.0.0.1:9/a"))
        .replace(&names.ledger, &format!("path: {}", ledger.display()));
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    // Root may write anywhere: run as an unprivileged uid when this is root.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let mut command = if root {
        let mut command = std::process::Command::new("setpriv");
        command.args(["--reuid", "10001", "--regid", "10001", "--clear-groups"]);
        command.arg(env!("CARGO_BIN_EXE_run-notifier"));
        command
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_run-notifier"))
    };
    let output = command
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "error: cannot open the ledger: cannot open the SQLite ledger {} (is its folder writable by this user?)",
            ledger.display()
        )),
        "{stderr}"
    );
}
