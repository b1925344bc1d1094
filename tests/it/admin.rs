//! The admin listener as clients meet it: a client that sends its request slowly is cut off
//! while probes are still answered, and a burst of `/readyz` probes costs the ledger one round
//! trip a second, not one each.

use std::time::{Duration, Instant};

use run_notifier::admin::HEADER_READ_TIMEOUT;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::process::sample;
use crate::support::{Receiver, TestApp, wait_until, webhook};

#[tokio::test]
async fn a_client_that_sends_half_a_request_line_is_cut_off_while_others_are_served() {
    let mut app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    app.spawn_worker(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    })
    .await;
    let address = app.admin_url("").replace("http://", "");

    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /hea").await.unwrap();
    let probe = reqwest::get(app.admin_url("/healthz")).await.unwrap();
    assert_eq!(probe.status(), 200, "a slow client holds nothing up");

    let mut answer = Vec::new();
    // A fuse only: the server closes the connection after HEADER_READ_TIMEOUT.
    let read = tokio::time::timeout(HEADER_READ_TIMEOUT * 12, slow.read_to_end(&mut answer))
        .await
        .expect("the admin server kept a half-sent request line open");
    if let Err(err) = read {
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "nothing served to it: {answer}"
    );
    app.stop_worker().await;
}

#[tokio::test]
async fn readyz_asks_the_ledger_at_most_once_a_second_however_often_it_is_probed() {
    let app = TestApp::new().await;
    let receiver = Receiver::ok().await;
    // A process of its own, so the ping count on its metrics page is this test's alone.
    let worker = app
        .spawn_process(|config| {
            config.add(webhook("hook", &receiver.url("/hook")));
        })
        .await;
    let pings = |page: &str| {
        sample(
            page,
            "run_notifier_ledger_operation_duration_seconds_count",
            &[("operation", "ping")],
        )
        .expect("ledger pings are timed")
    };
    let before = pings(&worker.metrics().await);

    let started = Instant::now();
    let client = reqwest::Client::new();
    let probes = (0..200).map(|_| client.get(worker.admin_url("/readyz")).send());
    for answer in futures_util::future::join_all(probes).await {
        assert_eq!(answer.unwrap().status(), 200);
    }
    let elapsed = started.elapsed();
    let asked = pings(&worker.metrics().await) - before;
    println!("200 concurrent /readyz probes in {elapsed:?}: {asked} ledger pings");
    // One ping for each second the burst lasted, begun or not, and one at its start.
    let most = elapsed.as_secs_f64().ceil() + 1.0;
    assert!(
        asked <= most,
        "{asked} pings for 200 probes in {elapsed:?} (at most {most})"
    );

    // The answer is not kept for ever: a later probe asks the ledger again.
    let seen = before + asked;
    wait_until(
        "a later probe asks the ledger again",
        Duration::from_secs(30),
        || async {
            let probe = reqwest::get(worker.admin_url("/readyz")).await;
            probe.is_ok() && pings(&worker.metrics().await) > seen
        },
    )
    .await;
}

/// Probes from the moment the listener is up (as a kubelet's would be) do not hold back the
/// start: the first probe once the worker consumes finds it ready. (A "ledger down" answer
/// remembered from before the ledger was opened kept `/readyz` at 503 for up to a second.)
#[tokio::test]
async fn probes_before_the_ledger_opens_do_not_delay_readiness() {
    // PostgreSQL: opening it (connecting, migrating) leaves probes time to come first.
    let app = TestApp::with_postgres().await;
    let receiver = Receiver::ok().await;
    let worker = app.launch_process(|config| {
        config.add(webhook("hook", &receiver.url("/hook")));
    });
    let readyz = worker.admin_url("/readyz");
    let client = reqwest::Client::new();
    let mut early = 0;
    loop {
        // Read before the probe: the worker says it consumes only once it does.
        let consuming = worker.logs().contains("\"consuming\"");
        let Ok(answer) = client.get(&readyz).send().await else {
            continue;
        };
        if consuming {
            assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
            break;
        }
        early += usize::from(answer.status() == 503);
    }
    assert!(early > 0, "no probe came before the worker consumed");
}
