//! The admin listener as clients meet it: a client that sends its request slowly is cut off
//! while probes are still answered.

use run_notifier::admin::HEADER_READ_TIMEOUT;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{Receiver, TestApp, webhook};

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
